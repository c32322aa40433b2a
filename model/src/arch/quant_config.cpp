// The quantization of a checkpoint, from config.json's quantization_config
// and, for ModelOpt checkpoints, hf_quant_config.json: AWQ, GPTQ, fp8 (per
// tensor, per block, static or dynamic), compressed-tensors (int, fp8,
// NVFP4, MXFP4 groups), ModelOpt (FP8, NVFP4, mixed precision) and MXFP4
// (gpt-oss). Each format's ignore list names the modules it leaves in the
// model dtype.
#include <fmt/format.h>


#include "arch/family.hpp"
#include "arch/module_regex.hpp"
#include "gpucal/model/errors.hpp"

namespace gpucal::model::arch {

namespace {

std::vector<std::string> read_patterns(const field_reader& q, const char* key) {
  std::vector<std::string> out;
  if (!q.has(key)) return out;
  const json& l = q.raw(key);
  if (!l.is_array()) q.fail(key, "must be a list of module names or patterns");
  for (std::size_t i = 0; i < l.size(); ++i) {
    if (!l[i].is_string()) q.fail(key, fmt::format("entry {} is {} (allowed: a module name, a glob or \"re:<regex>\")", i, detail::shown(l[i])));
    std::string p = l[i].get<std::string>();
    if (p.starts_with("re:")) {
      try {
        const module_regex check(std::string_view(p).substr(3));
      } catch (const std::invalid_argument& e) {
        q.fail(key, fmt::format("entry {} is not a supported regular expression ({}): {}", i, e.what(), detail::shown(l[i])));
      }
    }
    out.push_back(std::move(p));
  }
  return out;
}

quant_format fp8_static_per_tensor() {
  // ModelOpt FP8: fp8-e4m3 weights with an fp32 weight_scale and input_scale per tensor.
  quant_format f;
  f.name = "fp8";
  f.weight = dtype::fp8_e4m3;
  f.granularity = scale_granularity::tensor;
  f.scale_bytes = 4;
  f.tensor_scale_bytes = 4;
  return f;
}

// A ModelOpt quant_algo (hf_quant_config.json's quantization object, or a
// quantization_config with quant_method "modelopt").
quant_format modelopt_algo(const field_reader& q, const char* key) {
  const std::string algo = q.string(key);
  if (algo == "FP8") return fp8_static_per_tensor();
  if (algo == "NVFP4") {
    quant_format f = nvfp4_format();
    f.group_size = q.power_of_two_or("group_size", 16, 16, 1024);
    return f;
  }
  if (algo == "W4A16_NVFP4") {
    // NVFP4 weights with 16-bit activations: no input_scale, only weight_scale_2.
    quant_format f = nvfp4_format();
    f.name = "nvfp4 (w4a16)";
    f.group_size = q.power_of_two_or("group_size", 16, 16, 1024);
    f.tensor_scale_bytes = 4;
    return f;
  }
  if (algo == "MXFP4") return mxfp4_format(q.power_of_two_or("group_size", 32, 16, 1024));
  if (algo == "MXFP8") {
    // OCP MXFP8: fp8-e4m3 weights, one e8m0 scale per 32 inputs.
    quant_format f = mxfp4_format(q.power_of_two_or("group_size", 32, 16, 1024));
    f.name = "mxfp8";
    f.weight = dtype::fp8_e4m3;
    return f;
  }
  q.fail(key, fmt::format("'{}' is not supported (allowed: FP8, NVFP4, W4A16_NVFP4, MXFP4, MXFP8, MIXED_PRECISION)", algo));
}

// kv_cache_quant_algo ("FP8") or kv_cache_scheme ("FP8", or {"type": "float", "num_bits": 8}).
std::optional<dtype> kv_algo(const field_reader& q, const char* key) {
  if (!q.has(key)) return std::nullopt;
  const json& v = q.raw(key);
  if (v.is_object()) {
    const field_reader s(v, q.where() + "." + key);
    if (s.string_or("type", "float") == "float" && s.dim_or("num_bits", 8, 64) == 8) return dtype::fp8_e4m3;
    q.fail(key, fmt::format("{} is not supported (allowed: an 8-bit float scheme)", detail::shown(v)));
  }
  const std::string text = q.string(key);
  if (text == "FP8") return dtype::fp8_e4m3;
  if (text == "NONE" || text.empty()) return std::nullopt;
  q.fail(key, fmt::format("'{}' is not supported (allowed: FP8, NONE)", text));
}

quant_spec read_modelopt(const field_reader& q, const std::string& origin) {
  quant_spec s;
  s.method = "modelopt";
  s.origin = origin;
  const char* algo_key = q.has("quant_algo") ? "quant_algo" : "quant_method";
  if (q.string(algo_key) == "MIXED_PRECISION") {
    // Per-module formats: {"model.layers.0.mlp.experts.0.down_proj": {"quant_algo": "NVFP4", ...}, ...}
    const json& layers = q.object("quantized_layers");
    field_reader ql(layers, q.where() + ".quantized_layers");
    for (const auto& [module, spec] : layers.items()) {
      if (!spec.is_object()) ql.fail(module.c_str(), "must be an object with quant_algo");
      field_reader one(spec, ql.where() + "." + module);
      s.rules.emplace_back(module, modelopt_algo(one, "quant_algo"));
    }
  } else {
    static_cast<quant_format&>(s) = modelopt_algo(q, algo_key);
  }
  s.ignore = read_patterns(q, q.has("exclude_modules") ? "exclude_modules" : "ignore");
  s.checkpoint_kv_dtype = kv_algo(q, q.has("kv_cache_quant_algo") ? "kv_cache_quant_algo" : "kv_cache_scheme");
  return s;
}

quant_spec read_compressed_tensors(const field_reader& q, dtype model_dtype) {
  quant_spec s;
  s.method = "compressed-tensors";
  s.origin = "config.json quantization_config";
  if (!q.has("config_groups") || !q.raw("config_groups").is_object() || q.raw("config_groups").empty())
    q.fail("config_groups", "must be a non-empty object");
  bool first = true;
  for (const auto& [group_name, group] : q.raw("config_groups").items()) {
    if (!group.is_object() || !group.contains("weights") || !group.at("weights").is_object())
      q.fail("config_groups", fmt::format("group '{}' has no 'weights' object", group_name));
    field_reader w(group.at("weights"), q.where() + ".config_groups." + group_name + ".weights");
    const std::int64_t bits = w.dim("num_bits", 64);
    const std::string type = w.string_or("type", "int");
    const std::string strategy = w.string_or("strategy", "tensor");
    quant_format f;
    if (type == "float" && bits == 8) {
      f.weight = dtype::fp8_e4m3;
    } else if (type == "float" && bits == 4) {
      f.weight = dtype::fp4_e2m1;
    } else if (type == "int" && bits == 8) {
      f.weight = dtype::int8;
    } else if (type == "int" && bits == 4) {
      f.weight = dtype::int4;
    } else {
      w.fail("num_bits", fmt::format("{}-bit {} weights are not supported (allowed: 8-bit float, 4-bit float, 8-bit int, 4-bit int)", bits, type));
    }
    // compressed-tensors stores scales in the model dtype, except the fp4
    // formats: NVFP4 (group 16, fp8 scales, a global fp32 scale) and MXFP4
    // (group 32, uint8 e8m0 scales).
    f.scale_bytes = static_cast<int>(dtype_bits(model_dtype) / 8);
    const std::string scale_dtype = w.has("scale_dtype") ? w.string("scale_dtype") : "";
    if (strategy == "tensor") {
      f.granularity = scale_granularity::tensor;
    } else if (strategy == "channel") {
      f.granularity = scale_granularity::channel;
    } else if (strategy == "group" || strategy == "tensor_group") {
      f.granularity = scale_granularity::group;
      if (!w.has("group_size")) w.fail("group_size", "is missing");
      f.group_size = w.power_of_two_or("group_size", 0, 16, 1024);
    } else if (strategy == "block") {
      f.granularity = scale_granularity::block;
      const json& b = w.raw("block_structure");
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<std::int64_t>() <= 0 ||
          b[0].get<std::int64_t>() > (1 << 16))
        w.fail("block_structure", fmt::format("must be [n, n] with 0 < n <= 65536, got {}", detail::shown(b)));
      f.group_size = b[0].get<std::int64_t>();
    } else {
      w.fail("strategy", fmt::format("'{}' is not supported (allowed: tensor, channel, group, tensor_group, block)", strategy));
    }
    if (*f.weight == dtype::fp4_e2m1) {
      const bool mx = scale_dtype.find("uint8") != std::string::npos || f.group_size == 32;
      f.name = mx ? "mxfp4" : "nvfp4";
      f.scale_bytes = 1;
      f.tensor_scale_bytes = mx ? 0 : 8;  // NVFP4: weight_global_scale and input_global_scale
    }
    f.zero_points = !w.boolean_or("symmetric", true);
    if (first) {
      static_cast<quant_format&>(s) = f;
      first = false;
    } else {
      // Further groups apply to the modules their targets name.
      const json& targets = group.contains("targets") ? group.at("targets") : json::array();
      for (const auto& t : targets)
        if (t.is_string() && t.get<std::string>() != "Linear") s.rules.emplace_back(t.get<std::string>(), f);
    }
  }
  s.ignore = read_patterns(q, "ignore");
  s.checkpoint_kv_dtype = kv_algo(q, "kv_cache_scheme");
  return s;
}

}  // namespace

std::optional<quant_spec> read_quantization(const field_reader& cfg, dtype model_dtype,
                                            const std::optional<json>& hf_quant_config, const std::string& where) {
  // config.json's quantization_config wins when it names a quant_method; a
  // ModelOpt hf_quant_config.json beside it ({"producer": ..., "quantization":
  // {...}}) describes checkpoints whose config.json has none (or one without
  // a method, which vLLM 0.33 would serve unquantized: gpucal follows the file).
  const bool has_method = cfg.has("quantization_config") && cfg.raw("quantization_config").is_object() &&
                          cfg.raw("quantization_config").contains("quant_method") &&
                          cfg.raw("quantization_config").at("quant_method").is_string() &&
                          !cfg.raw("quantization_config").at("quant_method").get<std::string>().empty();
  if (hf_quant_config && !has_method) {
    field_reader top(*hf_quant_config, where + " (hf_quant_config.json)");
    return read_modelopt(top.child("quantization"), "hf_quant_config.json");
  }
  if (!cfg.has("quantization_config")) return std::nullopt;
  const json& qc = cfg.raw("quantization_config");
  if (!qc.is_object()) cfg.fail("quantization_config", "must be an object");
  field_reader q(qc, cfg.where() + ": quantization_config");
  std::string method = q.string_or("quant_method", "");
  // ModelOpt's own exports carry quant_algo with an empty or absent quant_method.
  if ((method.empty() || method == "modelopt") && q.has("quant_algo"))
    return read_modelopt(q, "config.json quantization_config (ModelOpt)");
  quant_spec s;
  s.method = method;
  s.origin = "config.json quantization_config";
  if (method == "awq" || method == "gptq") {
    // AutoAWQ's older configs spell bits and group_size as w_bit and q_group_size.
    const char* bits_key = q.has("w_bit") ? "w_bit" : "bits";
    const char* group_key = q.has("q_group_size") ? "q_group_size" : "group_size";
    const std::int64_t bits = q.positive_int_or(bits_key, 4);
    if (bits != 4 && bits != 8) q.fail(bits_key, fmt::format("{} is not supported (allowed: 4, 8)", bits));
    s.weight = bits == 4 ? dtype::int4 : dtype::int8;
    const json& g = q.has(group_key) ? q.raw(group_key) : json(128);
    const std::int64_t group = g.is_number_integer() ? g.get<std::int64_t>() : 0;
    if (group != -1 && (group < 16 || group > 1024 || (group & (group - 1)) != 0))
      q.fail(group_key, fmt::format("must be -1 (per channel) or a power of two from 16 to 1024, got {}", detail::shown(g)));
    if (group == -1) {
      s.granularity = scale_granularity::channel;
    } else {
      s.granularity = scale_granularity::group;
      s.group_size = group;
    }
    s.scale_bytes = 2;  // AWQ and GPTQ checkpoints store fp16 scales
    s.zero_points = method == "awq" ? q.boolean_or("zero_point", true) : !q.boolean_or("sym", true);
    s.act_order = method == "gptq" && q.boolean_or("desc_act", false);
    s.quantize_lm_head = q.boolean_or("lm_head", false);
    s.ignore = read_patterns(q, "modules_to_not_convert");
    return s;
  }
  if (method == "fp8") {
    s.name = "fp8";
    s.weight = dtype::fp8_e4m3;
    s.scale_bytes = 4;
    // DeepSeek-V3.2/V4 store power-of-two block scales as ue8m0 (one byte).
    if (q.has("scale_fmt") && q.string("scale_fmt") == "ue8m0") s.scale_bytes = 1;
    if (q.has("weight_block_size")) {
      const json& b = q.raw("weight_block_size");
      if (!b.is_array() || b.size() != 2 || !b[0].is_number_integer() || b[0] != b[1] || b[0].get<std::int64_t>() <= 0 ||
          b[0].get<std::int64_t>() > (1 << 16))
        q.fail("weight_block_size", fmt::format("must be [n, n] with 0 < n <= 65536, got {}", detail::shown(b)));
      s.granularity = scale_granularity::block;
      s.group_size = b[0].get<std::int64_t>();
    } else {
      s.granularity = scale_granularity::tensor;
      // A static activation scheme stores an fp32 input_scale per tensor too.
      if (q.string_or("activation_scheme", "dynamic") == "static") s.tensor_scale_bytes = 4;
    }
    if (q.string_or("quant_algo", "") == "MIXED_PRECISION" && q.has("quantized_layers")) {
      // nvidia's DeepSeek-V4 NVFP4: block fp8 as the base format, NVFP4 for the
      // modules quantized_layers lists; its ignore list means "not re-quantized".
      const json& layers = q.object("quantized_layers");
      const field_reader ql(layers, q.where() + ".quantized_layers");
      for (const auto& [module, spec] : layers.items()) {
        if (!spec.is_object()) ql.fail(module.c_str(), "must be an object with quant_algo");
        s.rules.emplace_back(module, modelopt_algo(field_reader(spec, ql.where() + "." + module), "quant_algo"));
      }
      return s;
    }
    s.ignore = read_patterns(q, q.has("modules_to_not_convert") ? "modules_to_not_convert" : "ignored_layers");
    // DeepSeek-V4 stores its routed experts in FP4 (expert_dtype, beside the fp8 quantization_config):
    // e2m1 values with one ue8m0 scale per 32.
    if (cfg.has("expert_dtype")) {
      const std::string e = cfg.string("expert_dtype");
      if (e == "fp4") {
        s.rules.emplace_back("re:.*\\.experts\\..*", mxfp4_format());
      } else if (e != "fp8" && e != "bf16") {
        cfg.fail("expert_dtype", fmt::format("'{}' is not supported (allowed: fp4, fp8, bf16)", e));
      }
    }
    return s;
  }
  if (method == "mxfp4") {
    // gpt-oss: MXFP4 for the MoE experts; modules_to_not_convert names what stays bf16.
    static_cast<quant_format&>(s) = mxfp4_format();
    s.ignore = read_patterns(q, "modules_to_not_convert");
    return s;
  }
  if (method == "compressed-tensors") return read_compressed_tensors(q, model_dtype);
  q.fail("quant_method", fmt::format("'{}' is not supported (allowed: awq, gptq, fp8, compressed-tensors, modelopt, mxfp4)", method));
}

}  // namespace gpucal::model::arch
