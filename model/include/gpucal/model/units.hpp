// Unit constants. Memory is counted in bytes; GiB (2^30) for display, GB
// (10^9) where a source quotes decimal units; bandwidth in GB/s (10^9 B/s);
// compute in TFLOP/s (10^12).
#pragma once

#include <cstdint>
#include <numeric>
#include <string>

#include "gpucal/model/errors.hpp"

namespace gpucal {

inline constexpr std::int64_t kib_bytes = 1024;
inline constexpr std::int64_t mib_bytes = 1024 * kib_bytes;
inline constexpr std::int64_t gib_bytes = 1024 * mib_bytes;
inline constexpr double gb_bytes = 1e9;

inline constexpr double to_gib(double bytes) { return bytes / static_cast<double>(gib_bytes); }
inline constexpr double to_gib(std::int64_t bytes) { return to_gib(static_cast<double>(bytes)); }

/// Integer ceil(a / b) for non-negative a and positive b.
inline constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

/// a x b, or input_error naming `what` when the product leaves int64.
inline std::int64_t checked_mul(std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw input_error(std::string(what) + " overflows 64-bit integers: the config's sizes are out of range");
  return r;
}

/// lcm(a, b) for positive a and b, or input_error naming `what` when it leaves int64.
inline std::int64_t checked_lcm(std::int64_t a, std::int64_t b, const char* what) {
  return checked_mul(a / std::gcd(a, b), b, what);
}

/// a + b, or input_error naming `what` when the sum leaves int64.
inline std::int64_t checked_add(std::int64_t a, std::int64_t b, const char* what) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw input_error(std::string(what) + " overflows 64-bit integers: the config's sizes are out of range");
  return r;
}

}  // namespace gpucal
