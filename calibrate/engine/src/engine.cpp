// The reference engine on the GPU (see engine.hpp). The forward mirrors
// host_forward.cpp operation by operation; temporaries live in the
// activation arena and are freed as soon as they are dead, so the arena's
// live peak is the forward's activation peak.
#include "gpucal/engine/engine.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "gpucal/engine/tracking_allocator.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/kv_cache.hpp"
#include "gpucal/kernels/layer_ops.hpp"
#include "gpucal/kernels/lt_gemm.hpp"
#include "gpucal/kernels/numeric.hpp"
#include "gpucal/kernels/paged_attention.hpp"
#include "gpucal/kernels/prefill_attention.hpp"
#include "gpucal/kernels/w4a16_gemm.hpp"

namespace gpucal::engine {

namespace {

namespace k = gpucal::kernels;

constexpr std::int64_t arena_rounding = 2ll << 20;

class cuda_backend final : public memory_backend {
public:
  void* allocate(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      std::size_t free = 0, total = 0;
      cudaMemGetInfo(&free, &total);
      throw std::runtime_error(fmt::format("cudaMalloc of {} bytes ({:.2f} GiB) failed with {:.2f} GiB free: {}", bytes,
                                           static_cast<double>(bytes) / (1ull << 30),
                                           static_cast<double>(free) / (1ull << 30), cudaGetErrorString(e)));
    }
    return p;
  }
  void release(void* p) noexcept override { GPUCAL_CUDA_CHECK_NOTHROW(cudaFree(p)); }
};

std::int64_t free_bytes() { return static_cast<std::int64_t>(k::free_device_bytes()); }

// One linear weight on the device, laid out in one allocation:
// bf16 [rows][cols]; fp8 codes [rows][cols] then the fp32 scale;
// w4a16 packed codes, then bf16 scales, then zero bytes.
struct dev_linear {
  std::int64_t rows = 0, cols = 0;
  device_block data;
  void* codes() const { return data.data(); }
  float* fp8_scale() const { return reinterpret_cast<float*>(data.as<std::uint8_t>() + rows * cols); }
  std::int64_t groups() const { return (cols + w4a16_group - 1) / w4a16_group; }
  const std::uint32_t* packed() const { return data.as<std::uint32_t>(); }
  const void* scales() const { return data.as<std::uint8_t>() + rows * cols / 2; }
  const std::uint8_t* zeros() const { return data.as<std::uint8_t>() + rows * cols / 2 + rows * groups() * 2; }
};

struct dev_layer {
  device_block input_norm, post_attention_norm, qkv_bias;
  dev_linear qkv, o, gate_up, down;
  device_block kv;  // [2][num_blocks][block_size][kv_heads][head_dim] bf16
};

std::vector<std::uint16_t> bf16_bits(const std::vector<float>& v) {
  std::vector<std::uint16_t> b(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) b[i] = k::float_to_bf16_bits(v[i]);
  return b;
}

}  // namespace

struct reference_engine::impl {
  engine_model m;
  engine_options o;
  engine_memory mem;
  cuda_backend backend;
  tracking_allocator alloc{backend};
  cudaStream_t stream = nullptr;
  std::unique_ptr<k::lt_context> lt;
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, int>, k::lt_gemm_plan> plans;
  std::int32_t max_blocks = 0;
  std::int64_t profile_tokens = 0;

  device_block embed, final_norm, lm_head;
  std::vector<dev_layer> layers;

  // Persistent step inputs, sized for max_num_batched_tokens tokens.
  device_block ids, positions, slots, context_lens, tables, sample_rows, out_ids, inv_freq, x_scale;
  // Per sequence, for prefill attention: first token row, query tokens, context after the step.
  device_block seq_starts, seq_query_lens, seq_context_lens;
  std::int32_t step_sequences = 0, step_max_query_len = 0;
  std::vector<std::uint8_t> staging;  // host side of one step's inputs

  impl(const engine_model& model, const engine_options& opt) : m(model), o(opt) {
    if (!(o.gpu_memory_utilization > 0 && o.gpu_memory_utilization <= 1))
      throw std::invalid_argument(fmt::format("--gpu-memory-utilization: {} is outside (0, 1]", o.gpu_memory_utilization));
    for (auto [name, v] : {std::pair{"--max-num-seqs", o.max_num_seqs}, std::pair{"--max-num-batched-tokens", o.max_num_batched_tokens},
                           std::pair{"--max-model-len", o.max_model_len}, std::pair{"--block-size", o.block_size}})
      if (v < 1 || v > 65535) throw std::invalid_argument(fmt::format("{}: {} is outside 1..65535", name, v));
    GPUCAL_CUDA_CHECK(cudaFree(nullptr));  // the CUDA context, before the first measurement
    std::size_t free = 0, total = 0;
    GPUCAL_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    mem.device_total_bytes = static_cast<std::int64_t>(total);
    mem.free_at_start_bytes = static_cast<std::int64_t>(free);
    mem.budget_bytes = static_cast<std::int64_t>(std::floor(static_cast<double>(total) * o.gpu_memory_utilization));
    GPUCAL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const std::int64_t before_lt = free_bytes();
    lt = std::make_unique<k::lt_context>();
    mem.non_allocator_bytes = before_lt - free_bytes();
    max_blocks = static_cast<std::int32_t>((o.max_model_len + o.block_size - 1) / o.block_size);
    allocate_inputs();
  }

  ~impl() {
    for (auto& [key, g] : graphs) GPUCAL_CUDA_CHECK_NOTHROW(cudaGraphExecDestroy(g.exec));
    layers.clear();
    plans.clear();
    lt.reset();
    if (stream) GPUCAL_CUDA_CHECK_NOTHROW(cudaStreamDestroy(stream));
  }

  // A host-to-device copy on the engine's stream, so every later step sees it
  // (a pageable source has been staged when the call returns: it may go).
  void upload(void* dst, const void* src, std::size_t bytes) {
    GPUCAL_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream));
  }

  device_block weight(std::int64_t bytes) { return device_block(alloc, static_cast<std::size_t>(bytes), memory_use::weights); }
  device_block act(std::int64_t bytes) { return device_block(alloc, static_cast<std::size_t>(bytes), memory_use::activations); }

  void allocate_inputs() {
    const std::int64_t T = o.max_num_batched_tokens;
    const auto in = [&](std::int64_t bytes) { return device_block(alloc, static_cast<std::size_t>(bytes), memory_use::inputs); };
    ids = in(T * 4);
    positions = in(T * 4);
    slots = in(T * 8);
    context_lens = in(T * 4);
    tables = in(T * max_blocks * 4);
    sample_rows = in(T * 4);
    out_ids = in(T * 4);
    seq_starts = in(T * 4);
    seq_query_lens = in(T * 4);
    seq_context_lens = in(T * 4);
    x_scale = in(4);
    std::vector<double> f = k::rope_inv_freq(m.head_dim, m.rope_theta, m.rope_scaling);
    std::vector<float> ff(f.begin(), f.end());
    inv_freq = in(static_cast<std::int64_t>(ff.size() * 4));
    upload(inv_freq.data(), ff.data(), ff.size() * 4);
    mem.inputs_bytes = static_cast<std::int64_t>(alloc.by_use(memory_use::inputs).live);
  }

  // --- weights ---------------------------------------------------------------

  void allocate_weights() {
    embed = weight(m.vocab * m.hidden * 2);
    for (std::int64_t l = 0; l < m.layers; ++l) {
      dev_layer L;
      L.input_norm = weight(m.hidden * 2);
      L.qkv = linear_block(m.qkv_width(), m.hidden);
      if (m.qkv_bias) L.qkv_bias = weight(m.qkv_width() * 2);
      L.o = linear_block(m.hidden, m.q_width());
      L.post_attention_norm = weight(m.hidden * 2);
      L.gate_up = linear_block(2 * m.intermediate, m.hidden);
      L.down = linear_block(m.hidden, m.intermediate);
      layers.push_back(std::move(L));
    }
    final_norm = weight(m.hidden * 2);
    if (!m.tie_embeddings) lm_head = weight(m.vocab * m.hidden * 2);
    mem.weights_bytes = static_cast<std::int64_t>(alloc.by_use(memory_use::weights).live);
    if (mem.weights_bytes != weight_bytes(m))
      throw std::logic_error(fmt::format("engine: {} weight bytes allocated, {} expected", mem.weights_bytes, weight_bytes(m)));
  }

  dev_linear linear_block(std::int64_t rows, std::int64_t cols) {
    if ((rows * cols) % 16 != 0) throw std::invalid_argument(fmt::format("engine: a {} x {} weight is not 16-byte divisible", rows, cols));
    dev_linear d;
    d.rows = rows;
    d.cols = cols;
    d.data = weight(linear_weight_bytes(m.format, rows, cols));
    return d;
  }

  void random_weights() {
    std::uint64_t seed = o.seed * 1000003;
    const auto fill = [&](const device_block& b, float lo, float hi) {
      k::fill_random_bf16(b.data(), b.bytes() / 2, lo, hi, ++seed, stream);
    };
    const auto fill_linear = [&](const dev_linear& d) {
      const float a = std::sqrt(3.0f / static_cast<float>(d.cols));
      switch (m.format) {
        case linear_format::bf16:
          k::fill_random_bf16(d.codes(), static_cast<std::size_t>(d.rows * d.cols), -a, a, ++seed, stream);
          break;
        case linear_format::fp8: {
          k::fill_random_fp8_e4m3(d.codes(), static_cast<std::size_t>(d.rows * d.cols), -403.0f, 403.0f, ++seed, stream);
          const float s = a / 403.0f;
          GPUCAL_CUDA_CHECK(cudaMemcpyAsync(d.fp8_scale(), &s, 4, cudaMemcpyHostToDevice, stream));
          GPUCAL_CUDA_CHECK(cudaStreamSynchronize(stream));  // `s` is on this stack frame
          break;
        }
        case linear_format::w4a16: {
          // Codes uniform in 0..15 around a zero point of 8: (code - 8) has variance 21.25,
          // so scales near 1 / sqrt(21.25 cols) give weights of variance 1 / cols.
          k::fill_random_bytes(d.codes(), static_cast<std::size_t>(d.rows * d.cols / 2), ++seed, stream);
          const float s = 1.0f / std::sqrt(21.25f * static_cast<float>(d.cols));
          k::fill_random_bf16(const_cast<void*>(d.scales()), static_cast<std::size_t>(d.rows * d.groups()), 0.9f * s, 1.1f * s,
                              ++seed, stream);
          GPUCAL_CUDA_CHECK(cudaMemsetAsync(const_cast<std::uint8_t*>(d.zeros()), 8, static_cast<std::size_t>(d.rows * d.groups()), stream));
          break;
        }
      }
    };
    fill(embed, -1, 1);
    for (auto& L : layers) {
      fill(L.input_norm, 0.8f, 1.2f);
      fill(L.post_attention_norm, 0.8f, 1.2f);
      if (m.qkv_bias) fill(L.qkv_bias, -0.1f, 0.1f);
      for (const dev_linear* d : {&L.qkv, &L.o, &L.gate_up, &L.down}) fill_linear(*d);
    }
    fill(final_norm, 0.8f, 1.2f);
    if (!m.tie_embeddings) {
      const float a = std::sqrt(3.0f / static_cast<float>(m.hidden));
      fill(lm_head, -a, a);
    }
    GPUCAL_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  void upload_weights(const host_weights& w) {
    const auto check = [&](std::size_t got, std::int64_t want, const char* what) {
      if (static_cast<std::int64_t>(got) != want)
        throw std::invalid_argument(fmt::format("engine: host weight {} has {} elements, {} expected", what, got, want));
    };
    const auto put = [&](const device_block& b, const std::vector<float>& v, std::int64_t n, const char* what) {
      check(v.size(), n, what);
      const auto bits = bf16_bits(v);
      upload(b.data(), bits.data(), bits.size() * 2);
    };
    const auto put_linear = [&](const dev_linear& d, const host_linear& h, const char* what) {
      if (h.rows != d.rows || h.cols != d.cols)
        throw std::invalid_argument(fmt::format("engine: host weight {} is {} x {}, {} x {} expected", what, h.rows, h.cols, d.rows, d.cols));
      switch (m.format) {
        case linear_format::bf16: {
          check(h.values.size(), d.rows * d.cols, what);
          const auto bits = bf16_bits(h.values);
          upload(d.codes(), bits.data(), bits.size() * 2);
          break;
        }
        case linear_format::fp8: {
          check(h.values.size(), d.rows * d.cols, what);
          std::vector<std::uint8_t> codes(h.values.size());
          for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = k::float_to_fp8_e4m3_bits(h.values[i]);
          upload(d.codes(), codes.data(), codes.size());
          upload(d.fp8_scale(), &h.scale, 4);
          break;
        }
        case linear_format::w4a16: {
          if (!h.int4 || h.int4->group != w4a16_group)
            throw std::invalid_argument(fmt::format("engine: host weight {} needs int4 codes in groups of {}", what, w4a16_group));
          upload(d.codes(), h.int4->packed.data(), h.int4->packed.size() * 4);
          upload(const_cast<void*>(d.scales()), h.int4->scales.data(), h.int4->scales.size() * 2);
          upload(const_cast<std::uint8_t*>(d.zeros()), h.int4->zeros.data(), h.int4->zeros.size());
          break;
        }
      }
    };
    put(embed, w.embed, m.vocab * m.hidden, "embed");
    if (static_cast<std::int64_t>(w.layers.size()) != m.layers)
      throw std::invalid_argument(fmt::format("engine: {} host layers for {} layers", w.layers.size(), m.layers));
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const host_layer& h = w.layers[l];
      dev_layer& L = layers[l];
      put(L.input_norm, h.input_norm, m.hidden, "input_norm");
      put(L.post_attention_norm, h.post_attention_norm, m.hidden, "post_attention_norm");
      if (m.qkv_bias) put(L.qkv_bias, h.qkv_bias, m.qkv_width(), "qkv_bias");
      put_linear(L.qkv, h.qkv, "qkv");
      put_linear(L.o, h.o, "o");
      put_linear(L.gate_up, h.gate_up, "gate_up");
      put_linear(L.down, h.down, "down");
    }
    put(final_norm, w.final_norm, m.hidden, "final_norm");
    if (!m.tie_embeddings) put(lm_head, w.lm_head, m.vocab * m.hidden, "lm_head");
  }

  // --- set-up: profile, arena, KV pool ---------------------------------------

  void set_up() {
    // Profile a forward over max_num_batched_tokens tokens in min(tokens,
    // max_num_seqs) sequences, sampling every sequence, in a provisional arena
    // of half the free memory, against a temporary KV pool just big enough.
    const std::int64_t T = o.max_num_batched_tokens;
    const std::int64_t R = std::min(T, o.max_num_seqs);
    profile_tokens = T;
    mem.profile_tokens = T;
    mem.profile_rows = R;
    forward_batch b(max_blocks);
    std::int64_t next_block = 0;
    for (std::int64_t s = 0; s < R; ++s) {
      const std::int64_t len = T / R + (s < T % R ? 1 : 0);
      if (len > o.max_model_len)
        throw std::invalid_argument(fmt::format("--max-num-batched-tokens {} over --max-num-seqs {} gives sequences longer than --max-model-len {}",
                                                T, R, o.max_model_len));
      std::vector<std::int32_t> table;
      for (std::int64_t i = 0; i < (len + o.block_size - 1) / o.block_size; ++i) table.push_back(static_cast<std::int32_t>(next_block++));
      std::vector<std::int32_t> tok(static_cast<std::size_t>(len));
      for (std::int64_t i = 0; i < len; ++i) tok[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((s * 7919 + i * 104729) % m.vocab);
      b.append_sequence(tok, 0, table, o.block_size, true);
    }
    allocate_kv(next_block);
    alloc.reserve_arena(static_cast<std::size_t>(free_bytes() / 2));
    run(b, nullptr, true);
    const arena* a = alloc.activation_arena();
    mem.activation_peak_bytes = static_cast<std::int64_t>(a->peak_live_bytes());
    mem.activation_reserved_bytes = (static_cast<std::int64_t>(a->high_water_bytes()) + arena_rounding - 1) / arena_rounding * arena_rounding;
    alloc.release_arena();
    for (auto& L : layers) L.kv.reset();
    alloc.reserve_arena(static_cast<std::size_t>(mem.activation_reserved_bytes));

    mem.block_bytes = 2 * m.layers * o.block_size * m.kv_width() * 2;
    const std::int64_t pool = mem.budget_bytes - mem.weights_bytes - mem.activation_reserved_bytes - mem.non_allocator_bytes -
                              mem.inputs_bytes;
    const std::int64_t blocks = o.num_blocks.value_or(pool > 0 ? pool / mem.block_bytes : 0);
    if (blocks < 1)
      throw std::runtime_error(fmt::format(
          "{} does not fit: budget {:.2f} GiB - weights {:.2f} GiB - activations {:.2f} GiB - cuBLASLt {:.2f} GiB - inputs "
          "{:.2f} GiB leaves no KV block of {} bytes (run fewer layers with --layers)",
          m.name, gib(mem.budget_bytes), gib(mem.weights_bytes), gib(mem.activation_reserved_bytes),
          gib(mem.non_allocator_bytes), gib(mem.inputs_bytes), mem.block_bytes));
    allocate_kv(blocks);
    mem.num_blocks = blocks;
    mem.kv_pool_bytes = static_cast<std::int64_t>(alloc.by_use(memory_use::kv_cache).live);
    mem.device_used_bytes = mem.device_total_bytes - free_bytes();
  }

  static double gib(std::int64_t b) { return static_cast<double>(b) / (1ull << 30); }

  void allocate_kv(std::int64_t blocks) {
    for (auto& L : layers) {
      L.kv.reset();
      L.kv = device_block(alloc, static_cast<std::size_t>(2 * blocks * o.block_size * m.kv_width() * 2), memory_use::kv_cache);
    }
    kv_blocks = blocks;
  }
  std::int64_t kv_blocks = 0;

  // --- the forward -------------------------------------------------------------

  const k::lt_gemm_plan& plan(k::gemm_dtype dt, std::int64_t mrows, std::int64_t n, std::int64_t kk) {
    const auto key = std::make_tuple(mrows, n, kk, static_cast<int>(dt));
    auto it = plans.find(key);
    if (it == plans.end()) {
      std::string reason;
      auto p = k::lt_gemm_plan::create(*lt, dt, {mrows, n, kk}, &reason);
      if (!p) throw std::runtime_error(fmt::format("cuBLASLt has no {} algorithm for M={} N={} K={}: {}", k::gemm_dtype_name(dt), mrows, n, kk, reason));
      it = plans.emplace(key, std::move(*p)).first;
    }
    return it->second;
  }

  void linear(const dev_linear& w, const void* x, void* y, std::int64_t rows) {
    switch (m.format) {
      case linear_format::bf16:
        plan(k::gemm_dtype::bf16, rows, w.rows, w.cols).run(*lt, x, w.codes(), y, nullptr, nullptr, stream);
        break;
      case linear_format::fp8: {
        device_block xq = act(rows * w.cols);
        k::quantize_fp8_per_tensor(x, rows * w.cols, xq.data(), x_scale.as<float>(), stream);
        plan(k::gemm_dtype::fp8_e4m3, rows, w.rows, w.cols).run(*lt, xq.data(), w.codes(), y, x_scale.as<float>(), w.fp8_scale(), stream);
        break;
      }
      case linear_format::w4a16:
        k::w4a16_gemm(x, w.packed(), w.scales(), w.zeros(), y, static_cast<int>(rows), static_cast<int>(w.rows),
                      static_cast<int>(w.cols), static_cast<int>(w4a16_group), stream);
        break;
    }
  }

  void copy_inputs(const forward_batch& b) {
    const std::int64_t T = b.tokens(), R = static_cast<std::int64_t>(b.sample_rows.size());
    if (T < 1 || T > o.max_num_batched_tokens)
      throw std::invalid_argument(fmt::format("engine step: {} tokens (allowed: 1..{})", T, o.max_num_batched_tokens));
    if (R < 1) throw std::invalid_argument("engine step: no sampled row");
    if (b.max_blocks_per_seq != max_blocks)
      throw std::invalid_argument(fmt::format("engine step: block tables of {} columns, the engine uses {}", b.max_blocks_per_seq, max_blocks));
    for (std::int64_t t = 0; t < T; ++t) {
      const auto i = static_cast<std::size_t>(t);
      if (b.input_ids[i] < 0 || b.input_ids[i] >= m.vocab) throw std::invalid_argument(fmt::format("engine step: input_ids[{}] = {}", t, b.input_ids[i]));
      if (b.slot_mapping[i] < 0 || b.slot_mapping[i] >= kv_blocks * o.block_size)
        throw std::invalid_argument(fmt::format("engine step: slot_mapping[{}] = {} outside {} blocks", t, b.slot_mapping[i], kv_blocks));
      if (b.context_lens[i] > o.max_model_len)
        throw std::invalid_argument(fmt::format("engine step: context {} exceeds --max-model-len {}", b.context_lens[i], o.max_model_len));
    }
    // Every token row of a sequence holds a copy of its table: one row per sequence is checked.
    for (const std::int32_t first : b.first_tokens)
      for (std::int32_t c = 0; c < max_blocks; ++c) {
        const std::int32_t blk = b.block_tables[static_cast<std::size_t>(first) * static_cast<std::size_t>(max_blocks) + static_cast<std::size_t>(c)];
        if (blk < 0 || blk >= kv_blocks) throw std::invalid_argument(fmt::format("engine step: block {} outside the pool", blk));
      }
    const auto copy = [&](const device_block& d, const void* src, std::size_t bytes) {
      GPUCAL_CUDA_CHECK(cudaMemcpyAsync(d.data(), src, bytes, cudaMemcpyHostToDevice, stream));
    };
    const auto n = static_cast<std::size_t>(T);
    copy(ids, b.input_ids.data(), n * 4);
    copy(positions, b.positions.data(), n * 4);
    copy(slots, b.slot_mapping.data(), n * 8);
    copy(context_lens, b.context_lens.data(), n * 4);
    copy(tables, b.block_tables.data(), b.block_tables.size() * 4);
    copy(sample_rows, b.sample_rows.data(), static_cast<std::size_t>(R) * 4);
    // Each sequence's rows run from its first token to the next sequence's.
    // Per sequence, as append_sequence recorded them (consecutive rows, contexts holding their chunks).
    const auto S = static_cast<std::size_t>(b.sequences());
    if (S == 0 || b.query_lens.size() != S || b.seq_context_lens.size() != S)
      throw std::invalid_argument("engine step: per-sequence lengths do not match the batch's sequences");
    step_sequences = static_cast<std::int32_t>(S);
    step_max_query_len = b.max_query_len();
    copy(seq_starts, b.first_tokens.data(), S * 4);
    copy(seq_query_lens, b.query_lens.data(), S * 4);
    copy(seq_context_lens, b.seq_context_lens.data(), S * 4);
  }

  // One step's attention arguments, built once per forward; each layer sets
  // only its queries, cache and output. Steps that carry a prompt chunk (a
  // sequence with more than one query token) run causal prefill attention
  // over every sequence on tensor cores (unless prefill_kernel is off); pure
  // decode steps run paged decode attention, one query per token row.
  struct step_attention {
    bool prefill = false;
    std::int64_t decode_ws_bytes = 0;  // the decode path's workspace per layer (0: none)
    k::paged_attention_args decode;
    k::prefill_attention_args chunk;
  };

  // `profile`: the set-up's profile forward (a prefill), which holds the decode
  // workspace too, so that the arena it sizes covers every later decode step.
  step_attention plan_attention(int T, std::int64_t max_ctx, bool profile) const {
    k::paged_attention_common common;
    common.block_tables = tables.as<std::int32_t>();
    common.max_blocks_per_seq = max_blocks;
    common.q_heads = static_cast<int>(m.q_heads);
    common.kv_heads = static_cast<int>(m.kv_heads);
    common.head_dim = static_cast<int>(m.head_dim);
    common.block_size = static_cast<int>(o.block_size);
    common.scale = 1.0f / std::sqrt(static_cast<float>(m.head_dim));
    // Decode partitions: at most as many (query, partition) pairs as the
    // profile had queries, so the workspace never outgrows the profiled one.
    const std::int64_t parts_budget = std::max<std::int64_t>(1, profile_tokens / T);
    std::int64_t partition = std::max<std::int64_t>(512, (max_ctx + parts_budget - 1) / parts_budget);
    partition = (partition + 3) / 4 * 4;
    step_attention s;
    static_cast<k::paged_attention_common&>(s.decode) = common;
    s.decode.context_lens = context_lens.as<std::int32_t>();
    s.decode.batch = T;
    s.decode.max_context_len = static_cast<int>(max_ctx);
    s.decode.partition_tokens = static_cast<int>(partition);
    s.prefill = step_max_query_len > 1 && o.prefill_kernel;
    if (!s.prefill || profile) s.decode_ws_bytes = static_cast<std::int64_t>(k::paged_attention_workspace_bytes(s.decode));
    if (s.prefill) {
      static_cast<k::paged_attention_common&>(s.chunk) = common;
      s.chunk.table_rows = seq_starts.as<std::int32_t>();  // every token row holds its sequence's table: the first one's
      s.chunk.query_starts = seq_starts.as<std::int32_t>();
      s.chunk.query_lens = seq_query_lens.as<std::int32_t>();
      s.chunk.context_lens = seq_context_lens.as<std::int32_t>();
      s.chunk.sequences = step_sequences;
      s.chunk.max_query_len = step_max_query_len;
    }
    return s;
  }

  void attention(step_attention& s, const void* q, const std::uint8_t* k_cache, const std::uint8_t* v_cache, void* out) {
    device_block ws = s.decode_ws_bytes ? act(s.decode_ws_bytes) : device_block();
    k::paged_attention_common& c = s.prefill ? static_cast<k::paged_attention_common&>(s.chunk) : s.decode;
    c.q = q;
    c.k_cache = k_cache;
    c.v_cache = v_cache;
    c.out = out;
    if (s.prefill) {
      k::prefill_attention(s.chunk, stream);
      return;
    }
    s.decode.workspace = ws.data();
    k::paged_attention(s.decode, stream);
  }

  // Runs the forward; the caller synchronizes. Returns the logits block (bf16 [R][vocab]).
  // `max_ctx` bounds the step's contexts: the batch's own, or --max-model-len
  // for a captured decode graph (whose attention grid must fit every replay).
  device_block forward(const forward_batch& b, std::int64_t max_ctx, bool profile) {
    const auto T = b.tokens();
    const auto R = static_cast<std::int64_t>(b.sample_rows.size());
    const int Ti = static_cast<int>(T);
    const std::int64_t H = m.hidden;
    device_block x = act(T * H * 2);
    k::embedding_gather(ids.as<std::int32_t>(), embed.data(), x.data(), Ti, static_cast<int>(H), stream);

    step_attention sa = plan_attention(Ti, max_ctx, profile);

    for (auto& L : layers) {
      device_block h = act(T * H * 2);
      k::rms_norm(x.data(), L.input_norm.data(), h.data(), Ti, static_cast<int>(H), static_cast<float>(m.rms_eps), stream);
      device_block qkv = act(T * m.qkv_width() * 2);
      linear(L.qkv, h.data(), qkv.data(), T);
      h.reset();
      device_block q = act(T * m.q_width() * 2), kk = act(T * m.kv_width() * 2), v = act(T * m.kv_width() * 2);
      k::split_qkv(qkv.data(), m.qkv_bias ? L.qkv_bias.data() : nullptr, q.data(), kk.data(), v.data(), Ti,
                   static_cast<int>(m.q_width()), static_cast<int>(m.kv_width()), stream);
      qkv.reset();
      k::rope(q.data(), kk.data(), positions.as<std::int32_t>(), inv_freq.as<float>(), Ti, static_cast<int>(m.q_heads),
              static_cast<int>(m.kv_heads), static_cast<int>(m.head_dim), stream);
      auto* k_cache = L.kv.as<std::uint8_t>();
      auto* v_cache = k_cache + kv_blocks * o.block_size * m.kv_width() * 2;
      k::kv_append(kk.data(), v.data(), slots.as<std::int64_t>(), k_cache, v_cache, k::kv_dtype::bf16, 1, 1, Ti,
                   static_cast<int>(m.kv_heads), static_cast<int>(m.head_dim), stream);
      kk.reset();
      v.reset();
      device_block attn = act(T * m.q_width() * 2);
      attention(sa, q.data(), k_cache, v_cache, attn.data());
      q.reset();
      device_block out = act(T * H * 2);
      linear(L.o, attn.data(), out.data(), T);
      attn.reset();
      device_block x2 = act(T * H * 2);
      k::residual_add(x.data(), out.data(), x2.data(), T * H, stream);
      x = std::move(x2);
      out.reset();

      h = act(T * H * 2);
      k::rms_norm(x.data(), L.post_attention_norm.data(), h.data(), Ti, static_cast<int>(H), static_cast<float>(m.rms_eps), stream);
      device_block gu = act(T * 2 * m.intermediate * 2);
      linear(L.gate_up, h.data(), gu.data(), T);
      h.reset();
      device_block a2 = act(T * m.intermediate * 2);
      k::silu_mul(gu.data(), a2.data(), Ti, static_cast<int>(m.intermediate), stream);
      gu.reset();
      device_block d = act(T * H * 2);
      linear(L.down, a2.data(), d.data(), T);
      a2.reset();
      x2 = act(T * H * 2);
      k::residual_add(x.data(), d.data(), x2.data(), T * H, stream);
      x = std::move(x2);
    }
    device_block rows = act(R * H * 2);
    k::embedding_gather(sample_rows.as<std::int32_t>(), x.data(), rows.data(), static_cast<int>(R), static_cast<int>(H), stream);
    x.reset();
    device_block hn = act(R * H * 2);
    k::rms_norm(rows.data(), final_norm.data(), hn.data(), static_cast<int>(R), static_cast<int>(H), static_cast<float>(m.rms_eps), stream);
    rows.reset();
    device_block logits = act(R * m.vocab * 2);
    plan(k::gemm_dtype::bf16, R, m.vocab, H).run(*lt, hn.data(), m.tie_embeddings ? embed.data() : lm_head.data(), logits.data(),
                                                 nullptr, nullptr, stream);
    hn.reset();
    k::argmax(logits.data(), out_ids.as<std::int32_t>(), static_cast<int>(R), static_cast<int>(m.vocab), stream);
    return logits;
  }

  // One captured decode step per (tokens, sampled rows), as vLLM keeps one
  // graph per decode batch size. A forward allocates the same arena ranges in
  // the same order every time its shape recurs (the arena is empty between
  // steps), so the captured addresses stay the graph's: its logits included.
  struct decode_graph {
    cudaGraphExec_t exec = nullptr;
    const void* logits = nullptr;
  };
  std::map<std::pair<std::int64_t, std::int64_t>, decode_graph> graphs;

  const void* replay_decode_graph(const forward_batch& b) {
    const std::pair<std::int64_t, std::int64_t> key{b.tokens(), static_cast<std::int64_t>(b.sample_rows.size())};
    auto it = graphs.find(key);
    if (it == graphs.end()) {
      // One eager forward of the same shape first: every kernel and cuBLASLt
      // plan it uses is loaded and created before the capture (lazy module
      // loading during a capture needs a CUDA 12.3+ driver), as vLLM warms up
      // before capturing.
      forward(b, o.max_model_len, false);
      const std::int64_t free_before = free_bytes();
      GPUCAL_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      decode_graph g;
      cudaGraph_t graph = nullptr;
      try {
        device_block logits = forward(b, o.max_model_len, false);
        g.logits = logits.data();
      } catch (...) {
        if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
        throw;
      }
      GPUCAL_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
      const cudaError_t st = cudaGraphInstantiate(&g.exec, graph, 0);
      GPUCAL_CUDA_CHECK_NOTHROW(cudaGraphDestroy(graph));
      GPUCAL_CUDA_CHECK(st);
      mem.cuda_graph_bytes += std::max<std::int64_t>(0, free_before - free_bytes());
      ++mem.cuda_graphs_captured;
      it = graphs.emplace(key, g).first;
    }
    GPUCAL_CUDA_CHECK(cudaGraphLaunch(it->second.exec, stream));
    ++mem.cuda_graph_launches;
    return it->second.logits;
  }

  // `profile`: the set-up's profile forward (eager, holding the decode workspace).
  std::vector<std::int32_t> run(const forward_batch& b, std::vector<float>* logits_out, bool profile = false) {
    copy_inputs(b);
    device_block eager_logits;
    const void* logits = nullptr;
    if (o.cuda_graphs && step_max_query_len == 1 && !profile) {
      logits = replay_decode_graph(b);
    } else {
      eager_logits = forward(b, b.max_context_len(), profile);
      logits = eager_logits.data();
    }
    const std::size_t R = b.sample_rows.size();
    std::vector<std::int32_t> out(R);
    GPUCAL_CUDA_CHECK(cudaMemcpyAsync(out.data(), out_ids.data(), R * 4, cudaMemcpyDeviceToHost, stream));
    std::vector<std::uint16_t> bits;
    if (logits_out) {
      bits.resize(R * static_cast<std::size_t>(m.vocab));
      GPUCAL_CUDA_CHECK(cudaMemcpyAsync(bits.data(), logits, bits.size() * 2, cudaMemcpyDeviceToHost, stream));
    }
    GPUCAL_CUDA_CHECK(cudaStreamSynchronize(stream));
    GPUCAL_CUDA_CHECK(cudaGetLastError());
    if (logits_out) {
      logits_out->resize(bits.size());
      for (std::size_t i = 0; i < bits.size(); ++i) (*logits_out)[i] = k::bf16_bits_to_float(bits[i]);
    }
    return out;
  }
};

reference_engine::reference_engine(const engine_model& m, const engine_options& o) : p_(std::make_unique<impl>(m, o)) {
  p_->allocate_weights();
  p_->random_weights();
  p_->set_up();
}

reference_engine::reference_engine(const engine_model& m, const engine_options& o, const host_weights& w)
    : p_(std::make_unique<impl>(m, o)) {
  p_->allocate_weights();
  p_->upload_weights(w);
  p_->set_up();
}

reference_engine::~reference_engine() = default;

const engine_model& reference_engine::model() const { return p_->m; }
const engine_options& reference_engine::options() const { return p_->o; }
const engine_memory& reference_engine::memory() const { return p_->mem; }
std::int32_t reference_engine::max_blocks_per_seq() const { return p_->max_blocks; }

std::vector<std::int32_t> reference_engine::step(const forward_batch& b, std::vector<float>* logits) {
  return p_->run(b, logits);
}

}  // namespace gpucal::engine
