// Storage cost of quantized linear layers, and the --quantization flag.
#include "gpucal/model/quantization.hpp"

#include <fmt/format.h>

#include <cmath>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

std::string quant_spec::describe() const {
  if (!quantized()) return "none";
  std::string s = fmt::format("{} ({}", dtype_name(*weight), method);
  switch (granularity) {
    case scale_granularity::tensor: s += ", per-tensor scales"; break;
    case scale_granularity::channel: s += ", per-channel scales"; break;
    case scale_granularity::group: s += fmt::format(", group {}", group_size); break;
    case scale_granularity::block: s += fmt::format(", {}x{} block scales", group_size, group_size); break;
    case scale_granularity::none: break;
  }
  if (granularity != scale_granularity::none) s += scale_bytes == 4 ? ", fp32 scales" : ", 16-bit scales";
  if (zero_points) s += ", zero points";
  if (act_order) s += ", act-order";
  return s + ")";
}

double linear_weight_bytes(const quant_spec& q, dtype model_dtype, std::int64_t rows, std::int64_t cols) {
  const double elements = static_cast<double>(rows) * static_cast<double>(cols);
  if (!q.quantized()) return elements * dtype_bytes(model_dtype);
  const int bits = dtype_bits(*q.weight);
  // Packed weights: 4-bit values two to a byte, rounded up per row.
  double bytes = static_cast<double>(rows) * static_cast<double>(ceil_div(cols * bits, 8));
  std::int64_t scales = 0;
  switch (q.granularity) {
    case scale_granularity::none: break;
    case scale_granularity::tensor: scales = 1; break;
    case scale_granularity::channel: scales = rows; break;
    case scale_granularity::group: scales = rows * ceil_div(cols, q.group_size); break;
    case scale_granularity::block: scales = ceil_div(rows, q.group_size) * ceil_div(cols, q.group_size); break;
  }
  bytes += static_cast<double>(scales) * q.scale_bytes;
  // Zero points are packed at the weight's bit width, one per scale.
  if (q.zero_points) bytes += std::ceil(static_cast<double>(scales) * bits / 8.0);
  // GPTQ act-order keeps g_idx and its sort permutation: two int32 per input.
  if (q.act_order) bytes += static_cast<double>(cols) * 8.0;
  return bytes;
}

namespace {

quant_spec int4_groupwise(std::string method, std::int64_t group, bool zeros) {
  quant_spec q;
  q.method = std::move(method);
  q.weight = dtype::int4;
  q.granularity = scale_granularity::group;
  q.group_size = group;
  q.scale_bytes = 2;
  q.zero_points = zeros;
  return q;
}

}  // namespace

quant_spec quant_from_flag(std::string_view flag, const std::optional<quant_spec>& from_config,
                           std::optional<std::int64_t> group_size) {
  quant_spec q;
  q.origin = "--quantization";
  if (flag == "none") return q;
  if (flag == "fp8") {
    // A checkpoint already in fp8 keeps its own scales (e.g. DeepSeek's 128x128 blocks).
    if (from_config && from_config->weight == dtype::fp8_e4m3) {
      quant_spec c = *from_config;
      c.origin = "--quantization (checkpoint format)";
      return c;
    }
    // vLLM's --quantization fp8 on a 16-bit checkpoint: dynamic per-tensor fp8
    // weights with one fp32 scale each.
    q.method = "fp8";
    q.weight = dtype::fp8_e4m3;
    q.granularity = scale_granularity::tensor;
    q.scale_bytes = 4;
    return q;
  }
  if (flag == "int8" || flag == "w8a8") {
    q.method = "int8";
    q.weight = dtype::int8;
    q.granularity = scale_granularity::channel;
    q.scale_bytes = 4;
    return q;
  }
  if (flag == "awq" || flag == "gptq" || flag == "w4a16" || flag == "int4") {
    std::int64_t group = 128;
    if (group_size) {
      group = *group_size;
    } else if (from_config && from_config->granularity == scale_granularity::group) {
      group = from_config->group_size;
    }
    if (group <= 0) throw input_error(fmt::format("--group-size: {} must be positive", group));
    // AWQ stores asymmetric zero points; GPTQ and plain W4A16 default to symmetric.
    quant_spec g = int4_groupwise(flag == "int4" ? "w4a16" : std::string(flag), group, flag == "awq");
    g.origin = "--quantization";
    return g;
  }
  throw input_error(fmt::format("--quantization: '{}' is not supported (allowed: {})", flag,
                                quantization_flag_values));
}

}  // namespace gpucal::model
