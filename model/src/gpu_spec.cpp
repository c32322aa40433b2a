// Parser for the GPU catalog (schema gpucal.gpus/1).
#include "gpucal/model/gpu_spec.hpp"

#include "detail/json_fields.hpp"

namespace gpucal::model {

std::vector<gpu_spec> parse_gpu_catalog(std::string_view json_text, std::string_view where) {
  using detail::field_reader;
  const detail::json root = detail::parse_json_text(json_text, where);
  field_reader top(root, std::string(where));
  if (top.string("schema") != "gpucal.gpus/1") top.fail("schema", "must be \"gpucal.gpus/1\"");
  std::vector<gpu_spec> gpus;
  const detail::json& list = top.array("gpus");
  for (std::size_t i = 0; i < list.size(); ++i) {
    field_reader g(list[i], fmt::format("{}: gpus[{}]", where, i));
    gpu_spec s;
    s.name = g.string("name");
    s.slug = g.string("slug");
    s.vendor = g.string_or("vendor", "nvidia");
    if (s.vendor != "nvidia" && s.vendor != "amd") g.fail("vendor", fmt::format("is '{}' (allowed: nvidia, amd)", s.vendor));
    s.aliases = g.string_list("aliases");
    s.architecture = g.string_or("architecture", "");
    s.compute_capability = g.string("compute_capability");
    s.sm_count = g.positive_int("sm_count");
    s.memory_bytes = g.positive_int("memory_bytes");
    if (g.has("cuda_total_memory_bytes")) s.cuda_total_memory_bytes = g.positive_int("cuda_total_memory_bytes");
    s.memory_note = g.string_or("memory_note", "");
    s.hbm_bandwidth_gbps = g.number_in("hbm_bandwidth_gbps", 1, 1e6);
    field_reader peaks = g.child("peak_tflops");
    for (const auto& [key, value] : g.object("peak_tflops").items()) {
      if (value.is_null()) continue;
      s.peak_tflops[key] = peaks.number_in(key.c_str(), 0.1, 1e6);
    }
    if (g.has("nvlink_gbps")) s.nvlink_gbps = g.number_in("nvlink_gbps", 1, 1e6);
    if (g.has("pcie_gbps")) s.pcie_gbps = g.number_in("pcie_gbps", 1, 1e6);
    s.sources = g.string_list("sources");
    gpus.push_back(std::move(s));
  }
  return gpus;
}

}  // namespace gpucal::model
