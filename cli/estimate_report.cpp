// Human and JSON renderings of a memory estimate. The JSON keys listed in
// the README are a stable contract; every byte figure is per GPU.
#include "estimate_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <tuple>
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

// "32 attention layers x 2 x 8 KV heads x 128 head_dim x 2 B" for models
// whose attention layers all look alike; a sum by layer kind otherwise.
std::string kv_formula(const memory_estimate& e) {
  const auto& m = e.model;
  const double kv_bytes = model::dtype_bytes(e.settings.kv_dtype);
  std::map<std::pair<std::string, std::int64_t>, std::int64_t> kinds;  // (what, bytes per token) -> layers
  for (const auto& c : e.caches)
    if (c.kind != model::cache_kind::state) ++kinds[{c.what, c.bytes_per_token}];
  if (kinds.size() == 1) {
    const auto& [key, n] = *kinds.begin();
    if (key.first == "attention" || key.first == "sliding_attention") {
      const model::layer_spec* l = m.first(model::mixer_kind::attention);
      const auto& a = l->attention;
      if (a.v_head_dim == a.head_dim)
        return fmt::format("{} layers x 2 x {} KV heads x {} head_dim x {:g} B", n,
                           model::kv_heads_per_rank(a.num_kv_heads, e.settings.tp), a.head_dim, kv_bytes);
    }
    if (key.first == "mla") {
      const auto& a = m.first(model::mixer_kind::mla)->mla;
      if (key.second == (a.kv_lora_rank + a.qk_rope_head_dim) * static_cast<std::int64_t>(kv_bytes))
        return fmt::format("{} layers x ({} latent + {} rope) x {:g} B, replicated on every GPU", n, a.kv_lora_rank,
                           a.qk_rope_head_dim, kv_bytes);
    }
  }
  std::string out;
  for (const auto& [key, n] : kinds)
    out += fmt::format("{}{} {} layers x {} B", out.empty() ? "" : " + ", n, key.first, group_digits(key.second));
  return out;
}

// "45 gated_deltanet layers x 533,504 B (conv 9,216 + recurrent 524,288)"
std::string state_formula(const memory_estimate& e) {
  std::map<std::tuple<std::string, std::int64_t, std::int64_t>, std::int64_t> kinds;
  for (const auto& c : e.caches)
    if (c.kind == model::cache_kind::state) ++kinds[{c.what, c.state_bytes, c.conv_state_bytes}];
  std::string out;
  for (const auto& [key, n] : kinds) {
    const auto& [what, bytes, conv] = key;
    out += fmt::format("{}{} {} layers x {} B (conv {} + recurrent {})", out.empty() ? "" : " + ", n, what,
                       group_digits(bytes), group_digits(conv), group_digits(bytes - conv));
  }
  return out;
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
  if (e.model.has_moe()) o += fmt::format(", active per token {} ({})", group_digits(e.active_params), billions(e.active_params));
  o += "\n";
  if (const auto& d = e.model.on_disk) {
    // The checkpoint's own bytes beside the ones counted from the config, by role.
    const auto counted = model::checkpoint_bytes_by_role(e.model);
    const std::int64_t counted_total = model::checkpoint_bytes(e.model);
    const auto pct = [](std::int64_t a, std::int64_t b) { return b > 0 ? fmt::format("{:+.2f}%", 100.0 * static_cast<double>(a - b) / static_cast<double>(b)) : std::string("-"); };
    o += d->files > 0 ? fmt::format("\nCheckpoint on disk: {} file(s), {} tensors, from the {}\n", d->files, d->tensors, d->source)
                      : fmt::format("\nCheckpoint on disk: from the {}\n", d->source);
    o += fmt::format("  {:<40} {:>18} {:>17} {:>17}\n", "role", "on disk bytes", "counted bytes", "counted vs disk");
    std::map<std::string, std::int64_t> roles = counted;
    for (const auto& [role, b] : d->by_role) roles.emplace(role, 0);
    if (!d->by_role.empty())
      for (const auto& [role, _] : roles) {
        const auto disk = d->by_role.count(role) ? d->by_role.at(role) : 0;
        const auto mine = counted.count(role) ? counted.at(role) : 0;
        o += fmt::format("  {:<40} {:>18} {:>17} {:>17}\n", role, group_digits(disk), group_digits(mine), pct(mine, disk));
      }
    o += fmt::format("  {:<40} {:>18} {:>17} {:>17}\n", "total", group_digits(d->bytes), group_digits(counted_total), pct(counted_total, d->bytes));
  }
  o += "\n";

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
  const std::int64_t unused = e.headroom_bytes + (e.budget_bytes - e.charged_bytes - e.kv_pool_bytes);
  o += unused >= 0 ? row("left unused", static_cast<double>(unused)) : row("beyond the GPU's memory", static_cast<double>(-unused));

  o += "\nKV cache and state\n";
  if (e.kv.bytes_per_token > 0)
    o += fmt::format("  per token: {} bytes ({:.1f} KiB) = {}\n", group_digits(e.kv.bytes_per_token),
                     static_cast<double>(e.kv.bytes_per_token) / 1024.0, kv_formula(e));
  if (e.kv.state_bytes_per_request > 0)
    o += fmt::format("  per request: {} bytes ({:.2f} MiB) of recurrent state = {}\n",
                     group_digits(e.kv.state_bytes_per_request),
                     static_cast<double>(e.kv.state_bytes_per_request) / static_cast<double>(mib_bytes), state_formula(e));
  for (const auto& c : e.caches)
    if (c.kind == model::cache_kind::sliding || c.kind == model::cache_kind::chunked) {
      o += fmt::format("  {} layers keep at most {} tokens (+ {} in flight)\n",
                       c.kind == model::cache_kind::sliding ? "sliding-window" : "chunked-attention",
                       group_digits(c.window_tokens), group_digits(e.kv.in_flight_tokens));
      break;
    }
  if (e.kv.groups.size() > 1) {
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> per;  // what -> (groups, blocks per request)
    for (const auto& g : e.kv.groups) {
      per[g.what].first += 1;
      per[g.what].second += g.blocks_per_request;
    }
    std::string groups;
    for (const auto& [what, v] : per)
      groups += fmt::format("{}{} x {} ({} blocks/request)", groups.empty() ? "" : ", ", v.first, what, v.second);
    o += fmt::format("  layout: {} layer groups of up to {} layers sharing one pool: {}\n", e.kv.groups.size(),
                     e.kv.groups.empty() ? 0 : std::max_element(e.kv.groups.begin(), e.kv.groups.end(), [](const auto& a, const auto& b) {
                       return a.layers < b.layers;
                     })->layers, groups);
  }
  if (e.kv.state_padded_bytes > 0)
    o += fmt::format("  attention blocks enlarged to {} tokens so one page ({} bytes) holds a layer's state\n",
                     e.kv.block_size, group_digits(e.kv.state_padded_bytes));
  o += fmt::format("  block: {} tokens = {} bytes; blocks: {}; max tokens: {}\n", e.kv.block_size, group_digits(e.block_bytes),
                   group_digits(e.num_blocks), group_digits(e.max_tokens));
  o += fmt::format("  max concurrency at max_model_len {}: {:.2f}x ({} blocks per request", s.max_model_len, e.max_concurrency,
                   group_digits(e.kv.blocks_per_request));
  o += e.kv.groups.size() > 1 ? fmt::format("; {})\n", e.capacity_bound) : ")\n";

  if (!e.stages.empty()) {
    o += fmt::format("\nPipeline stages (per GPU){:<18} {:>8} {:>12} {:>12} {:>12} {:>10}\n", "", "layers", "weights GiB",
                     "act. GiB", "KV pool GiB", "blocks");
    for (const auto& st : e.stages)
      o += fmt::format("  stage {:<3} layers {:>5}-{:<5}{:>14} {:>12.2f} {:>12.2f} {:>12.2f} {:>10}{}\n", st.index + 1,
                       st.first_layer, st.first_layer + st.layers - 1, st.layers, to_gib(static_cast<double>(st.weights_bytes)),
                       to_gib(static_cast<double>(st.activation_peak_bytes)), to_gib(static_cast<double>(st.kv_pool_bytes)),
                       group_digits(st.num_blocks), st.fits ? "" : "  DOES NOT FIT");
  }
  for (const auto& n : e.notes) o += fmt::format("note: {}\n", n);
  if (e.fits) {
    o += fmt::format("\nVerdict: FITS, with {:.2f} GiB to spare on the tightest condition\n", to_gib(e.spare_bytes));
  } else {
    o += fmt::format("\nVerdict: DOES NOT FIT, short by {:.2f} GiB: {}; {}\n", to_gib(e.shortfall_bytes), e.failures.front(),
                     e.advice.front());
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
  j["pp"] = s.pp;
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
  j["checkpoint_params"] = e.checkpoint_params;
  j["checkpoint_bytes"] = model::checkpoint_bytes(e.model);
  if (const auto& d = e.model.on_disk) {
    ordered_json disk = ordered_json::object(), counted = ordered_json::object();
    for (const auto& [role, b] : d->by_role) disk[role] = b;
    for (const auto& [role, b] : model::checkpoint_bytes_by_role(e.model)) counted[role] = b;
    j["checkpoint_on_disk"] = {{"bytes", d->bytes}, {"files", d->files}, {"tensors", d->tensors}, {"by_role", disk},
                               {"counted_by_role", counted}, {"source", d->source}};
  }
  j["kv_bytes_per_token"] = e.kv.bytes_per_token;
  j["state_bytes_per_request"] = e.kv.state_bytes_per_request;
  std::int64_t sliding = 0;
  std::optional<std::int64_t> window;
  for (const auto& c : e.caches)
    if (c.kind == model::cache_kind::sliding) {
      sliding += c.bytes_per_token;
      window = c.window_tokens;
    }
  j["kv_sliding_bytes_per_token"] = sliding;
  j["sliding_window"] = window ? ordered_json(*window) : ordered_json(nullptr);
  ordered_json layers = ordered_json::object();
  for (const auto& c : e.caches) {
    auto& k = layers[c.what];
    if (k.is_null()) k = {{"layers", 0}, {"kind", model::cache_kind_name(c.kind)}};
    k["layers"] = k["layers"].get<std::int64_t>() + 1;
    if (c.kind == model::cache_kind::state) {
      k["state_bytes_per_request"] = c.state_bytes;
    } else {
      k["bytes_per_token"] = c.bytes_per_token;
      if (c.window_tokens > 0) k["window_tokens"] = c.window_tokens;
    }
  }
  j["cache_layers"] = layers;
  ordered_json groups = ordered_json::array();
  for (const auto& g : e.kv.groups)
    groups.push_back({{"what", g.what}, {"kind", model::cache_kind_name(g.kind)}, {"layers", g.layers},
                      {"block_size", g.block_size}, {"page_bytes", g.page_bytes}, {"blocks_per_request", g.blocks_per_request}});
  j["kv_groups"] = groups;
  j["blocks_per_request"] = e.kv.blocks_per_request;
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
  j["block_size"] = e.kv.block_size;
  j["block_bytes"] = e.block_bytes;
  j["num_blocks"] = e.num_blocks;
  j["max_tokens"] = e.max_tokens;
  j["max_model_len"] = s.max_model_len;
  j["max_num_seqs"] = s.max_num_seqs;
  j["max_num_batched_tokens"] = s.max_num_batched_tokens;
  j["max_concurrency"] = e.max_concurrency;
  j["capacity_bound"] = e.capacity_bound;
  j["fits"] = e.fits;
  j["spare_bytes"] = e.spare_bytes;
  j["shortfall_bytes"] = e.shortfall_bytes;
  j["failures"] = e.failures;
  j["advice"] = e.advice;
  j["coefficients_source"] = e.coefficients_source;
  ordered_json settings = ordered_json::array();
  for (const auto& st : s.origins) settings.push_back({{"name", st.name}, {"value", st.value}, {"origin", st.origin}});
  j["settings"] = settings;
  j["notes"] = e.notes;
  if (!e.stages.empty()) {
    ordered_json stages = ordered_json::array();
    for (const auto& st : e.stages)
      stages.push_back({{"stage", st.index + 1}, {"first_layer", st.first_layer}, {"layers", st.layers},
                        {"weights_bytes", st.weights_bytes}, {"activation_peak_bytes", st.activation_peak_bytes},
                        {"kv_pool_bytes", st.kv_pool_bytes}, {"num_blocks", st.num_blocks}, {"fits", st.fits}});
    j["pipeline_stages"] = stages;
  }
  return j.dump(2) + "\n";
}

}  // namespace gpucal::cli
