// Our host conversions against CUDA's own (cuda_bf16.h, cuda_fp8.h, compiled
// for the host): bit-exact on every bf16/fp8 boundary case and a million
// random floats. Runs on the CPU; needs only the CUDA headers.
#include <cuda_bf16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "gpucal/kernels/numeric.hpp"

namespace gk = gpucal::kernels;

namespace {

std::uint8_t cuda_fp8(float x) { return __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3); }
std::uint16_t cuda_bf16(float x) {
  const __nv_bfloat16 b = __float2bfloat16_rn(x);
  std::uint16_t bits;
  std::memcpy(&bits, &b, sizeof bits);
  return bits;
}

TEST(cuda_numeric_match, fp8_boundaries_and_random) {
  // Every code, the midpoints between neighbours and just either side of them.
  for (int b = 0; b < 0x7E; ++b) {
    const float lo = gk::fp8_e4m3_bits_to_float(static_cast<std::uint8_t>(b));
    const float hi = gk::fp8_e4m3_bits_to_float(static_cast<std::uint8_t>(b + 1));
    const float mid = (lo + hi) / 2;
    for (float x : {lo, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), -mid, 460.0f, 464.0f, 480.0f}) {
      EXPECT_EQ(gk::float_to_fp8_e4m3_bits(x), cuda_fp8(x)) << x;
    }
  }
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> wide(-600.0f, 600.0f), narrow(-0.02f, 0.02f);
  for (int i = 0; i < 500000; ++i) {
    const float a = wide(rng), b = narrow(rng);
    ASSERT_EQ(gk::float_to_fp8_e4m3_bits(a), cuda_fp8(a)) << a;
    ASSERT_EQ(gk::float_to_fp8_e4m3_bits(b), cuda_fp8(b)) << b;
  }
}

TEST(cuda_numeric_match, bf16_random_bit_patterns) {
  std::mt19937 rng(99);
  for (int i = 0; i < 1000000; ++i) {
    const auto bits = static_cast<std::uint32_t>(rng());
    float x;
    std::memcpy(&x, &bits, sizeof x);
    if (std::isnan(x)) continue;
    ASSERT_EQ(gk::float_to_bf16_bits(x), cuda_bf16(x)) << std::hex << bits;
  }
}

}  // namespace
