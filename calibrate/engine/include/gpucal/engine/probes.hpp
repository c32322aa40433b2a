// Timed runs of the reference engine that calibration and validation share:
// decode steps of B sequences at context L, and prefill of T tokens in one
// step. Every step is timed on the host clock from scheduling to the sampled
// tokens back on the host, so the step's launches, input copies and
// scheduling are in it; medians of several steps are reported with every sample.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gpucal/engine/engine.hpp"

namespace gpucal::engine {

struct step_samples {
  std::vector<double> step_us;  ///< one per timed step
  double median_us() const;
};

/// B requests with prompts of L tokens are prefilled (chunked, untimed), then
/// `steps` decode steps are timed; contexts grow from L to L + steps.
/// Throws std::runtime_error when the pool cannot hold B x (L + steps + 1) tokens.
step_samples measure_decode(reference_engine& e, std::int64_t batch, std::int64_t context, int steps);

/// `repeats` single-step prefills of one request of `tokens` tokens from an
/// empty context (tokens <= max_num_batched_tokens), after one untimed warm-up.
step_samples measure_prefill(reference_engine& e, std::int64_t tokens, int repeats);

/// Prints a progress line (to stderr) per probe: what runs, and its median.
using progress_fn = std::function<void(const std::string&)>;

}  // namespace gpucal::engine
