// bf16 and fp8 e4m3 host conversions: round trips over every code, round
// half to even, saturation and specials, by hand-computed values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "gpucal/kernels/numeric.hpp"

namespace gk = gpucal::kernels;

namespace {

TEST(bf16, round_trip_and_rounding) {
  EXPECT_EQ(gk::float_to_bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(gk::float_to_bf16_bits(-2.0f), 0xC000);
  EXPECT_EQ(gk::float_to_bf16_bits(0.0f), 0x0000);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(gk::float_to_bf16_bits(1.0f + 0x1p-8f), 0x3F80);
  // 1 + 3 x 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): rounds up.
  EXPECT_EQ(gk::float_to_bf16_bits(1.0f + 3 * 0x1p-8f), 0x3F82);
  EXPECT_EQ(gk::float_to_bf16_bits(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);  // above half: up
  EXPECT_TRUE(std::isnan(gk::round_to_bf16(std::nanf(""))));
  EXPECT_TRUE(std::isinf(gk::round_to_bf16(INFINITY)));
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float f = gk::bf16_bits_to_float(static_cast<std::uint16_t>(b));
    if (!std::isnan(f)) {
      EXPECT_EQ(gk::float_to_bf16_bits(f), b) << std::hex << b;
    }
  }
}

TEST(fp8_e4m3, known_values) {
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1.0f), 0x38);    // exponent 7 (bias 7), mantissa 0
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(-1.0f), 0xB8);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(448.0f), 0x7E);  // largest finite: 1.75 x 2^8
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(0x1p-9f), 0x01);  // smallest subnormal
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(0x1p-6f), 0x08);  // smallest normal
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(0.0f), 0x00);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(-0.0f), 0x80);
  EXPECT_EQ(gk::fp8_e4m3_bits_to_float(0x7E), 448.0f);
  EXPECT_EQ(gk::fp8_e4m3_bits_to_float(0x07), 7 * 0x1p-9f);
  EXPECT_TRUE(std::isnan(gk::fp8_e4m3_bits_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(gk::fp8_e4m3_bits_to_float(0xFF)));
}

TEST(fp8_e4m3, saturates_and_rounds_half_to_even) {
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(500.0f), 0x7E);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1e30f), 0x7E);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(-INFINITY), 0xFE);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(std::nanf("")), 0x7F);
  // Between 1 (0x38) and 1.125 (0x39): 1.0625 is the tie, goes to even 0x38; 1.1875 ties 1.125/1.25 -> 1.25 (0x3A).
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1.0625f), 0x38);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1.1875f), 0x3A);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1.07f), 0x39);
  // Subnormal tie: 1.5 x 2^-9 between codes 1 and 2 -> 2 (even); 0.5 x 2^-9 -> 0.
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(1.5f * 0x1p-9f), 0x02);
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(0.5f * 0x1p-9f), 0x00);
  // Carry from the largest subnormal into the smallest normal: 7.5 x 2^-9 -> 8 x 2^-9 = 2^-6.
  EXPECT_EQ(gk::float_to_fp8_e4m3_bits(7.5f * 0x1p-9f), 0x08);
}

TEST(fp8_e4m3, every_code_round_trips_and_is_monotonic) {
  float previous = -INFINITY;
  for (int b = 0; b < 0x7F; ++b) {  // non-negative finite codes in increasing order
    const float f = gk::fp8_e4m3_bits_to_float(static_cast<std::uint8_t>(b));
    EXPECT_EQ(gk::float_to_fp8_e4m3_bits(f), b);
    EXPECT_EQ(gk::float_to_fp8_e4m3_bits(-f), b == 0 ? 0x80 : (b | 0x80));
    EXPECT_GT(f, previous);
    previous = f;
  }
}

}  // namespace
