// Parser for coefficient sets (gpucal.coefficients/1) and for the
// coefficients inside calibration files (gpucal.calibration/1).
#include "gpucal/model/coefficients.hpp"

#include <fstream>
#include <sstream>

#include "detail/json_fields.hpp"

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

coefficients read_coefficients_object(const field_reader& r, std::string source) {
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
  return out;
}

}  // namespace

coefficients parse_coefficients(std::string_view json_text, std::string_view where) {
  const json root = detail::parse_json_text(json_text, where);
  field_reader top(root, std::string(where));
  const std::string schema = top.string("schema");
  if (schema == "gpucal.coefficients/1") return read_coefficients_object(top, "default");
  if (schema == "gpucal.calibration/1")
    return read_coefficients_object(top.child("coefficients"), fmt::format("calibration {}", where));
  top.fail("schema", fmt::format("is '{}' (allowed: gpucal.coefficients/1, gpucal.calibration/1)", schema));
}

coefficients load_coefficients_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(fmt::format("--calibration: cannot read '{}'", path));
  std::ostringstream text;
  text << in.rdbuf();
  return parse_coefficients(text.str(), path);
}

}  // namespace gpucal::model
