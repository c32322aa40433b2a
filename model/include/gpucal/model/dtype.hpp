// Element types of weights, activations and the KV cache, with the names
// Hugging Face configs and vLLM flags use for them.
#pragma once

#include <string>
#include <string_view>

namespace gpucal::model {

enum class dtype { float32, bfloat16, float16, fp8_e4m3, fp8_e5m2, int8, int4, fp4_e2m1 };

/// Bits per element (int4 and fp4_e2m1 = 4).
int dtype_bits(dtype t);
/// Bytes per element as a double (int4 = 0.5).
double dtype_bytes(dtype t);
/// Canonical name: "float32", "bfloat16", "float16", "fp8_e4m3", "fp8_e5m2", "int8", "int4", "fp4_e2m1".
std::string_view dtype_name(dtype t);
/// Parses a torch dtype name as configs write it ("bfloat16", "float16", "fp16",
/// "half", "float32", "float", "bf16"). `what` names the field for the error.
dtype parse_float_dtype(std::string_view text, std::string_view what);

}  // namespace gpucal::model
