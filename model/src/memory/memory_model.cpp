// The memory model behind `gpucal estimate` (see memory_model.hpp and
// DESIGN.md, "The memory model").
#include "gpucal/model/memory_model.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

double group_weight_bytes(const tensor_group& g, const quant_spec& q, dtype model_dtype) {
  const double plain = static_cast<double>(g.rank_rows) * static_cast<double>(g.rank_cols) *
                       dtype_bytes(g.fixed_dtype.value_or(model_dtype));
  const bool head = g.role == tensor_role::lm_head && q.quantize_lm_head;
  if (!(g.linear || head) || (!q.quantized() && q.rules.empty())) return plain * static_cast<double>(g.count);
  const auto bytes_as = [&](const quant_format& f) {
    return f.quantized() ? linear_weight_bytes(f, model_dtype, g.rank_rows, g.rank_cols) : plain;
  };
  if (q.ignore.empty() && q.rules.empty()) return bytes_as(q) * static_cast<double>(g.count);
  // Ignore lists and mixed formats name modules per layer: resolve each layer's instance.
  const auto module_at = [&](std::int64_t layer) {
    std::string name = g.module;
    const auto at = name.find("{i}");
    if (at != std::string::npos) name.replace(at, 3, std::to_string(layer));
    return name;
  };
  if (g.layer_ids.empty()) return bytes_as(q.format_for(g.module)) * static_cast<double>(g.count);
  double total = 0;
  for (std::int64_t layer : g.layer_ids) total += bytes_as(q.format_for(module_at(layer))) * static_cast<double>(g.per_layer());
  return total;
}

namespace {

// Major compute capability ("9.0" -> 9; AMD gfx targets read as 9, for which no rule differs).
int compute_major(const gpu_spec& gpu) {
  const std::string& cc = gpu.compute_capability;
  if (cc.empty() || cc[0] < '0' || cc[0] > '9') return 9;
  return std::stoi(cc.substr(0, cc.find('.')));
}

std::string fmt_double(double v) { return fmt::format("{:g}", v); }

dtype parse_model_dtype_flag(const std::string& v, dtype config_dtype) {
  if (v == "auto") {
    // vLLM's auto: the checkpoint's dtype, float32 checkpoints run in bfloat16.
    return config_dtype == dtype::float32 ? dtype::bfloat16 : config_dtype;
  }
  if (v == "bfloat16" || v == "bf16") return dtype::bfloat16;
  if (v == "float16" || v == "half" || v == "fp16") return dtype::float16;
  if (v == "float32" || v == "float") return dtype::float32;
  throw input_error(fmt::format("--dtype: '{}' is not supported (allowed: auto, bfloat16, float16, float32)", v));
}

dtype parse_kv_dtype_flag(const std::string& v, dtype model_dtype) {
  if (v == "auto") return model_dtype;
  if (v == "bfloat16" || v == "bf16") return dtype::bfloat16;
  if (v == "float16" || v == "fp16" || v == "half") return dtype::float16;
  if (v == "fp8" || v == "fp8_e4m3") return dtype::fp8_e4m3;
  if (v == "fp8_e5m2") return dtype::fp8_e5m2;
  throw input_error(fmt::format("--kv-cache-dtype: '{}' is not supported (allowed: auto, bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2)", v));
}

// A flag's integer in [1, hi].
std::int64_t positive_flag(const char* flag, std::int64_t v, std::int64_t hi) {
  if (v <= 0 || v > hi) throw input_error(fmt::format("{}: {} is outside [1, {}]", flag, v, hi));
  return v;
}

}  // namespace

resolved_settings resolve_settings(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine,
                                   const estimate_options& opt, std::int64_t gpu_total_bytes) {
  resolved_settings s;
  const std::string engine_default = engine.engine + " default";
  auto note = [&s](std::string name, std::string value, std::string origin) {
    s.origins.push_back({std::move(name), std::move(value), std::move(origin)});
  };

  validate_tp(m, opt.tp);
  s.tp = opt.tp;
  note("tensor_parallel_size", std::to_string(s.tp), opt.tp == 1 ? "default" : "--tensor-parallel-size");

  s.model_dtype = parse_model_dtype_flag(opt.dtype.value_or("auto"), m.torch_dtype);
  note("dtype", std::string(dtype_name(s.model_dtype)), opt.dtype && *opt.dtype != "auto" ? "--dtype" : "config.json torch_dtype (auto)");

  if (opt.quantization) {
    s.quant = quant_from_flag(*opt.quantization, m.quantization, opt.group_size);
  } else if (m.quantization) {
    s.quant = *m.quantization;
    if (opt.group_size) {
      if (s.quant.granularity != scale_granularity::group || s.quant.weight != dtype::int4)
        throw input_error(fmt::format("--group-size: {}'s weights are {}, not group-wise int4 (it applies to awq, gptq, "
                                      "w4a16 and int4 formats)", m.name, s.quant.describe()));
      s.quant.group_size = checked_group_size(*opt.group_size, "--group-size");
    }
  } else if (opt.group_size) {
    throw input_error(fmt::format("--group-size: {} is not quantized; pass --quantization awq, gptq, w4a16 or int4 with it",
                                  m.name));
  }
  note("quantization", s.quant.describe(), s.quant.origin);

  if (!opt.kv_cache_dtype && s.quant.checkpoint_kv_dtype) {
    // vLLM (utils/torch_utils.py, resolve_kv_cache_dtype_string) turns "auto" into the
    // KV format a checkpoint's kv_cache_quant_algo / kv_cache_scheme was calibrated for.
    s.kv_dtype = *s.quant.checkpoint_kv_dtype;
    note("kv_cache_dtype", std::string(dtype_name(s.kv_dtype)), "auto: the checkpoint's kv_cache_quant_algo");
  } else {
    s.kv_dtype = parse_kv_dtype_flag(opt.kv_cache_dtype.value_or("auto"), s.model_dtype);
    note("kv_cache_dtype", std::string(dtype_name(s.kv_dtype)), opt.kv_cache_dtype ? "--kv-cache-dtype" : "auto (model dtype)");
  }

  if (opt.gpu_memory_utilization) {
    const double u = *opt.gpu_memory_utilization;
    if (!(u > 0.0 && u <= 1.0))
      throw input_error(fmt::format("{}: {} is outside (0, 1]", engine.fraction_flag, fmt_double(u)));
    s.memory_fraction = u;
    note("memory_fraction", fmt_double(u), engine.fraction_flag);
  } else {
    s.memory_fraction = engine.fraction_for(gpu.slug, gpu_total_bytes, s.tp, m.count(mixer_kind::mla) > 0);
    note("memory_fraction", fmt_double(s.memory_fraction), engine_default + " (" + engine.fraction_flag + ")");
  }

  if (opt.max_model_len) {
    s.max_model_len = positive_flag("--max-model-len", *opt.max_model_len, limits::context);
    if (s.max_model_len > m.max_model_len)
      throw input_error(fmt::format("--max-model-len: {} exceeds the {} tokens {} supports (from max_position_embeddings "
                                    "and rope_scaling in its config.json)", s.max_model_len, m.max_model_len, m.name));
    note("max_model_len", std::to_string(s.max_model_len), "--max-model-len");
  } else {
    s.max_model_len = m.max_model_len;
    note("max_model_len", std::to_string(s.max_model_len), "config.json (max_position_embeddings, rope_scaling)");
  }

  // A positive flag value, or the engine's default for this GPU.
  const auto flag_or_default = [&](const std::optional<std::int64_t>& flag, const char* flag_name, const char* name,
                                   std::int64_t fallback, std::int64_t hi) {
    const std::int64_t v = flag ? positive_flag(flag_name, *flag, hi) : fallback;
    note(name, std::to_string(v), flag ? flag_name : engine_default);
    return v;
  };
  s.max_num_seqs = flag_or_default(opt.max_num_seqs, "--max-num-seqs", "max_num_seqs",
                                   engine.max_num_seqs_for(gpu.slug, gpu.memory_bytes, s.tp), limits::max_num_seqs);
  s.max_num_batched_tokens =
      flag_or_default(opt.max_num_batched_tokens, "--max-num-batched-tokens", "max_num_batched_tokens",
                      engine.max_num_batched_tokens_for(gpu.slug, gpu.memory_bytes, s.tp), limits::max_num_batched_tokens);
  if (s.max_num_batched_tokens < s.max_num_seqs) {
    if (opt.max_num_seqs && opt.max_num_batched_tokens)
      throw input_error(fmt::format("--max-num-batched-tokens: {} is below --max-num-seqs {} (an engine schedules at "
                                    "least one token per sequence)", s.max_num_batched_tokens, s.max_num_seqs));
    // As vLLM's arg handling does: a defaulted side is clamped to the other.
    for (auto& o : s.origins) {
      if (!opt.max_num_seqs && o.name == "max_num_seqs") {
        s.max_num_seqs = s.max_num_batched_tokens;
        o.value = std::to_string(s.max_num_seqs);
        o.origin += ", clamped to max_num_batched_tokens";
      }
      if (opt.max_num_seqs && o.name == "max_num_batched_tokens") {
        s.max_num_batched_tokens = s.max_num_seqs;
        o.value = std::to_string(s.max_num_batched_tokens);
        o.origin += ", raised to max_num_seqs";
      }
    }
  }

  if (opt.block_size) {
    static const std::int64_t allowed[] = {1, 8, 16, 32, 64, 128, 256};
    if (std::find(std::begin(allowed), std::end(allowed), *opt.block_size) == std::end(allowed))
      throw input_error(fmt::format("--block-size: {} is not supported (allowed: 1, 8, 16, 32, 64, 128, 256)", *opt.block_size));
    s.block_size = *opt.block_size;
    note("block_size", std::to_string(s.block_size), "--block-size");
  } else if (m.first(mixer_kind::compressed_mla)) {
    // vLLM 0.33 (models/deepseek_v4): DeepseekV4IndexerBackend supports 256-token blocks only.
    s.block_size = 256;
    note("block_size", "256", "DeepSeek-V4's indexer kernels (vLLM 0.33)");
  } else if (const layer_spec* mla = m.first(mixer_kind::mla); mla && mla->mla.indexer && engine.sparse_mla_block_size) {
    s.block_size = *engine.sparse_mla_block_size;
    note("block_size", std::to_string(s.block_size), engine_default + " for sparse-attention (DSA) models");
  } else if (const auto mla_block = mla ? engine.mla_block_size_for(compute_major(gpu), dtype_bits(s.kv_dtype) == 8)
                                        : std::nullopt) {
    // The attention backend the engine picks for MLA on this GPU and KV dtype decides the block.
    s.block_size = *mla_block;
    note("block_size", std::to_string(s.block_size), engine_default + " for MLA models on this GPU and KV dtype");
  } else {
    s.block_size = engine.block_size;
    note("block_size", std::to_string(s.block_size), engine_default);
  }

  s.cuda_graphs = engine.cuda_graphs && !opt.enforce_eager;
  note("cuda_graphs", s.cuda_graphs ? "on" : "off", opt.enforce_eager ? "--enforce-eager" : engine_default);
  return s;
}

namespace {

// Elements per token alive at the peak of a layer's mixer (beyond the
// residual stream), per GPU.
double mixer_stage_width(const layer_spec& l, int tp) {
  const auto d = [](std::int64_t v) { return static_cast<double>(v); };
  switch (l.mixer) {
    case mixer_kind::attention: {
      const attention_spec& a = l.attention;
      const double q = d(a.num_heads / tp * a.head_dim);
      const double kv = d(kv_heads_per_rank(a.num_kv_heads, tp) * (a.head_dim + std::max(a.v_head_dim, a.head_dim)));
      // fused qkv output (with the output gate where the layer has one) + attention output
      return q * (a.output_gate ? 2 : 1) + kv + d(a.num_heads / tp * std::max(a.v_head_dim, a.head_dim));
    }
    case mixer_kind::mla: {
      const mla_spec& a = l.mla;
      const double heads = d(a.num_heads / tp), qk = d(a.qk_nope_head_dim + a.qk_rope_head_dim);
      // q latent, q, kv latent, expanded k_nope|v, assembled k, attention output.
      return d(a.q_lora_rank) + heads * qk + d(a.kv_lora_rank + a.qk_rope_head_dim) +
             heads * d(a.qk_nope_head_dim + a.v_head_dim) + heads * qk + heads * d(a.v_head_dim);
    }
    case mixer_kind::linear_attention: {
      const linear_attention_spec& a = l.linear;
      const double key = d(a.num_k_heads * a.head_k_dim / tp), value = d(a.num_v_heads * a.head_v_dim / tp);
      // projected q|k|v (and z), the convolution's output, the gated output
      return 2 * (2 * key + value) + value + value;
    }
    case mixer_kind::mamba2: {
      const mamba2_spec& a = l.mamba;
      const double inter = d(a.intermediate() / tp), bc = d(2 * a.n_groups * a.state_size / std::min<std::int64_t>(tp, a.n_groups));
      // in_proj output (z, x, B, C, dt), the convolution's output, y
      return (2 * inter + bc + d(a.num_heads / tp)) + (inter + bc) + inter;
    }
    case mixer_kind::compressed_mla: {
      const compressed_mla_spec& a = l.compressed;
      const double q = d(a.num_heads / tp * a.head_dim);
      // q latent, q, the shared K=V entry, attention output, grouped low-rank output.
      return d(a.q_lora_rank) + q + d(a.head_dim) + q + d(a.o_groups / tp * a.o_lora_rank);
    }
    case mixer_kind::none: return 0;
  }
  return 0;
}

}  // namespace

std::map<std::string, std::int64_t> checkpoint_bytes_by_role(const model_spec& m) {
  // Every stored tensor, one copy, in the checkpoint's own format and dtype.
  const quant_spec stored = m.quantization.value_or(quant_spec{});
  std::map<std::string, double> bytes;
  for (const auto& g : build_inventory(m, 1).groups)
    if (g.stored) bytes[std::string(tensor_role_name(g.role))] += group_weight_bytes(g, stored, m.torch_dtype);
  std::map<std::string, std::int64_t> out;
  for (const auto& [role, b] : bytes) out[role] = static_cast<std::int64_t>(std::llround(b));
  return out;
}

std::int64_t checkpoint_bytes(const model_spec& m) {
  std::int64_t total = 0;
  for (const auto& [_, b] : checkpoint_bytes_by_role(m)) total += b;
  return total;
}

activation_estimate estimate_activation(const model_spec& m, const resolved_settings& s, const engine_profile& engine,
                                        const memory_coefficients& c, std::int64_t tokens, std::int64_t rows) {
  activation_estimate a;
  a.forward_tokens = tokens;
  a.sampler_rows = std::min(rows, tokens);
  const int tp = s.tp;
  const double act = dtype_bytes(s.model_dtype == dtype::float32 ? dtype::float32 : s.model_dtype);
  const double h = static_cast<double>(m.hidden_size);
  const double residual = 2 * h;  // residual stream + normed hidden states
  const double t = static_cast<double>(tokens);

  // The widest stage of any layer: its mixer, its dense MLP or its MoE block.
  const auto consider = [&](double bytes, const char* stage) {
    if (bytes > a.forward_bytes) {
      a.forward_bytes = bytes;
      a.widest_stage = stage;
    }
  };
  for (const auto& l : m.layers) {
    if (l.mixer != mixer_kind::none)
      consider(t * (residual + mixer_stage_width(l, tp)) * act,
               l.mixer == mixer_kind::attention || l.mixer == mixer_kind::mla ? "attention" : "mixer");
    if (l.mlp) {
      const double widths = l.mlp->activation == mlp_activation::gated ? 3 : 2;  // gate|up + act(gate)*up, or up + act(up)
      consider(t * (residual + widths * static_cast<double>(ceil_div(l.mlp->intermediate_size, tp))) * act, "mlp");
    }
    if (l.moe) {
      const moe_spec& e = *l.moe;
      // vLLM's fused MoE processes at most VLLM_FUSED_MOE_CHUNK_SIZE (32768) tokens
      // at a time; per routed token it holds gate|up, the activation and the output.
      const double chunk = static_cast<double>(std::min<std::int64_t>(tokens, 32768));
      const double width = static_cast<double>(e.latent_size > 0 ? e.latent_size : m.hidden_size);
      const double per_routed = 3 * static_cast<double>(ceil_div(e.expert_intermediate_size, tp)) + width;
      const double shared = 3 * static_cast<double>(ceil_div(e.shared_intermediate_size, tp));
      const double router = 2 * static_cast<double>(e.num_experts);  // fp32 router logits, in 16-bit elements
      consider((t * (residual + shared + router) + chunk * static_cast<double>(e.experts_per_token) * per_routed) * act, "moe");
    }
  }
  // Sampler pass: the forward's hidden states stay alive; logits of the sampled
  // rows are gathered over the whole vocabulary on every rank, in the model
  // dtype, then upcast, with more FP32 temporaries of the same shape.
  const double logits = static_cast<double>(a.sampler_rows) * static_cast<double>(m.vocab_size);
  a.sampler_bytes = t * h * act + logits * (act + engine.logits_bytes_per_element *
                                                     engine.sampler_fp32_copies.value_or(c.sampler_fp32_copies.value));
  if (!engine.sampler_rows_from || !m.holds_lm_head) a.sampler_bytes = 0;  // the sampler runs on the last pipeline stage
  a.peak_bytes = static_cast<std::int64_t>(
      std::llround(c.activation_scale.value * std::max(a.forward_bytes, a.sampler_bytes) + c.activation_fixed_bytes.value));
  return a;
}

namespace {

// Pipeline parallelism: every stage estimated as its own deployment; the
// engine gives every stage the smallest stage's block count.
memory_estimate estimate_stages(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine, const coefficients& coeffs,
                                const estimate_options& opt) {
  if (opt.pp > 64) throw input_error(fmt::format("--pipeline-parallel-size: {} is outside [1, 64]", opt.pp));
  const std::vector<model_spec> stages = pipeline_stages(m, opt.pp);
  estimate_options one = opt;
  one.pp = 1;
  std::vector<memory_estimate> each;
  for (const auto& st : stages) each.push_back(estimate_memory(st, gpu, engine, coeffs, one));
  const auto tightest = static_cast<std::size_t>(
      std::min_element(each.begin(), each.end(), [](const auto& a, const auto& b) {
        return a.fits != b.fits ? !a.fits : a.num_blocks < b.num_blocks;
      }) - each.begin());
  memory_estimate r = each[tightest];
  r.model = m;
  const tensor_inventory whole = build_inventory(m, opt.tp);
  r.params = whole.total_params();
  r.checkpoint_params = whole.checkpoint_params();
  r.active_params = whole.active_params();
  r.settings.pp = opt.pp;
  r.settings.origins.insert(r.settings.origins.begin() + 1, {"pipeline_parallel_size", std::to_string(opt.pp), "--pipeline-parallel-size"});
  r.failures.clear();
  r.advice.clear();
  for (std::size_t i = 0; i < each.size(); ++i) {
    const memory_estimate& e = each[i];
    r.stages.push_back({static_cast<int>(i), stages[i].first_layer, stages[i].num_layers(), e.weights_bytes,
                        e.activation.peak_bytes, e.kv_pool_bytes, e.num_blocks, e.fits});
    for (std::size_t f = 0; f < e.failures.size(); ++f) {
      r.failures.push_back(fmt::format("pipeline stage {} of {}: {}", i + 1, opt.pp, e.failures[f]));
      r.advice.push_back(f < e.advice.size() ? e.advice[f] : "add GPUs");
    }
  }
  r.fits = r.failures.empty();
  if (!r.fits) {
    r.shortfall_bytes = std::max_element(each.begin(), each.end(), [](const auto& a, const auto& b) {
                          return a.shortfall_bytes < b.shortfall_bytes;
                        })->shortfall_bytes;
    r.spare_bytes = 0;
  }
  const auto& shown = r.stages[tightest];
  r.notes.push_back(fmt::format("pipeline parallel over {} stages of {} GPU(s) each: figures per GPU of stage {} (layers {}-{}), "
                                "the one with the fewest KV blocks",
                                opt.pp, opt.tp, tightest + 1, shown.first_layer, shown.first_layer + shown.layers - 1));
  return r;
}

}  // namespace

memory_estimate estimate_memory(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine,
                                const coefficients& coeffs, const estimate_options& opt, const tensor_inventory* inventory) {
  if (opt.pp != 1) {
    if (opt.pp < 1) throw input_error(fmt::format("--pipeline-parallel-size: {} must be a positive integer", opt.pp));
    return estimate_stages(m, gpu, engine, coeffs, opt);
  }
  memory_estimate r;
  r.model = m;
  r.gpu = gpu;
  r.engine = engine;
  r.coefficients_source = coeffs.source;
  r.notes = m.notes;

  // Usable memory: measured > published cudaMemGetInfo total > datasheet.
  if (coeffs.usable_memory_bytes) {
    r.gpu_total_bytes = *coeffs.usable_memory_bytes;
    r.gpu_total_source = "measured (calibration)";
  } else if (gpu.cuda_total_memory_bytes) {
    r.gpu_total_bytes = *gpu.cuda_total_memory_bytes;
    r.gpu_total_source = "cudaMemGetInfo total published for this SKU (gpus.json)";
  } else {
    r.gpu_total_bytes = gpu.memory_bytes;
    r.gpu_total_source = "datasheet capacity (no measured total yet)";
  }

  if (gpu.vendor == "amd")
    r.notes.push_back(fmt::format("{} is an AMD GPU: gpucal calibrates NVIDIA GPUs only, so this estimate uses its datasheet "
                                  "figures and the engine's CUDA accounting (ROCm builds of the engine may differ)", gpu.name));
  r.settings = resolve_settings(m, gpu, engine, opt, r.gpu_total_bytes);
  const resolved_settings& s = r.settings;

  // Weights, tensor by tensor.
  std::optional<tensor_inventory> own;
  if (!inventory || inventory->tp != s.tp) own = build_inventory(m, s.tp);
  const tensor_inventory& inv = own ? *own : *inventory;
  r.params = inv.total_params();
  r.checkpoint_params = inv.checkpoint_params();
  r.active_params = inv.active_params();
  std::map<std::string, weight_row> rows;
  double weights = 0;
  for (const auto& g : inv.groups) {
    if (!g.loaded) continue;  // MTP layers: stored, loaded only for speculative decoding
    const double bytes = group_weight_bytes(g, s.quant, s.model_dtype);
    weight_row& row = rows[std::string(tensor_role_name(g.role))];
    row.role = tensor_role_name(g.role);
    row.params += g.params();
    row.bytes += bytes;
    weights += bytes;
  }
  for (auto& [_, row] : rows) r.weights_by_role.push_back(row);

  r.weights_bytes = static_cast<std::int64_t>(std::llround(weights));

  kv_cache_options ko;
  ko.kv_dtype = s.kv_dtype;
  ko.model_dtype = s.model_dtype;
  ko.tp = s.tp;
  ko.compute_major = compute_major(gpu);
  r.caches = layer_caches(m, ko);
  kv_cache_rules rules = engine.kv_rules;
  rules.block_size = s.block_size;
  r.kv = plan_kv_cache(r.caches, rules, s.max_model_len, s.max_num_batched_tokens);

  const auto setting_value = [&s](const std::optional<std::string>& name) -> std::int64_t {
    if (!name) return 0;
    return *name == "max_num_seqs" ? s.max_num_seqs : s.max_num_batched_tokens;
  };
  // The engine's fitted coefficients stand in for the embedded defaults.
  const memory_coefficients c = engine.with_fits(coeffs.memory);
  r.activation = estimate_activation(m, s, engine, c,
                                     engine.forward_tokens_from ? setting_value(engine.forward_tokens_from) : s.max_num_batched_tokens,
                                     engine.sampler_rows_from ? setting_value(engine.sampler_rows_from) : 0);

  r.cuda_context_bytes = static_cast<std::int64_t>(c.cuda_context_bytes.value);
  r.nccl_bytes = s.tp > 1 ? static_cast<std::int64_t>(c.nccl_bytes_per_gpu.value) : 0;
  r.non_torch_bytes = static_cast<std::int64_t>(c.non_torch_bytes.value);
  r.cuda_graph_bytes = s.cuda_graphs ? static_cast<std::int64_t>(c.cuda_graph_bytes.value) : 0;

  const std::map<memory_item, std::int64_t> item_bytes = {
      {memory_item::weights, r.weights_bytes},
      {memory_item::activation_peak, r.activation.peak_bytes},
      {memory_item::non_torch, r.non_torch_bytes},
      {memory_item::nccl, r.nccl_bytes},
      {memory_item::cuda_context, r.cuda_context_bytes},
      {memory_item::cuda_graphs, r.cuda_graph_bytes},
  };
  for (memory_item i : engine.budget_charges) r.charged_bytes += item_bytes.at(i);
  for (memory_item i : engine.outside_budget) r.outside_bytes += item_bytes.at(i);

  r.budget_bytes = static_cast<std::int64_t>(std::floor(static_cast<double>(r.gpu_total_bytes) * s.memory_fraction));
  const std::int64_t left = r.budget_bytes - r.charged_bytes;
  r.kv_pool_bytes = left > 0 ? static_cast<std::int64_t>(std::floor(static_cast<double>(left) * engine.kv_pool_factor)) : 0;
  r.block_bytes = r.kv.bytes_per_block;
  r.num_blocks = r.block_bytes > 0 ? r.kv_pool_bytes / r.block_bytes : 0;
  r.request_bytes = checked_mul(r.kv.blocks_per_request, r.block_bytes, "the KV bytes of one request");
  if (r.kv.blocks_per_request > 0) {
    // vLLM >= 0.19 (kv_cache_utils.py, get_max_concurrency_for_kv_cache_config and
    // get_kv_cache_capacity): requests = num_blocks / blocks per request over all
    // groups; tokens = floor(requests x max_model_len). vLLM 0.11 logged
    // num_blocks / groups x block_size. Both equal num_blocks x block_size for one
    // full-attention group when block_size divides max_model_len.
    r.max_concurrency = static_cast<double>(r.num_blocks) / static_cast<double>(r.kv.blocks_per_request);
    r.max_tokens = engine.kv_rules.capacity_by_concurrency
                       ? static_cast<std::int64_t>(std::floor(r.max_concurrency * static_cast<double>(s.max_model_len)))
                       : r.num_blocks / static_cast<std::int64_t>(r.kv.groups.size()) * r.kv.block_size;
    const kv_group* most = &r.kv.groups.front();
    std::int64_t most_blocks = 0;
    std::map<std::string, std::int64_t> by_kind;
    for (const auto& g : r.kv.groups) by_kind[g.what] += g.blocks_per_request;
    for (const auto& g : r.kv.groups)
      if (by_kind[g.what] > most_blocks) {
        most_blocks = by_kind[g.what];
        most = &g;
      }
    r.capacity_bound = fmt::format("{} layers take {} of the {} blocks a request holds", most->what, most_blocks,
                                   r.kv.blocks_per_request);
  }
  r.headroom_bytes = r.gpu_total_bytes - r.budget_bytes - r.outside_bytes;

  // Fit conditions, in the order an engine hits them at start-up.
  const std::int64_t pool_slack = left;
  const std::int64_t request_slack = checked_mul(r.num_blocks, r.block_bytes, "the KV pool") - r.request_bytes;
  // Short by what the first failing condition lacks (the request check only
  // means something once the pool exists); spare: the tightest slack.
  const std::int64_t first_short = r.headroom_bytes < 0 ? r.headroom_bytes
                                   : pool_slack <= 0    ? pool_slack
                                                        : std::min<std::int64_t>(request_slack, 0);
  r.shortfall_bytes = -first_short;
  r.spare_bytes = first_short < 0 ? 0 : std::min({pool_slack, request_slack, r.headroom_bytes});
  if (r.headroom_bytes < 0) {
    r.failures.push_back(fmt::format("memory beyond the {} budget ({:.2f} GiB: CUDA context, NCCL, CUDA graphs) exceeds the {:.2f} GiB left "
                                     "outside it", engine.fraction_flag, to_gib(r.outside_bytes),
                                     to_gib(r.gpu_total_bytes - r.budget_bytes)));
    r.advice.push_back(fmt::format("lower {}", engine.fraction_flag));
  }
  if (pool_slack <= 0) {
    r.failures.push_back(fmt::format("weights, activations and overhead ({:.2f} GiB) exceed the budget of {:.2f} GiB by {:.2f} GiB",
                                     to_gib(r.charged_bytes), to_gib(r.budget_bytes), to_gib(-pool_slack)));
    r.advice.push_back("add GPUs (--tensor-parallel-size) or quantize the weights (--quantization)");
  } else if (request_slack < 0) {
    r.failures.push_back(fmt::format("the KV pool ({:.2f} GiB) cannot hold one request of max_model_len {} tokens ({:.2f} GiB)",
                                     to_gib(r.num_blocks * r.block_bytes), s.max_model_len, to_gib(r.request_bytes)));
    r.advice.push_back("lower --max-model-len or add GPUs (--tensor-parallel-size)");
  }
  r.fits = r.failures.empty();
  return r;
}

}  // namespace gpucal::model
