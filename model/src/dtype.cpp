// dtype names and sizes.
#include "gpucal/model/dtype.hpp"

#include <fmt/format.h>

#include "gpucal/model/errors.hpp"

namespace gpucal::model {

int dtype_bits(dtype t) {
  switch (t) {
    case dtype::float32: return 32;
    case dtype::bfloat16:
    case dtype::float16: return 16;
    case dtype::fp8_e4m3:
    case dtype::fp8_e5m2:
    case dtype::int8: return 8;
    case dtype::int4:
    case dtype::fp4_e2m1: return 4;
  }
  return 0;
}

double dtype_bytes(dtype t) { return dtype_bits(t) / 8.0; }

std::string_view dtype_name(dtype t) {
  switch (t) {
    case dtype::float32: return "float32";
    case dtype::bfloat16: return "bfloat16";
    case dtype::float16: return "float16";
    case dtype::fp8_e4m3: return "fp8_e4m3";
    case dtype::fp8_e5m2: return "fp8_e5m2";
    case dtype::int8: return "int8";
    case dtype::int4: return "int4";
    case dtype::fp4_e2m1: return "fp4_e2m1";
  }
  return "?";
}

dtype parse_float_dtype(std::string_view text, std::string_view what) {
  if (text == "bfloat16" || text == "bf16") return dtype::bfloat16;
  if (text == "float16" || text == "fp16" || text == "half") return dtype::float16;
  if (text == "float32" || text == "fp32" || text == "float") return dtype::float32;
  throw input_error(fmt::format("{}: '{}' is not a supported dtype (allowed: bfloat16, float16, float32)",
                                what, text));
}

}  // namespace gpucal::model
