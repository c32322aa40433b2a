// Parser and lookups for engine memory profiles (schema gpucal.engine/1).
#include "gpucal/model/engine_profile.hpp"

#include <algorithm>

#include "detail/json_fields.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

std::string_view memory_item_name(memory_item i) {
  switch (i) {
    case memory_item::weights: return "weights";
    case memory_item::activation_peak: return "activation_peak";
    case memory_item::non_torch: return "non_torch";
    case memory_item::nccl: return "nccl";
    case memory_item::cuda_context: return "cuda_context";
    case memory_item::cuda_graphs: return "cuda_graphs";
  }
  return "?";
}

bool engine_profile::charges(memory_item i) const {
  return std::find(budget_charges.begin(), budget_charges.end(), i) != budget_charges.end();
}
bool engine_profile::outside(memory_item i) const {
  return std::find(outside_budget.begin(), outside_budget.end(), i) != outside_budget.end();
}

namespace {

using detail::field_reader;
using detail::json;

constexpr memory_item all_memory_items[] = {memory_item::weights,   memory_item::activation_peak, memory_item::non_torch,
                                            memory_item::nccl,      memory_item::cuda_context,    memory_item::cuda_graphs};

// The first matching rule's value, or `fallback`.
double pick(const std::vector<tiered_value>& rules, std::string_view slug, std::int64_t gpu_memory_bytes, int tp,
            double fallback, bool mla = false) {
  const double gib = to_gib(gpu_memory_bytes);
  for (const auto& r : rules) {
    if (std::any_of(r.except_gpus.begin(), r.except_gpus.end(),
                    [slug](const std::string& x) { return slug.find(x) != std::string_view::npos; }))
      continue;
    if (r.min_gpu_memory_gib && gib < *r.min_gpu_memory_gib) continue;
    if (r.min_tp && tp < *r.min_tp) continue;
    if (r.mla && *r.mla != mla) continue;
    return r.value;
  }
  return fallback;
}

std::vector<tiered_value> parse_tiers(const field_reader& parent, const char* key, double lo, double hi,
                                      bool require_fallback) {
  std::vector<tiered_value> out;
  const json& list = parent.array(key);
  for (std::size_t i = 0; i < list.size(); ++i) {
    field_reader r(list[i], fmt::format("{}.{}[{}]", parent.where(), key, i));
    tiered_value t;
    if (r.has("min_gpu_memory_gib")) t.min_gpu_memory_gib = r.number_in("min_gpu_memory_gib", 0, 1e6);
    if (r.has("min_tp")) t.min_tp = static_cast<int>(r.dim("min_tp", 1 << 16));
    if (r.has("except_gpus"))
      t.except_gpus = r.string_list("except_gpus");
    if (r.has("attention")) {
      const std::string a = r.string("attention");
      if (a != "mla" && a != "other") r.fail("attention", fmt::format("is '{}' (allowed: mla, other)", a));
      t.mla = a == "mla";
    }
    t.value = r.number_in("value", lo, hi);
    out.push_back(t);
  }
  // Lists of defaults end with an unconditional rule, so every GPU gets a value.
  if (require_fallback && (out.empty() || out.back().min_gpu_memory_gib || out.back().min_tp || out.back().mla ||
                                            !out.back().except_gpus.empty()))
    parent.fail(key, "must end with a rule without conditions (the fallback)");
  return out;
}

std::vector<memory_item> parse_items(const field_reader& parent, const char* key) {
  std::vector<memory_item> out;
  for (const auto& v : parent.array(key)) {
    const std::string s = v.is_string() ? v.get<std::string>() : detail::shown(v);
    bool found = false;
    for (memory_item i : all_memory_items) {
      if (memory_item_name(i) == s) {
        out.push_back(i);
        found = true;
      }
    }
    if (!found)
      parent.fail(key, fmt::format("has unknown item '{}' (allowed: weights, activation_peak, non_torch, nccl, "
                                   "cuda_context, cuda_graphs)", s));
  }
  return out;
}

std::optional<std::string> setting_name(const field_reader& r, const char* key) {
  if (!r.has(key)) return std::nullopt;
  const std::string s = r.string(key);
  if (s != "max_num_batched_tokens" && s != "max_num_seqs")
    r.fail(key, fmt::format("is '{}' (allowed: max_num_batched_tokens, max_num_seqs, null)", s));
  return s;
}

}  // namespace

double engine_profile::fraction_for(std::string_view slug, std::int64_t gpu_memory_bytes, int tp, bool mla) const {
  return pick(fraction_rules, slug, gpu_memory_bytes, tp, fraction_default, mla);
}
std::int64_t engine_profile::max_num_seqs_for(std::string_view slug, std::int64_t gpu_memory_bytes, int tp) const {
  return static_cast<std::int64_t>(pick(max_num_seqs, slug, gpu_memory_bytes, tp, max_num_seqs.back().value));
}
std::int64_t engine_profile::max_num_batched_tokens_for(std::string_view slug, std::int64_t gpu_memory_bytes, int tp) const {
  return static_cast<std::int64_t>(
      pick(max_num_batched_tokens, slug, gpu_memory_bytes, tp, max_num_batched_tokens.back().value));
}

std::optional<std::int64_t> engine_profile::mla_block_size_for(int compute_major, bool fp8_kv) const {
  for (const block_rule& r : mla_block_rules) {
    if (r.min_compute_major && compute_major < *r.min_compute_major) continue;
    if (r.fp8_kv && *r.fp8_kv != fp8_kv) continue;
    return r.value;
  }
  return std::nullopt;
}

namespace {

// The memory coefficients an engine profile may carry fitted values of.
coefficient* fitted_slot(memory_coefficients& c, const std::string& name) {
  if (name == "non_torch_bytes") return &c.non_torch_bytes;
  if (name == "nccl_bytes_per_gpu") return &c.nccl_bytes_per_gpu;
  if (name == "activation_scale") return &c.activation_scale;
  if (name == "activation_fixed_bytes") return &c.activation_fixed_bytes;
  if (name == "sampler_fp32_copies") return &c.sampler_fp32_copies;
  if (name == "cuda_graph_bytes") return &c.cuda_graph_bytes;
  return nullptr;
}

}  // namespace

memory_coefficients engine_profile::with_fits(const memory_coefficients& c) const {
  memory_coefficients out = c;
  for (const auto& [name, value] : fitted) {
    coefficient* slot = fitted_slot(out, name);
    if (slot && slot->source == "default") *slot = value;
  }
  return out;
}

engine_profile parse_engine_profile(std::string_view json_text, std::string_view where) {
  const json root = detail::parse_json_text(json_text, where);
  field_reader top(root, std::string(where));
  if (top.string("schema") != "gpucal.engine/1") top.fail("schema", "must be \"gpucal.engine/1\"");
  engine_profile p;
  p.engine = top.string("engine");
  p.display_name = top.string("display_name");
  p.version = top.string("version");

  field_reader frac = top.child("memory_fraction");
  p.fraction_flag = frac.string("flag");
  p.fraction_default = frac.number_in("default", 0.01, 1.0);
  p.fraction_rules = parse_tiers(frac, "rules", 0.01, 1.0, false);

  p.budget_charges = parse_items(top, "budget_charges");
  p.outside_budget = parse_items(top, "outside_budget");
  for (memory_item i : p.budget_charges)
    if (p.outside(i)) top.fail("outside_budget", fmt::format("repeats '{}', which budget_charges already has", memory_item_name(i)));
  if (!p.charges(memory_item::weights)) top.fail("budget_charges", "must include \"weights\"");
  for (memory_item i : all_memory_items)
    if (!p.charges(i) && !p.outside(i))
      top.fail("outside_budget", fmt::format("must place '{}' in budget_charges or outside_budget", memory_item_name(i)));
  p.kv_pool_factor = top.number_in("kv_pool_factor", 0.01, 1.0);

  field_reader act = top.child("activation");
  p.forward_tokens_from = setting_name(act, "forward_tokens_from");
  p.sampler_rows_from = setting_name(act, "sampler_rows_from");
  // 0: the sampler keeps no upcast copy of the logits (e.g. a greedy argmax over the model-dtype logits).
  if (p.sampler_rows_from) p.logits_bytes_per_element = act.number_in("logits_bytes_per_element", 0, 8);
  if (act.has("sampler_fp32_copies")) p.sampler_fp32_copies = act.number_in("sampler_fp32_copies", 0, 16);

  field_reader step = top.child("step_overhead_us");
  p.step_overhead_us.value = step.number_in("value", 0, 1e6);
  p.step_overhead_us.source = step.string("source");
  p.step_overhead_us.note = step.string_or("note", "");

  field_reader def = top.child("defaults");
  p.block_size = def.dim("block_size", 4096);
  // A number, or rules by compute capability and KV dtype ending with a fallback.
  if (def.has("mla_block_size")) {
    const json& v = def.raw("mla_block_size");
    if (v.is_number()) {
      p.mla_block_rules.push_back({std::nullopt, std::nullopt, def.dim("mla_block_size", 4096)});
    } else {
      const json& rules = def.array("mla_block_size");
      for (std::size_t i = 0; i < rules.size(); ++i) {
        field_reader r(rules[i], fmt::format("{}.mla_block_size[{}]", def.where(), i));
        block_rule b;
        if (r.has("min_compute_major")) b.min_compute_major = static_cast<int>(r.dim("min_compute_major", 100));
        if (r.has("kv_cache_dtype")) {
          const std::string kv = r.string("kv_cache_dtype");
          if (kv != "fp8" && kv != "auto") r.fail("kv_cache_dtype", fmt::format("is '{}' (allowed: fp8, auto)", kv));
          b.fp8_kv = kv == "fp8";
        }
        b.value = r.dim("value", 4096);
        p.mla_block_rules.push_back(b);
      }
      if (p.mla_block_rules.empty() || p.mla_block_rules.back().min_compute_major || p.mla_block_rules.back().fp8_kv)
        def.fail("mla_block_size", "must end with a rule without conditions (the fallback)");
    }
  }
  if (def.has("sparse_mla_block_size")) p.sparse_mla_block_size = def.dim("sparse_mla_block_size", 4096);
  p.max_num_seqs = parse_tiers(def, "max_num_seqs", 1, 1e7, true);
  p.max_num_batched_tokens = parse_tiers(def, "max_num_batched_tokens", 1, 1e8, true);
  p.cuda_graphs = def.boolean_or("cuda_graphs", true);

  // Layer-cache grouping (optional; absent = one scheduler batch in flight,
  // vLLM's hybrid allocator, no state checkpoints, capacity by concurrency).
  if (top.has("kv_cache")) {
    field_reader kv = top.child("kv_cache");
    p.kv_rules.in_flight_batches = static_cast<int>(kv.dim_or("in_flight_batches", 1, 16));
    p.kv_rules.hybrid_allocator = kv.boolean_or("hybrid_allocator", true);
    p.kv_rules.state_prefix_caching = kv.boolean_or("state_prefix_caching", false);
    const std::string rule = kv.string_or("capacity_rule", "concurrency");
    if (rule != "concurrency" && rule != "blocks")
      kv.fail("capacity_rule", fmt::format("is '{}' (allowed: concurrency, blocks)", rule));
    p.kv_rules.capacity_by_concurrency = rule == "concurrency";
    p.kv_rules.mla_state_align = kv.dim_or("hybrid_mla_block_align", 128, 1 << 16);
  }

  if (top.has("fitted")) {
    const field_reader f = top.child("fitted");
    memory_coefficients probe;
    for (const auto& [name, value] : f.object_json().items()) {
      (void)value;
      if (!fitted_slot(probe, name))
        f.fail(name.c_str(), "is not a fittable coefficient (allowed: non_torch_bytes, nccl_bytes_per_gpu, activation_scale, "
                             "activation_fixed_bytes, sampler_fp32_copies, cuda_graph_bytes)");
      const field_reader c = f.child(name.c_str());
      const bool scale = name == "activation_scale", copies = name == "sampler_fp32_copies";
      coefficient k;
      k.value = c.number_in("value", scale ? 0.1 : 0, scale ? 10 : copies ? 16 : 1e13);
      k.source = c.string("source");
      k.note = c.string_or("note", "");
      p.fitted[name] = k;
    }
  }

  const json& sources = top.array("sources");
  for (std::size_t i = 0; i < sources.size(); ++i) {
    field_reader s(sources[i], fmt::format("{}: sources[{}]", where, i));
    p.sources.push_back({s.string("fact"), s.string("where")});
  }
  return p;
}

std::string fitted_profile_json(std::string_view base_text, std::string_view base_where,
                                const std::map<std::string, coefficient>& fitted, const std::vector<std::string>& log_paths,
                                std::string_view gpu_slug) {
  // ordered_json keeps the base profile's key order.
  nlohmann::ordered_json profile = nlohmann::ordered_json::parse(base_text);
  nlohmann::ordered_json terms = nlohmann::ordered_json::object();
  for (const auto& [k, c] : fitted) terms[k] = {{"value", c.value}, {"source", c.source}, {"note", c.note}};
  profile["display_name"] = profile["display_name"].get<std::string>() + ", fitted to startup logs";
  profile["fitted"] = terms;
  std::string files;
  for (const auto& path : log_paths) files += (files.empty() ? "" : ", ") + path;
  profile["sources"].push_back({{"fact", fmt::format("fitted terms: gpucal fit-engine over {} logs on {} (base profile {})",
                                                     log_paths.size(), gpu_slug, base_where)},
                                {"where", files.size() > 2000 ? files.substr(0, 1997) + "..." : files}});
  return profile.dump(2) + "\n";
}

}  // namespace gpucal::model
