// bf16 and fp8 e4m3 conversions (see numeric.hpp).
#include "gpucal/kernels/numeric.hpp"

#include <cmath>
#include <cstring>

namespace gpucal::kernels {

std::uint16_t float_to_bf16_bits(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  if (std::isnan(x)) return static_cast<std::uint16_t>((bits >> 16) | 0x0040u);  // keep the sign, quiet NaN
  // Round to nearest even on the 16 bits dropped.
  const std::uint32_t bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>((bits + bias) >> 16);
}

float bf16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float x;
  std::memcpy(&x, &wide, sizeof x);
  return x;
}

std::uint8_t float_to_fp8_e4m3_bits(float x) {
  // E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities;
  // S.1111.111 is NaN; largest finite S.1111.110 = 448; subnormals 2^-9 apart.
  if (std::isnan(x)) return 0x7F;
  const std::uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  if (std::isinf(x)) return static_cast<std::uint8_t>(sign | 0x7E);  // satfinite: infinities saturate
  const double a = std::fabs(static_cast<double>(x));
  if (a == 0) return sign;
  int e = 0;
  std::frexp(a, &e);  // a = f * 2^e, f in [0.5, 1): the leading bit has weight 2^(e-1)
  int exp = e - 1;
  if (exp < -6) exp = -6;  // subnormal range shares the smallest normal's spacing
  // Quantum of the 3-bit mantissa at this exponent, and a in units of it.
  const double quantum = std::ldexp(1.0, exp - 3);
  const double q = std::nearbyint(a / quantum);  // round half to even (default rounding mode)
  const double rounded = q * quantum;
  if (rounded > fp8_e4m3_max) return static_cast<std::uint8_t>(sign | 0x7E);  // saturate
  if (rounded == 0) return sign;  // underflow to a signed zero
  // Re-derive the fields from the rounded value (rounding may carry into the exponent).
  int re = 0;
  std::frexp(rounded, &re);
  int rexp = re - 1;
  std::uint8_t biased, mant;
  if (rexp < -6) {  // subnormal: exponent field 0, value = m x 2^-9
    biased = 0;
    mant = static_cast<std::uint8_t>(std::lround(rounded / std::ldexp(1.0, -9)));
  } else {
    biased = static_cast<std::uint8_t>(rexp + 7);
    mant = static_cast<std::uint8_t>(std::lround((rounded / std::ldexp(1.0, rexp) - 1.0) * 8));
  }
  return static_cast<std::uint8_t>(sign | (biased << 3) | mant);
}

float fp8_e4m3_bits_to_float(std::uint8_t bits) {
  const bool negative = bits & 0x80;
  const int biased = (bits >> 3) & 0xF;
  const int mant = bits & 0x7;
  if (biased == 0xF && mant == 0x7) return std::nanf("");
  const double v = biased == 0 ? std::ldexp(mant, -9) : std::ldexp(1.0 + mant / 8.0, biased - 7);
  return static_cast<float>(negative ? -v : v);
}

}  // namespace gpucal::kernels
