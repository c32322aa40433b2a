// Roofline per operator for one engine step (see throughput_model.hpp and
// DESIGN.md, "The throughput model"). Shapes come from the same tensor
// inventory as the memory model, so weights bytes agree between the two.
#include "gpucal/model/throughput_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

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
  if (g.role == tensor_role::expert) return "experts";
  if (g.role == tensor_role::shared_expert) return "shared_experts";
  if (g.role == tensor_role::router) return "router";
  if (n.find("o_proj") != std::string::npos) return "o_proj";
  if (g.role == tensor_role::attention) return "qkv_proj";  // q/k/v and the MLA projections
  if (n.find("down_proj") != std::string::npos) return "down_proj";
  return "gate_up_proj";
}

}  // namespace

throughput_model::throughput_model(const model_spec& m, const gpu_spec& gpu, const resolved_settings& settings,
                                   const throughput_coefficients& c, const engine_profile& engine)
    : m_(m), settings_(settings), c_(c), step_overhead_(choose_step_overhead(c, engine)) {
  const int tp = settings.tp;
  hbm_bytes_per_s_ = gpu.hbm_bandwidth_gbps * 1e9;
  act_bytes_ = dtype_bytes(settings.model_dtype);
  const std::string peak16_key = settings.model_dtype == dtype::float16 ? "fp16"
                                 : settings.model_dtype == dtype::float32 ? "fp32" : "bf16";
  peak16_flops_ = peak_or_throw(gpu, peak16_key) * 1e12;

  // Kernel family of the linear layers.
  const quant_spec& q = settings.quant;
  gemm_kind_ = "bf16";
  gemm_peak_tflops_ = peak16_flops_ / 1e12;
  if (q.quantized()) {
    const bool weight_only = q.granularity == scale_granularity::group || *q.weight == dtype::int4;
    if (*q.weight == dtype::fp8_e4m3 && gpu.supports("fp8") && !weight_only) {
      gemm_kind_ = "fp8";  // W8A8 fp8 on tensor cores (sm_89+)
      gemm_peak_tflops_ = peak_or_throw(gpu, "fp8");
    } else if (*q.weight == dtype::int8 && !weight_only && gpu.supports("int8")) {
      gemm_kind_ = "int8";
      gemm_peak_tflops_ = peak_or_throw(gpu, "int8");
    } else {
      gemm_kind_ = "w4a16";  // weight-only: dequantized to 16 bits in the kernel (fp8 on Ampere via Marlin too)
    }
  }

  // All-reduce link: NVLink inside an NVLink-switch domain (SXM boards) for any
  // tp; on PCIe cards a bridge joins pairs only, so tp > 2 goes over PCIe.
  const bool switched = gpu.slug.find("sxm") != std::string::npos || gpu.slug.find("b200") != std::string::npos;
  if (gpu.nvlink_gbps && (switched || tp <= 2)) {
    link_gbps_ = *gpu.nvlink_gbps;
    link_name_ = "NVLink";
  } else if (gpu.pcie_gbps) {
    link_gbps_ = *gpu.pcie_gbps;
    link_name_ = "PCIe";
  } else if (tp > 1) {
    throw input_error(fmt::format("--gpu: {} has neither NVLink nor PCIe bandwidth in gpus.json; tp > 1 cannot be timed",
                                  gpu.name));
  }

  const tensor_inventory inv = build_inventory(m, tp);
  for (const auto& g : inv.groups) {
    const bool head = g.role == tensor_role::lm_head || (g.role == tensor_role::embedding && m.tie_word_embeddings);
    if (!g.linear && !head && g.role != tensor_role::router) continue;
    linear_op op;
    op.op = head ? "lm_head" : op_of(g);
    op.lm_head = head;
    op.routed = g.role == tensor_role::expert;
    op.n = static_cast<double>(g.rank_rows);
    op.k = static_cast<double>(g.rank_cols);
    op.weight_bytes = group_weight_bytes(g, q, settings.model_dtype) / static_cast<double>(g.count);
    op.count = static_cast<double>(g.count);
    linears_.push_back(op);
  }
  if (m.moe) {
    moe_layers_ = static_cast<double>(std::count(m.moe->moe_layers.begin(), m.moe->moe_layers.end(), true));
    experts_ = static_cast<double>(m.moe->num_experts);
    top_k_ = static_cast<double>(m.moe->experts_per_token);
  }
  kv_ = kv_cache_layout(m, tp, settings.kv_dtype);
  sliding_layers_ = static_cast<double>(m.num_sliding_layers());
  full_layers_ = static_cast<double>(m.num_layers) - sliding_layers_;
}

throughput_model::gemm_result throughput_model::gemm(double m_rows, double n, double k, double weight_bytes) const {
  const gemm_curve& curve = c_.curve(gemm_kind_);
  const double flops = 2.0 * m_rows * n * k;
  const double compute_s = flops / (gemm_peak_tflops_ * 1e12 * curve.compute_at(m_rows));
  // Napkin math: the weights stream once; activations in and out at the model dtype.
  const double bytes = weight_bytes + (m_rows * k + m_rows * n) * act_bytes_;
  const double memory_s = bytes / (hbm_bytes_per_s_ * curve.memory_efficiency);
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
  // Routed experts: a MoE layer streams only the experts its tokens touch.
  const double distinct = m_.moe ? expected_distinct_experts(experts_, top_k_, tokens) : 0;
  for (const auto& op : linears_) {
    if (op.lm_head) {
      // The LM head and the router run at 16-bit rates whatever the linear format.
      const gemm_result r = gemm(sampled_rows, op.n, op.k, op.weight_bytes);
      add(s, op.op, r.time_s * op.count, r.b, r.flops * op.count, r.bytes * op.count);
    } else if (op.routed) {
      const double per_expert_rows = tokens * top_k_ / distinct;
      const gemm_result r = gemm(per_expert_rows, op.n, op.k, op.weight_bytes);
      const double instances = moe_layers_ * distinct;  // op.count = moe_layers x experts
      add(s, op.op, r.time_s * instances, r.b, r.flops * instances, r.bytes * instances);
    } else {
      const gemm_result r = gemm(tokens, op.n, op.k, op.weight_bytes);
      add(s, op.op, r.time_s * op.count, r.b, r.flops * op.count, r.bytes * op.count);
    }
  }
}

void throughput_model::add_common_ops(step_time& s, double tokens) const {
  const int tp = settings_.tp;
  const double h = static_cast<double>(m_.hidden_size);
  const double layers = static_cast<double>(m_.num_layers);
  // Element-wise work per layer, napkin math in elements of T x h: two fused
  // add+RMSNorms read x and the residual and write both (4 each); SiLU*mul
  // reads gate|up and writes one (3 x T x I / tp).
  const double inter = static_cast<double>(m_.moe ? m_.moe->expert_intermediate_size * m_.moe->experts_per_token
                                                  : m_.intermediate_size) / tp;
  const double ew_bytes = layers * tokens * (8 * h + 3 * inter) * act_bytes_;
  add(s, "elementwise", ew_bytes / (hbm_bytes_per_s_ * c_.hbm_efficiency.value), bound::memory, 0, ew_bytes);
  if (tp > 1) {
    const double per = allreduce_time_s(tokens * h * act_bytes_, tp, link_gbps_, c_.allreduce_efficiency.value,
                                        c_.allreduce_latency_us.value);
    const double moved = 2.0 * (tp - 1) / tp * tokens * h * act_bytes_;
    const bool latency = c_.allreduce_latency_us.value * 1e-6 > per / 2;
    add(s, "allreduce", 2 * layers * per, latency ? bound::latency : bound::memory, 0, 2 * layers * moved);
  }
  add(s, "step_overhead", step_overhead_.overhead_us.value * 1e-6, bound::overhead, 0, 0);
  s.overhead = step_overhead_;
}

namespace {

// (d_qk + d_v) per head for the attention FLOPs: GQA uses head_dim twice; MLA
// prefill runs on 192-wide q/k and 128-wide v, MLA decode absorbs the
// up-projections and attends over the 576-wide latent with 512-wide values.
double attention_dims(const model_spec& m, bool decode) {
  if (!m.mla) return 2.0 * static_cast<double>(m.head_dim);
  const mla_spec& a = *m.mla;
  return decode ? static_cast<double>(2 * a.kv_lora_rank + a.qk_rope_head_dim)
                : static_cast<double>(a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim);
}

}  // namespace

step_time throughput_model::decode_step(double batch, double mean_context) const {
  step_time s;
  add_linear_ops(s, batch, batch);
  const double heads = static_cast<double>(m_.num_heads / settings_.tp);
  const double per_layer_kv = static_cast<double>(kv_.bytes_per_token()) / static_cast<double>(m_.num_layers);
  const double window_ctx = kv_.window ? std::min(mean_context, static_cast<double>(*kv_.window)) : mean_context;
  // Each sequence reads its whole cached context once per layer.
  const double ctx_tokens = full_layers_ * mean_context + sliding_layers_ * window_ctx;
  const double bytes = batch * ctx_tokens * per_layer_kv;
  const double flops = 2.0 * batch * heads * attention_dims(m_, true) * ctx_tokens;
  const double mem_s = bytes / (hbm_bytes_per_s_ * c_.decode_attention_efficiency.value);
  const double cmp_s = flops / (peak16_flops_ * c_.prefill_attention_efficiency.value);
  add(s, "attention", std::max(mem_s, cmp_s), cmp_s > mem_s ? bound::compute : bound::memory, flops, bytes);
  add_common_ops(s, batch);
  for (const auto& op : s.ops) s.total_s += op.time_s;
  return s;
}

step_time throughput_model::prefill(double tokens_each, double sequences) const {
  step_time s;
  const double tokens = tokens_each * sequences;
  add_linear_ops(s, tokens, sequences);
  const double heads = static_cast<double>(m_.num_heads / settings_.tp);
  // Causal pairs per sequence: sum over positions i of the i keys it sees (capped at the window).
  const auto pairs = [tokens_each](double window) {
    const double n = tokens_each, w = std::min(window, n);
    return w * (w + 1) / 2 + (n - w) * w;
  };
  const double full_pairs = pairs(tokens_each);
  const double sliding_pairs = kv_.window ? pairs(static_cast<double>(*kv_.window)) : full_pairs;
  const double layer_pairs = full_layers_ * full_pairs + sliding_layers_ * sliding_pairs;
  const double flops = 2.0 * heads * attention_dims(m_, false) * layer_pairs * sequences;
  // The new K and V are written to the cache once.
  const double bytes = tokens * static_cast<double>(kv_.bytes_per_token());
  const double cmp_s = flops / (peak16_flops_ * c_.prefill_attention_efficiency.value);
  const double mem_s = bytes / (hbm_bytes_per_s_ * c_.hbm_efficiency.value);
  add(s, "attention", std::max(cmp_s, mem_s), cmp_s >= mem_s ? bound::compute : bound::memory, flops, bytes);
  add_common_ops(s, tokens);
  for (const auto& op : s.ops) s.total_s += op.time_s;
  return s;
}

}  // namespace gpucal::model
