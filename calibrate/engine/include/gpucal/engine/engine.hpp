// The reference decoder engine on the GPU: random (or given) weights in the
// chosen linear format, a profiling forward over max_num_batched_tokens
// tokens whose activation high-water mark sizes the activation arena, a
// paged KV pool sized from total x gpu_memory_utilization minus everything
// charged before it, and steps of continuous batching (chunked prefill and
// decode in one forward) with greedy sampling from real logits. Every device
// allocation goes through one tracking_allocator; the cuBLASLt handle and
// workspace, which CUDA allocates itself, are measured as a free-memory delta.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "gpucal/engine/engine_model.hpp"
#include "gpucal/engine/forward_batch.hpp"
#include "gpucal/engine/host_forward.hpp"

namespace gpucal::engine {

struct engine_options {
  double gpu_memory_utilization = 0.9;  ///< budget = device total x this
  std::int64_t max_num_seqs = 256;
  std::int64_t max_num_batched_tokens = 8192;
  std::int64_t max_model_len = 4096;
  std::int64_t block_size = 16;
  std::optional<std::int64_t> num_blocks;  ///< a fixed pool instead of what the budget leaves
  std::uint64_t seed = 1;                  ///< random weights
  /// Pure decode steps are captured once per (tokens, sampled rows) in a CUDA
  /// graph and replayed, as vLLM's decode graphs are; prompt steps run eagerly.
  bool cuda_graphs = false;
  /// Steps that carry a prompt chunk run prefill attention on tensor cores;
  /// false: the paged decode kernel once per query token (the way before it).
  bool prefill_kernel = true;
};

/// Where the device memory went, in bytes.
struct engine_memory {
  std::int64_t device_total_bytes = 0;        ///< cudaMemGetInfo total
  std::int64_t free_at_start_bytes = 0;       ///< free after the CUDA context, before the engine
  std::int64_t budget_bytes = 0;              ///< total x gpu_memory_utilization
  std::int64_t weights_bytes = 0;
  std::int64_t non_allocator_bytes = 0;       ///< cuBLASLt handle + workspace (free-memory delta)
  std::int64_t inputs_bytes = 0;              ///< persistent step inputs (ids, positions, slots, tables)
  std::int64_t profile_tokens = 0;            ///< tokens of the profiling forward
  std::int64_t profile_rows = 0;              ///< sampled rows of the profiling forward
  std::int64_t activation_peak_bytes = 0;     ///< live activation bytes at their peak in the profile
  std::int64_t activation_reserved_bytes = 0; ///< the arena: the profile's high-water offset, rounded to 2 MiB
  std::int64_t block_bytes = 0;               ///< one KV block over all layers run
  std::int64_t num_blocks = 0;
  std::int64_t kv_pool_bytes = 0;
  std::int64_t device_used_bytes = 0;         ///< total - free once set up (CUDA context included)
  std::int64_t cuda_graphs_captured = 0;      ///< decode graphs instantiated so far (cuda_graphs)
  std::int64_t cuda_graph_launches = 0;       ///< decode steps run from a graph so far
  std::int64_t cuda_graph_bytes = 0;          ///< free-memory drop over their capture and instantiation
};

class reference_engine {
public:
  /// Random weights generated on the device.
  reference_engine(const engine_model& m, const engine_options& o);
  /// The given weights (shapes checked), uploaded.
  reference_engine(const engine_model& m, const engine_options& o, const host_weights& w);
  ~reference_engine();
  reference_engine(const reference_engine&) = delete;
  reference_engine& operator=(const reference_engine&) = delete;

  const engine_model& model() const;
  const engine_options& options() const;
  const engine_memory& memory() const;
  std::int32_t max_blocks_per_seq() const;

  /// One forward over the batch; returns the greedy token of each sampled
  /// row, and, when `logits` is given, the sampled rows' logits
  /// [rows][vocab] as floats. Synchronizes before returning.
  std::vector<std::int32_t> step(const forward_batch& b, std::vector<float>* logits = nullptr);

private:
  struct impl;
  std::unique_ptr<impl> p_;
};

}  // namespace gpucal::engine
