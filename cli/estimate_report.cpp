// Human and JSON renderings of a memory estimate. The JSON keys listed in
// the README are a stable contract; every byte figure is per GPU.
#include "estimate_report.hpp"

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "gpucal/model/units.hpp"
#include "report_json.hpp"

namespace gpucal::cli {

using model::memory_estimate;

std::string group_digits(long long v) {
  std::string digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

namespace {

std::string billions(std::int64_t n) { return fmt::format("{:.2f} B", static_cast<double>(n) / 1e9); }

std::string kv_formula(const memory_estimate& e) {
  const auto& m = e.model;
  const double kv_bytes = model::dtype_bytes(e.settings.kv_dtype);
  if (m.mla)
    return fmt::format("{} layers x ({} latent + {} rope) x {:g} B, replicated on every GPU", m.num_layers,
                       m.mla->kv_lora_rank, m.mla->qk_rope_head_dim, kv_bytes);
  return fmt::format("{} layers x 2 x {} KV heads x {} head_dim x {:g} B", m.num_layers,
                     model::kv_heads_per_rank(m.num_kv_heads, e.settings.tp), m.head_dim, kv_bytes);
}

}  // namespace

std::string estimate_text(const memory_estimate& e) {
  const auto& s = e.settings;
  const double total = static_cast<double>(e.gpu_total_bytes);
  std::string o;
  o += fmt::format("gpucal estimate: {} on {} x{} (tp={}), {} {}\n", e.model.name, e.gpu.name, s.tp, s.tp,
                   e.engine.display_name, e.engine.version);
  o += fmt::format("coefficients: {}\n", e.coefficients_source);
  o += fmt::format("GPU memory: {} bytes ({:.2f} GiB), {}\n\n", group_digits(e.gpu_total_bytes), to_gib(total),
                   e.gpu_total_source);

  o += "Settings\n";
  for (const auto& st : s.origins) o += fmt::format("  {:<24} {:<36} {}\n", st.name, st.value, st.origin);

  o += fmt::format("\nParameters: {} ({})", group_digits(e.params), billions(e.params));
  if (e.model.moe) o += fmt::format(", active per token {} ({})", group_digits(e.active_params), billions(e.active_params));
  o += "\n\n";

  const auto row = [&](const std::string& label, double bytes) {
    return fmt::format("  {:<56} {:>18} {:>9.2f} {:>7.1f}%\n", label, group_digits(std::llround(bytes)), to_gib(bytes),
                       100.0 * bytes / total);
  };
  o += fmt::format("Memory per GPU{:<44} {:>18} {:>9} {:>8}\n", "", "bytes", "GiB", "of GPU");
  o += row(fmt::format("budget (total x {:g}, {})", s.memory_fraction, e.engine.fraction_flag),
           static_cast<double>(e.budget_bytes));
  const auto charged = [&](model::memory_item i) { return e.engine.charges(i) ? "" : " [outside budget]"; };
  o += row(fmt::format("weights ({}{})", model::dtype_name(s.model_dtype),
                       s.quant.quantized() ? ", linear layers " + std::string(model::dtype_name(*s.quant.weight)) : ""),
           static_cast<double>(e.weights_bytes));
  for (const auto& w : e.weights_by_role) o += row("  " + w.role, w.bytes);
  o += row(fmt::format("activation peak ({}){}", e.activation.sampler_bytes > e.activation.forward_bytes
                                                     ? fmt::format("sampler, {} rows", e.activation.sampler_rows)
                                                     : fmt::format("{}-token forward, {}", e.activation.forward_tokens,
                                                                   e.activation.widest_stage),
                       charged(model::memory_item::activation_peak)),
           static_cast<double>(e.activation.peak_bytes));
  o += row(fmt::format("non-torch overhead{}", charged(model::memory_item::non_torch)),
           static_cast<double>(e.non_torch_bytes));
  if (e.nccl_bytes > 0)
    o += row(fmt::format("NCCL / all-reduce buffers{}", charged(model::memory_item::nccl)), static_cast<double>(e.nccl_bytes));
  o += row("KV cache pool", static_cast<double>(e.kv_pool_bytes));
  o += row(fmt::format("CUDA context{}", charged(model::memory_item::cuda_context)), static_cast<double>(e.cuda_context_bytes));
  o += row(fmt::format("CUDA graphs{}", charged(model::memory_item::cuda_graphs)), static_cast<double>(e.cuda_graph_bytes));
  o += row("left unused", static_cast<double>(e.headroom_bytes + (e.budget_bytes - e.charged_bytes - e.kv_pool_bytes)));

  o += "\nKV cache\n";
  o += fmt::format("  per token: {} bytes ({:.1f} KiB) = {}\n", group_digits(e.kv.bytes_per_token()),
                   static_cast<double>(e.kv.bytes_per_token()) / 1024.0, kv_formula(e));
  if (e.kv.window)
    o += fmt::format("  sliding-window layers hold at most {} tokens ({} of the {} bytes per token)\n", *e.kv.window,
                     group_digits(e.kv.sliding_bytes_per_token), group_digits(e.kv.bytes_per_token()));
  o += fmt::format("  block: {} tokens = {} bytes; blocks: {}; max tokens: {}\n", s.block_size, group_digits(e.block_bytes),
                   group_digits(e.num_blocks), group_digits(e.max_tokens));
  o += fmt::format("  max concurrency at max_model_len {}: {:.2f}x\n", s.max_model_len, e.max_concurrency);

  for (const auto& n : e.notes) o += fmt::format("note: {}\n", n);
  if (e.fits) {
    o += fmt::format("\nVerdict: FITS, with {:.2f} GiB to spare on the tightest condition\n", to_gib(e.margin_bytes));
  } else {
    o += fmt::format("\nVerdict: DOES NOT FIT, short by {:.2f} GiB: {}\n", to_gib(-e.margin_bytes), e.failures.front());
    for (std::size_t i = 1; i < e.failures.size(); ++i) o += fmt::format("  also: {}\n", e.failures[i]);
  }
  return o;
}

nlohmann::ordered_json deployment_json(const memory_estimate& e, const char* schema) {
  using nlohmann::ordered_json;
  const auto& s = e.settings;
  ordered_json j;
  j["schema"] = schema;
  j["model"] = e.model.name;
  j["model_source"] = e.model.source;
  j["gpu"] = e.gpu.name;
  j["gpu_slug"] = e.gpu.slug;
  j["tp"] = s.tp;
  j["engine"] = e.engine.engine;
  j["engine_version"] = e.engine.version;
  j["dtype"] = model::dtype_name(s.model_dtype);
  j["quantization"] = s.quant.quantized() ? s.quant.method : "none";
  j["kv_cache_dtype"] = model::dtype_name(s.kv_dtype);
  return j;
}

std::string estimate_json(const memory_estimate& e) {
  using nlohmann::ordered_json;
  const auto& s = e.settings;
  ordered_json j = deployment_json(e, "gpucal.estimate/1");
  j["params"] = e.params;
  j["active_params"] = e.active_params;
  j["weights_bytes"] = e.weights_bytes;
  ordered_json by_role = ordered_json::object();
  for (const auto& w : e.weights_by_role) by_role[w.role] = {{"params", w.params}, {"bytes", std::llround(w.bytes)}};
  j["weights_by_role"] = by_role;
  j["kv_bytes_per_token"] = e.kv.bytes_per_token();
  j["kv_sliding_bytes_per_token"] = e.kv.sliding_bytes_per_token;
  j["sliding_window"] = e.kv.window ? ordered_json(*e.kv.window) : ordered_json(nullptr);
  j["activation_peak_bytes"] = e.activation.peak_bytes;
  j["activation"] = {{"forward_tokens", e.activation.forward_tokens},
                     {"forward_bytes", std::llround(e.activation.forward_bytes)},
                     {"widest_stage", e.activation.widest_stage},
                     {"sampler_rows", e.activation.sampler_rows},
                     {"sampler_bytes", std::llround(e.activation.sampler_bytes)},
                     {"charged", e.engine.charges(model::memory_item::activation_peak)}};
  j["overhead_bytes"] = e.overhead_bytes();
  j["cuda_context_bytes"] = e.cuda_context_bytes;
  j["non_torch_bytes"] = e.non_torch_bytes;
  j["nccl_bytes"] = e.nccl_bytes;
  j["cuda_graph_bytes"] = e.cuda_graph_bytes;
  j["gpu_total_bytes"] = e.gpu_total_bytes;
  j["gpu_total_source"] = e.gpu_total_source;
  j["memory_fraction"] = s.memory_fraction;
  j["budget_bytes"] = e.budget_bytes;
  j["charged_bytes"] = e.charged_bytes;
  j["outside_budget_bytes"] = e.outside_bytes;
  j["kv_pool_bytes"] = e.kv_pool_bytes;
  j["block_size"] = s.block_size;
  j["block_bytes"] = e.block_bytes;
  j["num_blocks"] = e.num_blocks;
  j["max_tokens"] = e.max_tokens;
  j["max_model_len"] = s.max_model_len;
  j["max_num_seqs"] = s.max_num_seqs;
  j["max_num_batched_tokens"] = s.max_num_batched_tokens;
  j["max_concurrency"] = e.max_concurrency;
  j["fits"] = e.fits;
  j["margin_bytes"] = e.margin_bytes;
  j["failures"] = e.failures;
  j["coefficients_source"] = e.coefficients_source;
  ordered_json settings = ordered_json::array();
  for (const auto& st : s.origins) settings.push_back({{"name", st.name}, {"value", st.value}, {"origin", st.origin}});
  j["settings"] = settings;
  j["notes"] = e.notes;
  return j.dump(2) + "\n";
}

}  // namespace gpucal::cli
