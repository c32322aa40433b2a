// Parser for coefficient sets (gpucal.coefficients/1) and for the
// coefficients inside calibration files (gpucal.calibration/1).
#include "gpucal/model/coefficients.hpp"

#include <cmath>
#include <fstream>
#include <sstream>

#include "detail/coefficients_json.hpp"
#include "detail/json_fields.hpp"
#include "gpucal/model/files.hpp"

namespace gpucal::model {

namespace {

using detail::field_reader;
using detail::json;

coefficient read_coefficient(const field_reader& parent, const char* key, double lo, double hi) {
  field_reader c = parent.child(key);
  coefficient out;
  out.value = c.number_in("value", lo, hi);
  out.source = c.string("source");
  if (out.source != "default" && out.source != "measured")
    c.fail("source", fmt::format("is '{}' (allowed: default, measured)", out.source));
  out.note = c.string_or("note", "");
  return out;
}

gemm_curve read_curve(const field_reader& parent, const std::string& key) {
  field_reader c(parent.object(key.c_str()), parent.where() + "." + key);
  gemm_curve g;
  for (const auto& v : c.array("m")) g.m.push_back(v.is_number() ? v.get<double>() : -1);
  for (const auto& v : c.array("compute_efficiency")) g.compute_efficiency.push_back(v.is_number() ? v.get<double>() : -1);
  if (g.m.empty() || g.m.size() != g.compute_efficiency.size())
    c.fail("compute_efficiency", "must have one value per entry of 'm' (and at least one)");
  for (std::size_t i = 0; i < g.m.size(); ++i) {
    if (!(g.m[i] >= 1) || (i > 0 && g.m[i] <= g.m[i - 1])) c.fail("m", "must be increasing values >= 1");
    if (!(g.compute_efficiency[i] > 0 && g.compute_efficiency[i] <= 1)) c.fail("compute_efficiency", "values must be in (0, 1]");
  }
  g.memory_efficiency = c.number_in("memory_efficiency", 0.01, 1.0);
  g.source = c.string("source");
  g.note = c.string_or("note", "");
  return g;
}

throughput_coefficients read_throughput(const field_reader& t) {
  throughput_coefficients out;
  field_reader gemm = t.child("gemm");
  for (const char* kind : {"bf16", "fp8", "int8", "w4a16"}) out.gemm[kind] = read_curve(gemm, kind);
  // fp4 (NVFP4/MXFP4 on Blackwell tensor cores) is optional: calibrations of GPUs without fp4 have none.
  if (gemm.has("fp4")) out.gemm["fp4"] = read_curve(gemm, "fp4");
  out.hbm_efficiency = read_coefficient(t, "hbm_efficiency", 0.01, 1);
  out.decode_attention_efficiency = read_coefficient(t, "decode_attention_efficiency", 0.01, 1);
  out.prefill_attention_efficiency = read_coefficient(t, "prefill_attention_efficiency", 0.01, 1);
  out.allreduce_efficiency = read_coefficient(t, "allreduce_efficiency", 0.01, 1);
  out.allreduce_latency_us = read_coefficient(t, "allreduce_latency_us", 0, 1e5);
  if (t.has("step_overhead_us")) {
    field_reader per_engine = t.child("step_overhead_us");
    for (const auto& item : t.object("step_overhead_us").items())
      out.step_overhead_us[item.key()] = read_coefficient(per_engine, item.key().c_str(), 0, 1e6);
  }
  return out;
}

}  // namespace

coefficients detail::read_coefficients(const field_reader& r, std::string source) {
  coefficients out;
  out.source = std::move(source);
  if (r.has("usable_memory_bytes")) out.usable_memory_bytes = r.positive_int("usable_memory_bytes");
  field_reader mem = r.child("memory");
  constexpr double max_bytes = 1e13;
  memory_coefficients& m = out.memory;
  m.cuda_context_bytes = read_coefficient(mem, "cuda_context_bytes", 0, max_bytes);
  m.non_torch_bytes = read_coefficient(mem, "non_torch_bytes", 0, max_bytes);
  m.nccl_bytes_per_gpu = read_coefficient(mem, "nccl_bytes_per_gpu", 0, max_bytes);
  m.cuda_graph_bytes = read_coefficient(mem, "cuda_graph_bytes", 0, max_bytes);
  m.activation_scale = read_coefficient(mem, "activation_scale", 0.1, 10);
  m.activation_fixed_bytes = read_coefficient(mem, "activation_fixed_bytes", 0, max_bytes);
  m.sampler_fp32_copies = read_coefficient(mem, "sampler_fp32_copies", 0, 16);
  out.throughput = read_throughput(r.child("throughput"));
  return out;
}

namespace {

json finite(double v, const std::string& what) {
  if (!std::isfinite(v)) throw std::invalid_argument("coefficients: " + what + " is not finite");
  return v;
}

json coefficient_json(const coefficient& c, const std::string& what) {
  json j = {{"value", finite(c.value, what)}, {"source", c.source}};
  if (!c.note.empty()) j["note"] = c.note;
  return j;
}

}  // namespace

json detail::coefficients_json(const coefficients& c) {
  json j = json::object();
  if (c.usable_memory_bytes) j["usable_memory_bytes"] = *c.usable_memory_bytes;
  const memory_coefficients& m = c.memory;
  j["memory"] = {{"cuda_context_bytes", coefficient_json(m.cuda_context_bytes, "cuda_context_bytes")},
                 {"non_torch_bytes", coefficient_json(m.non_torch_bytes, "non_torch_bytes")},
                 {"nccl_bytes_per_gpu", coefficient_json(m.nccl_bytes_per_gpu, "nccl_bytes_per_gpu")},
                 {"cuda_graph_bytes", coefficient_json(m.cuda_graph_bytes, "cuda_graph_bytes")},
                 {"activation_scale", coefficient_json(m.activation_scale, "activation_scale")},
                 {"activation_fixed_bytes", coefficient_json(m.activation_fixed_bytes, "activation_fixed_bytes")},
                 {"sampler_fp32_copies", coefficient_json(m.sampler_fp32_copies, "sampler_fp32_copies")}};
  const throughput_coefficients& t = c.throughput;
  json gemm = json::object();
  for (const auto& [kind, curve] : t.gemm) {
    json eff = json::array();
    for (double e : curve.compute_efficiency) eff.push_back(finite(e, "gemm." + kind + ".compute_efficiency"));
    gemm[kind] = {{"m", curve.m}, {"compute_efficiency", eff},
                  {"memory_efficiency", finite(curve.memory_efficiency, "gemm." + kind + ".memory_efficiency")},
                  {"source", curve.source}, {"note", curve.note}};
  }
  j["throughput"] = {{"gemm", gemm},
                     {"hbm_efficiency", coefficient_json(t.hbm_efficiency, "hbm_efficiency")},
                     {"decode_attention_efficiency", coefficient_json(t.decode_attention_efficiency, "decode_attention_efficiency")},
                     {"prefill_attention_efficiency", coefficient_json(t.prefill_attention_efficiency, "prefill_attention_efficiency")},
                     {"allreduce_efficiency", coefficient_json(t.allreduce_efficiency, "allreduce_efficiency")},
                     {"allreduce_latency_us", coefficient_json(t.allreduce_latency_us, "allreduce_latency_us")}};
  if (!t.step_overhead_us.empty()) {
    json per_engine = json::object();
    for (const auto& [engine, overhead] : t.step_overhead_us)
      per_engine[engine] = coefficient_json(overhead, "step_overhead_us." + engine);
    j["throughput"]["step_overhead_us"] = per_engine;
  }
  return j;
}

double gemm_curve::compute_at(double m_rows) const {
  if (m_rows <= m.front()) return compute_efficiency.front();
  if (m_rows >= m.back()) return compute_efficiency.back();
  std::size_t i = 1;
  while (m[i] < m_rows) ++i;
  const double t = (std::log2(m_rows) - std::log2(m[i - 1])) / (std::log2(m[i]) - std::log2(m[i - 1]));
  return compute_efficiency[i - 1] + t * (compute_efficiency[i] - compute_efficiency[i - 1]);
}

const gemm_curve& throughput_coefficients::curve(const std::string& kind) const {
  const auto it = gemm.find(kind);
  if (it == gemm.end()) throw std::logic_error("no GEMM curve for " + kind);
  return it->second;
}

coefficients parse_coefficients(std::string_view json_text, std::string_view where) {
  const json root = detail::parse_json_text(json_text, where);
  field_reader top(root, std::string(where));
  const std::string schema = top.string("schema");
  if (schema == "gpucal.coefficients/1") return detail::read_coefficients(top, "default");
  if (schema == "gpucal.calibration/1")
    return detail::read_coefficients(top.child("coefficients"), fmt::format("calibration {}", where));
  top.fail("schema", fmt::format("is '{}' (allowed: gpucal.coefficients/1, gpucal.calibration/1)", schema));
}

coefficients load_coefficients_file(const std::string& path) {
  return parse_coefficients(read_input_file(path, "--calibration"), path);
}

}  // namespace gpucal::model
