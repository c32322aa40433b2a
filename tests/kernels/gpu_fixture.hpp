// The one fixture every GPU test derives from: skips with the reason when no
// CUDA device is usable, or when the device is below a required compute
// capability (the required one in the message).
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "gpucal/kernels/device_query.hpp"

namespace gpucal::test {

class gpu_test : public ::testing::Test {
protected:
  void SetUp() override {
    std::string reason;
    device_ = gpucal::kernels::first_device(&reason);
    if (!device_) GTEST_SKIP() << reason;
  }
  /// Call at the top of a test that needs compute capability `major.minor`.
  bool require_cc(int major, int minor) {
    if (device_->cc_major * 10 + device_->cc_minor >= major * 10 + minor) return true;
    return false;
  }
  std::optional<gpucal::kernels::device_info> device_;
};

}  // namespace gpucal::test

/// Skips the current test unless the device has compute capability >= major.minor.
#define GPUCAL_REQUIRE_CC(major, minor)                                                                   \
  do {                                                                                                    \
    if (!require_cc(major, minor))                                                                        \
      GTEST_SKIP() << "needs sm_" #major #minor "+ (device is sm_" << device_->cc_major << device_->cc_minor \
                   << ")";                                                                                \
  } while (0)
