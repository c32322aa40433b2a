// GPU test: the probe kernel writes every slot with its own index and a
// valid SM id. Skips with the reason when no CUDA device is usable.
#include <gtest/gtest.h>

#include "gpu_fixture.hpp"

namespace {

using gpucal::test::gpu_test;

TEST_F(gpu_test, probe_kernel_writes_every_slot) {
  for (int threads : {0, 1, 255, 257, 100003}) {
    const auto out = gpucal::kernels::run_probe_kernel(threads);
    ASSERT_EQ(out.size(), static_cast<std::size_t>(threads));
    for (int i = 0; i < threads; ++i) {
      ASSERT_EQ(out[i] & 0xffffffffu, static_cast<std::uint64_t>(i)) << "slot " << i << " of " << threads;
      ASSERT_LT(out[i] >> 32, static_cast<std::uint64_t>(device_->sm_count)) << "slot " << i;
    }
  }
}

TEST_F(gpu_test, device_reports_memory_and_versions) {
  EXPECT_GT(device_->total_memory_bytes, 0);
  EXPECT_LE(device_->free_memory_bytes, device_->total_memory_bytes);
  EXPECT_GT(device_->sm_count, 0);
  EXPECT_GT(device_->runtime_version, 0);
  EXPECT_GE(device_->driver_version, device_->runtime_version / 1000 * 1000);
}

}  // namespace
