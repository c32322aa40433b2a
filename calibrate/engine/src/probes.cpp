// Decode and prefill timing runs of the reference engine (see probes.hpp).
#include "gpucal/engine/probes.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "gpucal/engine/scheduler.hpp"
#include "gpucal/kernels/block_allocator.hpp"
#include "gpucal/model/calibration.hpp"

namespace gpucal::engine {

double step_samples::median_us() const {
  if (step_us.empty()) throw std::logic_error("step_samples: no sample");
  return model::median_of(step_us);
}

namespace {

// Schedules, runs and completes one step; returns its host time in us.
double timed_step(reference_engine& e, scheduler& s, std::int64_t block_size, step_plan* last) {
  const auto t0 = std::chrono::steady_clock::now();
  step_plan p = s.schedule();
  const forward_batch b = to_forward_batch(p, e.max_blocks_per_seq(), block_size);
  const std::vector<std::int32_t> tokens = e.step(b);
  s.complete(p, tokens);
  const auto t1 = std::chrono::steady_clock::now();
  if (last) *last = std::move(p);
  return std::chrono::duration<double, std::micro>(t1 - t0).count();
}

}  // namespace

step_samples measure_decode(reference_engine& e, std::int64_t batch, std::int64_t context, int steps) {
  const engine_options& o = e.options();
  const engine_memory& mem = e.memory();
  const std::int64_t per_seq = (context + steps + 1 + o.block_size - 1) / o.block_size;
  if (batch * per_seq > mem.num_blocks)
    throw std::runtime_error(fmt::format("decode B={} L={}: needs {} KV blocks, the pool has {}", batch, context,
                                         batch * per_seq, mem.num_blocks));
  if (batch > o.max_num_seqs) throw std::runtime_error(fmt::format("decode B={} exceeds --max-num-seqs {}", batch, o.max_num_seqs));
  kernels::block_allocator blocks(mem.num_blocks, o.block_size);
  scheduler s(blocks, {o.max_num_seqs, o.max_num_batched_tokens, o.max_model_len}, static_cast<std::int32_t>(e.model().vocab),
              static_cast<std::uint64_t>(batch * 1000003 + context));
  for (std::int64_t i = 0; i < batch; ++i) s.add({i, context, steps + 2});
  // Prefill until every request decodes: the first step with no prompt token.
  step_plan p;
  do {
    timed_step(e, s, o.block_size, &p);
  } while (p.prefill_tokens > 0 || static_cast<std::int64_t>(p.seqs.size()) < batch);
  step_samples out;
  for (int i = 0; i < steps; ++i) {
    const double us = timed_step(e, s, o.block_size, &p);
    if (p.prefill_tokens > 0 || static_cast<std::int64_t>(p.seqs.size()) != batch)
      throw std::logic_error("measure_decode: a timed step was not a pure decode of the whole batch");
    out.step_us.push_back(us);
  }
  return out;
}

step_samples measure_prefill(reference_engine& e, std::int64_t tokens, int repeats) {
  const engine_options& o = e.options();
  if (tokens > o.max_num_batched_tokens || tokens >= o.max_model_len)
    throw std::runtime_error(fmt::format("prefill T={} exceeds --max-num-batched-tokens {} or --max-model-len {}", tokens,
                                         o.max_num_batched_tokens, o.max_model_len));
  kernels::block_allocator blocks(e.memory().num_blocks, o.block_size);
  scheduler s(blocks, {o.max_num_seqs, o.max_num_batched_tokens, o.max_model_len}, static_cast<std::int32_t>(e.model().vocab),
              static_cast<std::uint64_t>(tokens));
  step_samples out;
  for (int i = 0; i <= repeats; ++i) {  // the first is a warm-up
    s.add({i, tokens, 1});
    step_plan p;
    const double us = timed_step(e, s, o.block_size, &p);
    if (p.prefill_tokens != tokens || !s.idle()) throw std::logic_error("measure_prefill: the prompt did not run in one step");
    if (i > 0) out.step_us.push_back(us);
  }
  return out;
}

}  // namespace gpucal::engine
