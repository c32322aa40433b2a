// The validation table: error sign and size, targets, and both renderings.
#include <gtest/gtest.h>

#include "gpucal/engine/validation.hpp"

namespace {

using gpucal::engine::validation_report;
using gpucal::engine::validation_row;

TEST(Validation, ErrorIsPredictedOverMeasured) {
  const validation_row over{"m", "KV blocks", "blocks", 1030, 1000, 3};
  EXPECT_DOUBLE_EQ(over.error_pct(), 3.0);
  EXPECT_TRUE(over.meets_target());
  const validation_row under{"m", "decode step B=1 L=512", "ms", 8.8, 10, 10};
  EXPECT_NEAR(under.error_pct(), -12.0, 1e-12);
  EXPECT_FALSE(under.meets_target());
  const validation_row reported{"m", "weights", "GiB", 2, 1, 0};
  EXPECT_TRUE(reported.meets_target());
}

TEST(Validation, RendersEveryRowWithItsVerdict) {
  validation_report r;
  r.header_lines = {"device: NVIDIA H100 80GB HBM3"};
  r.rows = {{"Llama-3-8B", "KV blocks", "blocks", 28000, 28100, 3}, {"Llama-3-8B", "prefill T=2048", "ms", 130, 100, 10}};
  r.notes = {"a note"};
  ASSERT_EQ(r.misses().size(), 1u);
  const std::string md = gpucal::engine::render_markdown(r);
  EXPECT_NE(md.find("| Llama-3-8B | KV blocks | blocks | 28000 | 28100 | -0.36 | ok (±3 %) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| Llama-3-8B | prefill T=2048 | ms | 130.000 | 100.000 | +30.00 | MISS (±10 %) |"), std::string::npos) << md;
  EXPECT_NE(md.find("1 of 2 rows with a target meet it."), std::string::npos) << md;
  EXPECT_NE(md.find("- device: NVIDIA H100 80GB HBM3"), std::string::npos);
  EXPECT_NE(md.find("- a note"), std::string::npos);
  const std::string text = gpucal::engine::render_text(r);
  EXPECT_NE(text.find("MISS (±10 %)"), std::string::npos) << text;
  EXPECT_NE(text.find("note: a note"), std::string::npos);
}

}  // namespace
