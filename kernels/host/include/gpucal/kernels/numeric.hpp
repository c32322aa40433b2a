// Host-side conversions to the device storage formats, bit-exact with the
// CUDA intrinsics: bf16 (round to nearest even) and fp8 e4m3 (OCP E4M3FN,
// round to nearest even, saturating to +-448 like __NV_SATFINITE).
// Tests quantize their inputs with these before computing references.
#pragma once

#include <cstdint>

namespace gpucal::kernels {

std::uint16_t float_to_bf16_bits(float x);
float bf16_bits_to_float(std::uint16_t bits);
/// x rounded to the nearest bf16 value, as a float.
inline float round_to_bf16(float x) { return bf16_bits_to_float(float_to_bf16_bits(x)); }

std::uint8_t float_to_fp8_e4m3_bits(float x);
float fp8_e4m3_bits_to_float(std::uint8_t bits);
inline float round_to_fp8_e4m3(float x) { return fp8_e4m3_bits_to_float(float_to_fp8_e4m3_bits(x)); }

/// Largest finite e4m3 value.
inline constexpr float fp8_e4m3_max = 448.0f;

}  // namespace gpucal::kernels
