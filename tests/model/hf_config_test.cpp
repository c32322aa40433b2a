// config.json parsing: family rules (MoE layouts, MLA, sliding windows,
// quantization_config) and errors that name the offending field.
#include <gtest/gtest.h>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/model_spec.hpp"
#include "test_support.hpp"

namespace gm = gpucal::model;

namespace {

gm::model_spec parse(const std::string& json) { return gm::parse_hf_config(json, "test", "test.json"); }

bool sliding(const gm::model_spec& m, std::size_t i) {
  return m.layers.at(i).attention.window == gm::attention_window::sliding;
}

std::int64_t sliding_layers(const gm::model_spec& m) {
  std::int64_t n = 0;
  for (std::size_t i = 0; i < m.layers.size(); ++i) n += sliding(m, i) ? 1 : 0;
  return n;
}

const char* const tiny_llama = R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
  "max_position_embeddings": 2048, "torch_dtype": "float16")";

TEST(hf_config, llama_3_8b_fields) {
  const auto m = gm::resolve_model("Llama-3-8B");  // case-insensitive
  EXPECT_EQ(m.model_type, "llama");
  EXPECT_EQ(m.hidden_size, 4096);
  ASSERT_EQ(m.num_layers(), 32);
  EXPECT_EQ(m.count(gm::mixer_kind::attention), 32);
  EXPECT_EQ(m.layers[0].attention.num_kv_heads, 8);
  EXPECT_EQ(m.layers[0].attention.head_dim, 128);
  EXPECT_EQ(m.layers[0].mlp->intermediate_size, 14336);
  EXPECT_EQ(m.max_model_len, 8192);
  EXPECT_EQ(m.torch_dtype, gm::dtype::bfloat16);
  EXPECT_FALSE(m.tie_word_embeddings);
  EXPECT_FALSE(m.quantization.has_value());
  EXPECT_EQ(sliding_layers(m), 0);
}

TEST(hf_config, deepseek_v3_mla_moe_and_fp8_blocks) {
  const auto m = gm::resolve_model("deepseek-v3");
  ASSERT_EQ(m.count(gm::mixer_kind::mla), 61);
  const auto& mla = m.layers[0].mla;
  EXPECT_EQ(mla.kv_lora_rank, 512);
  EXPECT_EQ(mla.qk_rope_head_dim, 64);
  EXPECT_EQ(mla.q_lora_rank, 1536);
  EXPECT_FALSE(mla.indexer.has_value());
  ASSERT_TRUE(m.layers[3].moe.has_value());
  const auto& moe = *m.layers[3].moe;
  EXPECT_EQ(moe.num_experts, 256);
  EXPECT_EQ(moe.experts_per_token, 8);
  EXPECT_EQ(moe.shared_intermediate_size, 2048);  // one shared expert of moe_intermediate_size
  EXPECT_TRUE(moe.router_bias);
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(m.layers[i].moe.has_value()) << i;  // first_k_dense_replace = 3
  for (int i = 3; i < 61; ++i) EXPECT_TRUE(m.layers[i].moe.has_value()) << i;
  EXPECT_EQ(m.mtp_layers.size(), 1u);  // num_nextn_predict_layers, stored but not loaded
  // yarn: original_max_position_embeddings 4096 x factor 40.
  EXPECT_EQ(m.max_model_len, 163840);
  ASSERT_TRUE(m.quantization.has_value());
  EXPECT_EQ(m.quantization->weight, gm::dtype::fp8_e4m3);
  EXPECT_EQ(m.quantization->granularity, gm::scale_granularity::block);
  EXPECT_EQ(m.quantization->group_size, 128);
}

TEST(hf_config, gemma2_alternating_windows_and_tied_embeddings) {
  const auto m = gm::resolve_model("gemma-2-9b");
  EXPECT_TRUE(m.tie_word_embeddings);
  EXPECT_EQ(m.layers[0].attention.head_dim, 256);  // explicit, not hidden / heads (3584 / 16 = 224)
  EXPECT_EQ(m.layers[0].norms, 4);
  ASSERT_EQ(m.num_layers(), 42);
  EXPECT_TRUE(sliding(m, 0));
  EXPECT_FALSE(sliding(m, 1));
  EXPECT_EQ(sliding_layers(m), 21);
  EXPECT_EQ(m.layers[0].attention.window_tokens, 4096);
  EXPECT_EQ(m.torch_dtype, gm::dtype::float32);
}

TEST(hf_config, gemma3_multimodal_reads_text_config) {
  const auto m = parse(R"({"model_type": "gemma3", "torch_dtype": "bfloat16",
    "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 12,
      "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "sliding_window": 1024},
    "vision_config": {"hidden_size": 1152}})");
  EXPECT_EQ(m.model_type, "gemma3_text");
  EXPECT_EQ(m.vocab_size, 262208);  // Gemma3TextConfig default
  EXPECT_TRUE(m.layers[0].attention.qk_norm);
  // Every 6th layer (5 and 11) is global; the rest slide over 1024 tokens.
  EXPECT_EQ(sliding_layers(m), 10);
  EXPECT_FALSE(sliding(m, 5));
  EXPECT_FALSE(sliding(m, 11));
  EXPECT_EQ(m.layers[0].attention.window_tokens, 1024);
  EXPECT_FALSE(m.notes.empty());  // the Gemma3TextConfig defaults it filled, said so
}

TEST(hf_config, layer_types_list_wins) {
  const auto m = parse(std::string(tiny_llama) +
                       R"(, "sliding_window": 128, "layer_types": ["full_attention", "sliding_attention"]})");
  EXPECT_FALSE(sliding(m, 0));
  EXPECT_TRUE(sliding(m, 1));
}

TEST(hf_config, qwen2_moe_shared_expert_and_sparse_step) {
  const auto m = parse(R"({"model_type": "qwen2_moe", "hidden_size": 2048, "intermediate_size": 5632,
    "num_hidden_layers": 4, "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936,
    "max_position_embeddings": 8192, "num_experts": 60, "num_experts_per_tok": 4, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "decoder_sparse_step": 2, "mlp_only_layers": [3],
    "torch_dtype": "bfloat16"})");
  ASSERT_TRUE(m.layers[1].moe.has_value());
  EXPECT_TRUE(m.layers[0].attention.qkv_bias);
  EXPECT_TRUE(m.layers[1].moe->shared_expert_gate);
  EXPECT_EQ(m.layers[1].moe->shared_intermediate_size, 5632);
  // (i + 1) % 2 == 0 and not in mlp_only_layers: only layer 1.
  std::vector<bool> moe;
  for (const auto& l : m.layers) moe.push_back(l.moe.has_value());
  EXPECT_EQ(moe, (std::vector<bool>{false, true, false, false}));
}

TEST(hf_config, qwen3_moe_has_qk_norm_and_no_bias) {
  const auto m = gm::resolve_model("qwen3-30b-a3b");
  EXPECT_TRUE(m.layers[0].attention.qk_norm);
  EXPECT_FALSE(m.layers[0].attention.qkv_bias);
  ASSERT_TRUE(m.layers[0].moe.has_value());
  EXPECT_EQ(m.layers[0].moe->num_experts, 128);
  EXPECT_EQ(m.layers[0].moe->experts_per_token, 8);
}

TEST(hf_config, quantization_configs) {
  const auto awq = parse(std::string(tiny_llama) +
                         R"(, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128,
                              "zero_point": true, "version": "gemm"}})");
  ASSERT_TRUE(awq.quantization.has_value());
  EXPECT_EQ(awq.quantization->weight, gm::dtype::int4);
  EXPECT_EQ(awq.quantization->group_size, 128);
  EXPECT_TRUE(awq.quantization->zero_points);
  EXPECT_EQ(awq.quantization->scale_bytes, 2);

  const auto gptq = parse(std::string(tiny_llama) +
                          R"(, "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 64,
                               "sym": true, "desc_act": true}})");
  EXPECT_FALSE(gptq.quantization->zero_points);
  EXPECT_TRUE(gptq.quantization->act_order);
  EXPECT_EQ(gptq.quantization->group_size, 64);

  const auto old_awq = parse(std::string(tiny_llama) +
                             R"(, "quantization_config": {"quant_method": "awq", "w_bit": 4, "q_group_size": 64}})");
  EXPECT_EQ(old_awq.quantization->group_size, 64);
  const auto channel = parse(std::string(tiny_llama) +
                             R"(, "quantization_config": {"quant_method": "gptq", "bits": 8, "group_size": -1}})");
  EXPECT_EQ(channel.quantization->weight, gm::dtype::int8);
  EXPECT_EQ(channel.quantization->granularity, gm::scale_granularity::channel);

  const auto ct = parse(std::string(tiny_llama) +
                        R"(, "quantization_config": {"quant_method": "compressed-tensors", "config_groups":
                             {"group_0": {"weights": {"num_bits": 8, "type": "float", "strategy": "channel",
                              "symmetric": true}}}}})");
  EXPECT_EQ(ct.quantization->weight, gm::dtype::fp8_e4m3);
  EXPECT_EQ(ct.quantization->granularity, gm::scale_granularity::channel);
  EXPECT_EQ(ct.quantization->scale_bytes, 2);  // float16 model: scales in the model dtype
}

TEST(hf_config, errors_name_the_field) {
  expect_input_error([] { parse("{not json"); }, {"test.json", "not valid JSON"});
  expect_input_error([] { parse("[1, 2]"); }, {"JSON object"});
  expect_input_error([] { parse(R"({"model_type": "gpt2", "hidden_size": 8})"); },
                     {"model_type", "gpt2", "not supported", "closest", "a config.json of a supported family works"});
  expect_input_error([] { parse(R"({"hidden_size": 8})"); }, {"model_type", "missing"});
  expect_input_error([] { parse(R"({"model_type": "llama", "num_hidden_layers": 2})"); }, {"'hidden_size'", "missing"});
  expect_input_error(
      [] {
        parse(R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": "two",
                  "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 2048})");
      },
      {"'num_hidden_layers'", "positive integer", "\"two\""});
  expect_input_error(
      [] {
        parse(R"({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "vocab_size": -5, "max_position_embeddings": 2048})");
      },
      {"'vocab_size'", "-5"});
  expect_input_error([] { parse(std::string(tiny_llama) + R"(, "quantization_config": {"quant_method": "bitsandbytes"}})"); },
                     {"quantization_config", "'quant_method'", "bitsandbytes", "awq"});
  expect_input_error([] { parse(std::string(tiny_llama) + R"(, "torch_dtype": "int3"})"); }, {"torch_dtype", "int3"});
  expect_input_error([] { parse(std::string(tiny_llama) + R"(, "quantization_config": {"quant_method": "gptq", "group_size": "128"}})"); },
                     {"'group_size'", "\"128\""});
  expect_input_error([] { parse(std::string(tiny_llama) + R"(, "quantization_config": {"quant_method": "awq", "bits": 3}})"); },
                     {"'bits'", "allowed: 4, 8"});
  expect_input_error([] { parse(std::string(tiny_llama) + R"(, "layer_types": ["full_attention"]})"); },
                     {"'layer_types'", "one type per layer"});
  expect_input_error(
      [] {
        parse(R"({"model_type": "mixtral", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
                  "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 2048,
                  "num_local_experts": 2, "num_experts_per_tok": 4})");
      },
      {"'num_experts_per_tok'"});
}

}  // namespace
