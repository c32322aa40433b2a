// Roofline per operator for one engine step (see throughput_model.hpp and
// DESIGN.md, "The throughput model"). Shapes come from the same tensor
// inventory as the memory model, so weights bytes agree between the two.
#include "gpucal/model/throughput_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/tensor_inventory.hpp"

namespace gpucal::model {

std::string_view bound_name(bound b) {
  switch (b) {
    case bound::compute: return "compute";
    case bound::memory: return "memory";
    case bound::latency: return "latency";
    case bound::overhead: return "overhead";
  }
  return "?";
}

double expected_distinct_experts(double experts, double k, double tokens) {
  if (tokens <= 0) return 0;
  return experts * (1.0 - std::pow(1.0 - k / experts, tokens));
}

double allreduce_time_s(double bytes, int tp, double link_gbps, double efficiency, double latency_us) {
  if (tp <= 1) return 0;
  const double moved = 2.0 * (tp - 1) / tp * bytes;  // ring: reduce-scatter + all-gather
  return latency_us * 1e-6 + moved / (link_gbps * 1e9 * efficiency);
}

std::string step_overhead_choice::origin() const {
  if (!from_coefficients) return "engine profile " + overhead_us.source;
  return overhead_us.source == "measured" ? "measured, calibration" : overhead_us.source + ", coefficients";
}

std::string step_overhead_choice::describe() const {
  return fmt::format("{:g} us ({})", overhead_us.value, origin());
}

step_overhead_choice choose_step_overhead(const throughput_coefficients& c, const engine_profile& engine) {
  const auto it = c.step_overhead_us.find(engine.engine);
  if (it != c.step_overhead_us.end()) return {it->second, true};
  return {engine.step_overhead_us, false};
}

namespace {

double peak_or_throw(const gpu_spec& gpu, const std::string& key) {
  const auto it = gpu.peak_tflops.find(key);
  if (it == gpu.peak_tflops.end())
    throw input_error(fmt::format("--gpu: {} has no published dense {} peak in gpus.json; the throughput model cannot "
                                  "time it", gpu.name, key));
  return it->second;
}

std::string op_of(const tensor_group& g) {
  const std::string& n = g.name;
  switch (g.role) {
    case tensor_role::expert: return g.per_layer() > 1 ? "experts" : "latent_proj";
    case tensor_role::shared_expert: return "shared_experts";
    case tensor_role::router: return "router";
    case tensor_role::linear_attention: return "linear_attn_proj";
    case tensor_role::mamba: return "mamba_proj";
    case tensor_role::indexer: return "indexer_proj";
    case tensor_role::attention:
      return n.find("o_proj") != std::string::npos ? "o_proj" : "qkv_proj";  // q/k/v and the MLA projections
    case tensor_role::mlp: return n.find("down_proj") != std::string::npos ? "down_proj" : "gate_up_proj";
    default: return "other_proj";
  }
}

}  // namespace

throughput_model::throughput_model(const model_spec& m, const gpu_spec& gpu, const resolved_settings& settings,
                                   const throughput_coefficients& c, const engine_profile& engine,
                                   const tensor_inventory* inventory)
    : m_(m), settings_(settings), c_(c), step_overhead_(choose_step_overhead(c, engine)) {
  if (settings.pp > 1) {
    resolved_settings one = settings;
    one.pp = 1;
    for (const model_spec& st : pipeline_stages(m, settings.pp)) stages_.emplace_back(st, gpu, one, c, engine);
    gemm_kind_ = stages_.front().gemm_kind_;
    gemm_peak_tflops_ = stages_.front().gemm_peak_tflops_;
    link_gbps_ = stages_.front().link_gbps_;
    link_name_ = stages_.front().link_name_;
    if (!(link_gbps_ > 0))
      throw input_error(fmt::format("--pipeline-parallel-size: {} has neither NVLink nor PCIe bandwidth in gpus.json; the "
                                    "hand-off between pipeline stages cannot be timed", gpu.name));
    return;
  }
  const int tp = settings.tp;
  hbm_bytes_per_s_ = gpu.hbm_bandwidth_gbps * 1e9;
  act_bytes_ = dtype_bytes(settings.model_dtype);
  const std::string peak16_key = settings.model_dtype == dtype::float16 ? "fp16"
                                 : settings.model_dtype == dtype::float32 ? "fp32" : "bf16";
  peak16_flops_ = peak_or_throw(gpu, peak16_key) * 1e12;

  // Kernel family of one linear weight: W8A8 fp8 or int8 on tensor cores where
  // the GPU has them, NVFP4/MXFP4 W4A4 on fp4 tensor cores (Blackwell),
  // otherwise weight-only (dequantized to 16 bits in the kernel: int4, fp4
  // before Blackwell, fp8 on Ampere as Marlin does).
  const auto kind_of = [&](const quant_format& f) -> std::pair<std::string, double> {
    if (!f.quantized()) return {"bf16", peak16_flops_};
    const bool weight_only = (f.granularity == scale_granularity::group && *f.weight != dtype::fp4_e2m1) || *f.weight == dtype::int4;
    if (*f.weight == dtype::fp8_e4m3 && gpu.supports("fp8") && !weight_only) return {"fp8", peak_or_throw(gpu, "fp8") * 1e12};
    if (*f.weight == dtype::int8 && !weight_only && gpu.supports("int8")) return {"int8", peak_or_throw(gpu, "int8") * 1e12};
    if (*f.weight == dtype::fp4_e2m1 && f.name == "nvfp4" && gpu.supports("fp4")) return {"fp4", peak_or_throw(gpu, "fp4") * 1e12};
    return {"w4a16", peak16_flops_};
  };

  // All-reduce link: NVLink inside an NVLink-switch domain (SXM boards, NVL72
  // racks; AMD Instinct boards are fully connected by Infinity Fabric) for any
  // tp; on PCIe cards a bridge joins pairs only, so tp > 2 goes over PCIe.
  const auto has = [&](const char* part) { return gpu.slug.find(part) != std::string::npos; };
  const bool switched = has("sxm") || has("b200") || has("b300") || has("nvl72") || has("mi3");
  if (gpu.nvlink_gbps && (switched || tp <= 2)) {
    link_gbps_ = *gpu.nvlink_gbps;
    link_name_ = has("mi3") ? "Infinity Fabric" : "NVLink";
  } else if (gpu.pcie_gbps) {
    link_gbps_ = *gpu.pcie_gbps;
    link_name_ = "PCIe";
  } else if (tp > 1) {
    throw input_error(fmt::format("--gpu: {} has neither NVLink nor PCIe bandwidth in gpus.json; tp > 1 cannot be timed",
                                  gpu.name));
  }

  const quant_spec& q = settings.quant;
  std::optional<tensor_inventory> own;
  if (!inventory || inventory->tp != tp) own = build_inventory(m, tp);
  const tensor_inventory& inv = own ? *own : *inventory;
  std::map<std::string, double> bytes_by_kind;
  for (const auto& g : inv.groups) {
    if (!g.loaded || g.role == tensor_role::vision) continue;  // MTP layers idle; the vision tower runs on images only
    const bool head = g.role == tensor_role::lm_head || (g.role == tensor_role::embedding && m.tie_word_embeddings);
    if (!g.linear && !head && g.role != tensor_role::router) continue;
    linear_op op;
    op.op = head ? "lm_head" : op_of(g);
    op.lm_head = head;
    op.n = static_cast<double>(g.rank_rows);
    op.k = static_cast<double>(g.rank_cols);
    op.weight_bytes = group_weight_bytes(g, q, settings.model_dtype) / static_cast<double>(g.count);
    op.count = static_cast<double>(g.count);
    // The LM head and the router run at 16-bit rates whatever the linear format.
    const quant_format& f = g.linear ? q.format_for(g.layer_ids.empty() ? g.module : [&] {
      std::string name = g.module;
      const auto at = name.find("{i}");
      if (at != std::string::npos) name.replace(at, 3, std::to_string(g.layer_ids.front()));
      return name;
    }()) : quant_format{};
    std::tie(op.kind, op.peak_flops) = kind_of(g.linear ? f : quant_format{});
    op.routed = g.role == tensor_role::expert && g.per_layer() > 1;
    if (op.routed) {
      op.experts = static_cast<double>(g.per_layer());
      op.layers = static_cast<double>(g.layer_ids.size());
      op.top_k = static_cast<double>(m.layers[static_cast<std::size_t>(g.layer_ids.front())].moe->experts_per_token);
    }
    if (g.linear) bytes_by_kind[op.kind] += op.weight_bytes * op.count;
    // Its GEMM curve, resolved once: fp4 without its own curve takes fp8's shape.
    const gemm_curve& curve = c_.gemm.contains(op.kind) ? c_.curve(op.kind) : c_.curve("fp8");
    op.curve = curve;
    linears_.push_back(op);
  }
  gemm_kind_ = "bf16";
  double most = -1;
  for (const auto& [kind, bytes] : bytes_by_kind)
    if (bytes > most) {
      most = bytes;
      gemm_kind_ = kind;
    }
  for (const auto& op : linears_)
    if (op.kind == gemm_kind_) gemm_peak_tflops_ = op.peak_flops / 1e12;
  if (gemm_peak_tflops_ == 0) gemm_peak_tflops_ = peak16_flops_ / 1e12;

  kv_cache_options ko;
  ko.kv_dtype = settings.kv_dtype;
  ko.model_dtype = settings.model_dtype;
  ko.tp = tp;
  ko.compute_major = gpu.compute_capability.empty() || !std::isdigit(static_cast<unsigned char>(gpu.compute_capability[0]))
                         ? 9
                         : std::stoi(gpu.compute_capability);
  // Layers whose cache and spec repeat are timed once and counted.
  for (const auto& lc : layer_caches(m, ko)) {
    auto same = [&](const std::pair<layer_cache, double>& x) {
      const layer_cache& o = x.first;
      return o.what == lc.what && o.kind == lc.kind && o.bytes_per_token == lc.bytes_per_token && o.window_tokens == lc.window_tokens &&
             o.state_bytes == lc.state_bytes && o.tokens_per_entry == lc.tokens_per_entry &&
             m.layers[static_cast<std::size_t>(o.layer)] == m.layers[static_cast<std::size_t>(lc.layer)];
    };
    const auto it = std::find_if(caches_.begin(), caches_.end(), same);
    if (it == caches_.end()) {
      caches_.emplace_back(lc, 1.0);
    } else {
      it->second += 1;
    }
  }

  // Element-wise traffic per token, napkin math in elements: each mixer and
  // feed-forward block ends in a fused add+RMSNorm that reads x and the
  // residual and writes both (4 x h); a gated activation reads gate|up and
  // writes one (3 x I / tp), a plain one reads and writes I / tp.
  const double h = static_cast<double>(m.hidden_size);
  for (const auto& l : m.layers) {
    if (l.mixer != mixer_kind::none) sublayers_ += 1;
    if (l.mlp || l.moe) sublayers_ += 1;
    double ew = 0;
    if (l.mixer != mixer_kind::none) ew += 4 * h;
    if (l.mlp) ew += 4 * h + (l.mlp->activation == mlp_activation::gated ? 3 : 2) * static_cast<double>(l.mlp->intermediate_size) / tp;
    if (l.moe)
      ew += 4 * h + 3 * static_cast<double>(l.moe->expert_intermediate_size * l.moe->experts_per_token + l.moe->shared_intermediate_size) / tp;
    elementwise_per_token_ += ew;
  }
}

throughput_model::gemm_result throughput_model::gemm(const linear_op& op, double m_rows) const {
  const double flops = 2.0 * m_rows * op.n * op.k;
  const double compute_s = flops / (op.peak_flops * op.curve.compute_at(m_rows));
  // Napkin math: the weights stream once; activations in and out at the model dtype.
  const double bytes = op.weight_bytes + (m_rows * op.k + m_rows * op.n) * act_bytes_;
  const double memory_s = bytes / (hbm_bytes_per_s_ * op.curve.memory_efficiency);
  return compute_s >= memory_s ? gemm_result{compute_s, flops, bytes, bound::compute}
                               : gemm_result{memory_s, flops, bytes, bound::memory};
}

void throughput_model::add(step_time& s, const std::string& name, double t, bound b, double flops, double bytes) {
  for (auto& op : s.ops) {
    if (op.name != name) continue;
    // An operator summed over parts is labelled by the part that takes longest.
    if (t > op.longest_part_s) {
      op.longest_part_s = t;
      op.bound_by = b;
    }
    op.time_s += t;
    op.flops += flops;
    op.bytes += bytes;
    return;
  }
  s.ops.push_back({name, t, b, flops, bytes, t});
}

void throughput_model::add_linear_ops(step_time& s, double tokens, double sampled_rows) const {
  for (const auto& op : linears_) {
    if (op.lm_head) {
      const gemm_result r = gemm(op, sampled_rows);
      add(s, op.op, r.time_s * op.count, r.b, r.flops * op.count, r.bytes * op.count);
    } else if (op.routed) {
      // A MoE layer streams only the experts its tokens touch.
      const double distinct = expected_distinct_experts(op.experts, op.top_k, tokens);
      const gemm_result r = gemm(op, tokens * op.top_k / distinct);
      const double instances = op.layers * distinct * (op.count / (op.layers * op.experts));  // count = layers x experts
      add(s, op.op, r.time_s * instances, r.b, r.flops * instances, r.bytes * instances);
    } else {
      const gemm_result r = gemm(op, tokens);
      add(s, op.op, r.time_s * op.count, r.b, r.flops * op.count, r.bytes * op.count);
    }
  }
}

double throughput_model::attention_time(double flops, double bytes, bool decode, bound& b) const {
  const double cmp_s = flops / (peak16_flops_ * c_.prefill_attention_efficiency.value);
  const double mem_s = bytes / (hbm_bytes_per_s_ * (decode ? c_.decode_attention_efficiency.value : c_.hbm_efficiency.value));
  b = cmp_s > mem_s ? bound::compute : bound::memory;
  return std::max(cmp_s, mem_s);
}

void throughput_model::add_mixers(step_time& s, double batch, double context, bool decode, double tokens_each) const {
  const int tp = settings_.tp;
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  // Causal pairs of a prompt of n tokens when each position sees at most w keys.
  const auto pairs = [](double n, double w) {
    w = std::min(w, n);
    return w * (w + 1) / 2 + (n - w) * w;
  };
  // Keys one decode position attends to, per window kind.
  const auto seen = [&](const layer_cache& c) {
    switch (c.kind) {
      case cache_kind::sliding: return std::min(context, d(c.window_tokens));
      case cache_kind::chunked: return context < d(c.window_tokens) ? context : d(c.window_tokens) / 2;  // within its chunk
      default: return context;
    }
  };
  // DeepSeek-V4: every layer attends to its window, compressed layers also to
  // the compressed entries (heavily compressed: all; sparse: the indexer's
  // top-k), whose indexer scans one entry per 4 tokens. 584-byte fp8 entries.
  for (const auto& l : m_.layers) {
    if (l.mixer != mixer_kind::compressed_mla) continue;
    const compressed_mla_spec& a = l.compressed;
    const double heads = d(a.num_heads / tp), dims = 2.0 * d(a.head_dim), ratio = d(std::max<std::int64_t>(a.compress_ratio, 1));
    const double cap = a.indexer ? d(a.indexer->topk) : 1e300;
    double flops = 0, bytes = 0, index_flops = 0, index_bytes = 0;
    if (decode) {
      const double keys = std::min(context, d(a.window)) + (a.compress_ratio > 0 ? std::min(context / ratio, cap) : 0);
      flops = 2.0 * batch * heads * dims * keys;
      bytes = batch * keys * 584;
      if (a.indexer) {
        index_flops = 2.0 * batch * d(a.indexer->num_heads * a.indexer->head_dim) * context / 4;
        index_bytes = batch * context / 4 * d(a.indexer->cache_bytes_per_token);
      }
    } else {
      const double compressed = a.compress_ratio > 0 ? pairs(tokens_each / ratio, cap) * ratio : 0;
      flops = 2.0 * heads * dims * (pairs(tokens_each, d(a.window)) + compressed) * batch;
      bytes = batch * tokens_each * 584 * (1 + (a.compress_ratio > 0 ? 1 / ratio : 0));
      if (a.indexer) index_flops = 2.0 * d(a.indexer->num_heads * a.indexer->head_dim) * pairs(tokens_each, tokens_each) / 4 * batch;
    }
    bound b = bound::memory;
    add(s, "attention", attention_time(flops, bytes, decode, b), b, flops, bytes);
    if (a.indexer) add(s, "indexer", attention_time(index_flops, index_bytes, decode, b), b, index_flops, index_bytes);
  }
  for (const auto& [c, layers] : caches_) {
    if (c.what == "compressed_mla" || c.what == "swa_window") continue;  // DeepSeek-V4, timed above
    const layer_spec& l = m_.layers[static_cast<std::size_t>(c.layer)];
    double flops = 0, bytes = 0;
    std::string op = "attention";
    if (l.mixer == mixer_kind::attention) {
      const attention_spec& a = l.attention;
      const double dims = d(a.head_dim + std::max(a.v_head_dim, a.head_dim)), heads = d(a.num_heads / tp);
      // Block-sparse attention (MiniMax-M3) attends to its indexer's top-k plus local tokens.
      const double cap = a.indexer ? d(a.indexer->topk + a.indexer->local_tokens) : 1e300;
      if (decode) {
        const double keys = std::min(seen(c), cap);
        flops = 2.0 * batch * heads * dims * keys;
        bytes = batch * keys * d(c.bytes_per_token);  // each sequence reads its cached context once
      } else {
        const double w = c.kind == cache_kind::full ? tokens_each : c.kind == cache_kind::sliding ? d(c.window_tokens)
                                                                                                    : d(c.window_tokens);
        const double p = c.kind == cache_kind::chunked
                             ? std::floor(tokens_each / w) * pairs(w, w) + pairs(std::fmod(tokens_each, w), w)
                             : pairs(tokens_each, std::min(w, cap));
        flops = 2.0 * heads * dims * p * batch;
        bytes = batch * tokens_each * d(c.bytes_per_token);  // the new K and V written once
      }
    } else if (c.what == "mla") {
      const mla_spec& a = l.mla;
      const double heads = d(a.num_heads / tp);
      // DSA attends to its indexer's top-k tokens only.
      const double cap = a.indexer ? d(a.indexer->topk) : 1e300;
      if (decode) {
        // Absorbed form: q and the output live in the latent; keys are the 576-wide latent, values its 512 part.
        const double keys = std::min(context, cap);
        flops = 2.0 * batch * heads * d(2 * a.kv_lora_rank + a.qk_rope_head_dim) * keys;
        bytes = batch * keys * d(c.bytes_per_token);
      } else {
        flops = 2.0 * heads * d(a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim) * pairs(tokens_each, cap) * batch;
        bytes = batch * tokens_each * d(c.bytes_per_token);
      }
    } else if (c.what == "indexer") {
      // The lightning indexer scores every cached token with its fp8 keys.
      const sparse_indexer_spec& x = l.mixer == mixer_kind::mla ? *l.mla.indexer : *l.attention.indexer;
      op = "indexer";
      const double keys = decode ? batch * context : batch * pairs(tokens_each, tokens_each);
      flops = 2.0 * d(x.num_heads * x.head_dim) * keys;
      bytes = decode ? batch * context * d(c.bytes_per_token) : batch * tokens_each * d(c.bytes_per_token);
    } else if (c.what == "gated_deltanet" || c.what == "kda") {
      // Constant in context: each token reads and writes the recurrent state
      // (decode), or a chunked scan updates it once per 64-token chunk (prefill).
      const linear_attention_spec& a = l.linear;
      op = "linear_attention";
      const double heads = d(a.num_v_heads / tp), kv = d(a.head_k_dim * a.head_v_dim);
      const double tokens = decode ? batch : batch * tokens_each;
      flops = tokens * heads * kv * (decode ? 6.0 : 6.0 + 2.0 * 64 / d(a.head_v_dim));
      const double state_moves = decode ? batch : batch * std::ceil(tokens_each / 64);
      bytes = 2.0 * state_moves * d(c.state_bytes);
    } else if (c.what == "mamba2") {
      const mamba2_spec& a = l.mamba;
      op = "mamba";
      const double heads = d(a.num_heads / tp);
      const double tokens = decode ? batch : batch * tokens_each;
      // Per token and head: the state update dA*h + dt*x*B and the readout C*h (3 head_dim x N products);
      // the SSD prefill adds the intra-chunk quadratic term over 256-token chunks.
      flops = tokens * heads * d(a.head_dim * a.state_size) * 6.0 + (decode ? 0 : tokens * heads * d(a.head_dim) * 256 * 2.0);
      const double state_moves = decode ? batch : batch * std::ceil(tokens_each / 256);
      bytes = 2.0 * state_moves * d(c.state_bytes);
    }
    bound b = bound::memory;
    const double t = attention_time(flops, bytes, decode, b);
    add(s, op, t * layers, b, flops * layers, bytes * layers);
  }
}

void throughput_model::add_common_ops(step_time& s, double tokens) const {
  const int tp = settings_.tp;
  const double h = static_cast<double>(m_.hidden_size);
  const double ew_bytes = tokens * elementwise_per_token_ * act_bytes_;
  add(s, "elementwise", ew_bytes / (hbm_bytes_per_s_ * c_.hbm_efficiency.value), bound::memory, 0, ew_bytes);
  if (tp > 1) {
    // One all-reduce after each mixer and each feed-forward block.
    const double per = allreduce_time_s(tokens * h * act_bytes_, tp, link_gbps_, c_.allreduce_efficiency.value,
                                        c_.allreduce_latency_us.value);
    const double moved = 2.0 * (tp - 1) / tp * tokens * h * act_bytes_;
    const bool latency = c_.allreduce_latency_us.value * 1e-6 > per / 2;
    add(s, "allreduce", sublayers_ * per, latency ? bound::latency : bound::memory, 0, sublayers_ * moved);
  }
  add(s, "step_overhead", step_overhead_s(), bound::overhead, 0, 0);
  s.overhead = step_overhead_;
}

step_time throughput_model::stage_step(bool decode, double a, double b) const {
  // Every stage in turn; one step overhead (one scheduler step), summed operators.
  step_time s;
  s.overhead = step_overhead_;
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const step_time st = decode ? stages_[i].decode_step(a, b) : stages_[i].prefill(a, b);
    for (const op_time& op : st.ops) {
      if (op.name == "step_overhead" && i > 0) continue;
      auto it = std::find_if(s.ops.begin(), s.ops.end(), [&](const op_time& o) { return o.name == op.name; });
      if (it == s.ops.end()) {
        s.ops.push_back(op);
      } else {
        if (op.longest_part_s > it->longest_part_s) it->bound_by = op.bound_by;
        it->time_s += op.time_s;
        it->flops += op.flops;
        it->bytes += op.bytes;
        it->longest_part_s = std::max(it->longest_part_s, op.longest_part_s);
      }
    }
  }
  // Hidden states (and the residual) handed from stage to stage: tokens x hidden x 2 tensors.
  const double tokens = decode ? a : a * b;
  const double bytes = tokens * static_cast<double>(m_.hidden_size) * 2 * dtype_bytes(settings_.model_dtype);
  const double per = c_.allreduce_latency_us.value * 1e-6 + bytes / (link_gbps_ * 1e9);
  add(s, "pipeline_send", per * static_cast<double>(stages_.size() - 1), per < 2 * c_.allreduce_latency_us.value * 1e-6 ? bound::latency : bound::memory,
      0, bytes * static_cast<double>(stages_.size() - 1));
  s.total_s = 0;
  for (const auto& op : s.ops) s.total_s += op.time_s;
  return s;
}

step_time throughput_model::decode_step(double batch, double mean_context) const {
  if (!stages_.empty()) return stage_step(true, batch, mean_context);
  step_time s;
  add_linear_ops(s, batch, batch);
  add_mixers(s, batch, mean_context, true, 0);
  add_common_ops(s, batch);
  for (const auto& op : s.ops) s.total_s += op.time_s;
  return s;
}

step_time throughput_model::prefill(double tokens_each, double sequences) const {
  if (!stages_.empty()) return stage_step(false, tokens_each, sequences);
  step_time s;
  const double tokens = tokens_each * sequences;
  add_linear_ops(s, tokens, sequences);
  add_mixers(s, sequences, 0, false, tokens_each);
  add_common_ops(s, tokens);
  for (const auto& op : s.ops) s.total_s += op.time_s;
  return s;
}

}  // namespace gpucal::model
