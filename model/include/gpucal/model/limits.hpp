// Bounds on every size gpucal reads from a file or a flag (README, "Input
// limits"). Within them no parameter, byte, token, block or FLOP count the
// model computes can overflow 64-bit arithmetic; beyond them the input is
// refused with an error that names the field or flag and the bound.
#pragma once

#include <cstdint>

namespace gpucal::model::limits {

// ---- config.json ----
inline constexpr std::int64_t layers = 10'000;
inline constexpr std::int64_t width = 1 << 20;      ///< hidden, intermediate and projection widths
inline constexpr std::int64_t heads = 1 << 16;      ///< heads, KV heads, head_dim, groups
inline constexpr std::int64_t vocab = 1 << 28;
inline constexpr std::int64_t experts = 1 << 16;
inline constexpr std::int64_t context = 1LL << 31;  ///< tokens: context, windows, chunks

// ---- flags ----
inline constexpr std::int64_t max_num_seqs = 1 << 20;           ///< --max-num-seqs, perf --batch
inline constexpr std::int64_t max_num_batched_tokens = 1LL << 31;
inline constexpr int max_gpus = 1 << 16;                         ///< plan --max-gpus
inline constexpr int top = 10'000;                               ///< plan --top
inline constexpr double qps = 1e7;                               ///< plan --qps, requests per second
inline constexpr double latency_s = 86'400;                      ///< plan --ttft-p99 and --tpot-p99, seconds
inline constexpr double price_per_gpu_hour = 1e6;                ///< plan --gpu-prices, $ per GPU-hour
inline constexpr double threshold_pct = 1e6;                     ///< compare --threshold, percent
inline constexpr std::int64_t sim_requests = 10'000'000;         ///< simulate --requests, trace lines
inline constexpr std::int64_t sim_steps = 100'000'000;           ///< engine steps one simulation may run

/// Glob and regex tests (a regex counts four) of a quantization config's
/// ignore and rule patterns against module names, per estimate. GLM-5's
/// NVFP4 checkpoint (154 globs, 78 layers) needs about 2 x 10^5.
inline constexpr std::uint64_t pattern_tests = 5'000'000;

// ---- files ----
inline constexpr std::int64_t input_file_bytes = 64LL << 20;  ///< any JSON input
inline constexpr int json_depth = 64;                         ///< nesting of objects and arrays

}  // namespace gpucal::model::limits
