// Unit constants. Memory is counted in bytes; GiB (2^30) for display, GB
// (10^9) where a source quotes decimal units; bandwidth in GB/s (10^9 B/s);
// compute in TFLOP/s (10^12).
#pragma once

#include <cstdint>

namespace gpucal {

inline constexpr std::int64_t kib_bytes = 1024;
inline constexpr std::int64_t mib_bytes = 1024 * kib_bytes;
inline constexpr std::int64_t gib_bytes = 1024 * mib_bytes;
inline constexpr double gb_bytes = 1e9;

inline constexpr double to_gib(double bytes) { return bytes / static_cast<double>(gib_bytes); }
inline constexpr double to_gib(std::int64_t bytes) { return to_gib(static_cast<double>(bytes)); }

/// Integer ceil(a / b) for positive b.
inline constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

}  // namespace gpucal
