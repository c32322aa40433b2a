// `--model DIR`: a local checkpoint folder's safetensors headers (or its
// index) reported beside the bytes counted from its config.json. The shards
// are written here, header and zero-filled data, with the tensor names and
// shapes a Llama checkpoint has; the expected bytes are worked out below.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "cli_runner.hpp"
#include "gpucal/model/safetensors.hpp"

namespace fs = std::filesystem;
using gpucal::test::run_gpucal;
using json = nlohmann::json;

namespace {

struct tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::string dtype = "BF16";
};

std::int64_t bytes_of(const tensor& t) {
  std::int64_t n = t.dtype == "BF16" ? 2 : t.dtype == "F32" ? 4 : 1;
  for (auto d : t.shape) n *= d;
  return n;
}

// A safetensors file: 8-byte little-endian header length, JSON header, data.
void write_shard(const fs::path& p, const std::vector<tensor>& ts, std::int64_t extra_data_bytes = 0) {
  json h = {{"__metadata__", {{"format", "pt"}}}};
  std::int64_t off = 0;
  for (const auto& t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + bytes_of(t)}}};
    off += bytes_of(t);
  }
  const std::string text = h.dump();
  std::ofstream f(p, std::ios::binary);
  std::uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((len >> (8 * i)) & 0xff));
  f << text << std::string(static_cast<std::size_t>(off + extra_data_bytes), '\0');
}

// A Llama with hidden 64, intermediate 128, 4 heads of 16 (2 KV heads), 2 layers, vocab 256.
const json tiny_llama = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 64},
                         {"intermediate_size", 128}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                         {"num_key_value_heads", 2}, {"vocab_size", 256}, {"max_position_embeddings", 4096},
                         {"rms_norm_eps", 1e-5}, {"torch_dtype", "bfloat16"}, {"tie_word_embeddings", false}};

std::vector<tensor> tiny_llama_tensors() {
  std::vector<tensor> ts{{"model.embed_tokens.weight", {256, 64}}};
  for (int l = 0; l < 2; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (auto [n, shape] : std::vector<std::pair<std::string, std::vector<std::int64_t>>>{
             {"self_attn.q_proj.weight", {64, 64}}, {"self_attn.k_proj.weight", {32, 64}}, {"self_attn.v_proj.weight", {32, 64}},
             {"self_attn.o_proj.weight", {64, 64}}, {"mlp.gate_proj.weight", {128, 64}}, {"mlp.up_proj.weight", {128, 64}},
             {"mlp.down_proj.weight", {64, 128}}, {"input_layernorm.weight", {64}}, {"post_attention_layernorm.weight", {64}}})
      ts.push_back({p + n, shape});
  }
  ts.push_back({"model.norm.weight", {64}});
  ts.push_back({"lm_head.weight", {256, 64}});
  return ts;
}

class checkpoint_folder : public gpucal::test::scratch_test {
protected:
  checkpoint_folder() : scratch_test("gpucal_ckpt_") {}
  void SetUp() override {
    scratch_test::SetUp();
    write("config.json", tiny_llama.dump());
  }
  void two_shards() {
    const auto ts = tiny_llama_tensors();
    write_shard(dir_ / "model-00001-of-00002.safetensors", {ts.begin(), ts.begin() + 10});
    write_shard(dir_ / "model-00002-of-00002.safetensors", {ts.begin() + 10, ts.end()});
  }
};

TEST_F(checkpoint_folder, HeadersGiveTheBytesByRoleBesideTheCountedOnes) {
  two_shards();
  // By hand, bf16: embedding and lm_head 256 x 64 x 2 = 32,768 each; attention
  // 2 layers x (64x64 + 32x64 + 32x64 + 64x64) x 2 = 49,152; mlp 2 x 3 x 64 x 128
  // x 2 = 98,304; norms (2 x 2 + 1) x 64 x 2 = 640; total 213,632.
  const auto r = run_gpucal({"estimate", "--model", dir_.string(), "--gpu", "h100", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  const json& d = j.at("checkpoint_on_disk");
  EXPECT_EQ(d.at("bytes"), 213632);
  EXPECT_EQ(d.at("files"), 2);
  EXPECT_EQ(d.at("tensors"), 21);
  EXPECT_EQ(d.at("source"), "safetensors headers");
  const json by_role = {{"attention", 49152}, {"embedding", 32768}, {"lm_head", 32768}, {"mlp", 98304}, {"norms", 640}};
  EXPECT_EQ(d.at("by_role"), by_role);
  EXPECT_EQ(d.at("counted_by_role"), by_role);
  EXPECT_EQ(j.at("checkpoint_bytes"), 213632);

  const auto text = run_gpucal({"estimate", "--model", dir_.string(), "--gpu", "h100"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("Checkpoint on disk: 2 file(s), 21 tensors, from the safetensors headers"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("213,632"), std::string::npos);
}

TEST_F(checkpoint_folder, AnIndexAloneGivesItsTotal) {
  write("model.safetensors.index.json",
        json{{"metadata", {{"total_size", 213632}}}, {"weight_map", {{"lm_head.weight", "model-00002-of-00002.safetensors"}}}}.dump());
  const auto r = run_gpucal({"estimate", "--model", dir_.string(), "--gpu", "h100", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  const json& d = j.at("checkpoint_on_disk");
  EXPECT_EQ(d.at("bytes"), 213632);
  EXPECT_EQ(d.at("files"), 0);
  EXPECT_EQ(d.at("source"), "model.safetensors.index.json total_size");
  EXPECT_TRUE(d.at("by_role").empty());
}

TEST_F(checkpoint_folder, ARealIndexTotalMatchesTheCountedBytes) {
  // WizardLM-2-8x22B (Mixtral 8x22B shapes), config.json and
  // model.safetensors.index.json as published in github.com/tbressers/WizardLM-2-8x22B
  // (commit 714c46d): metadata.total_size 281,241,268,224 bytes.
  write("config.json", R"({"architectures":["MixtralForCausalLM"],"hidden_act":"silu","hidden_size":6144,
    "intermediate_size":16384,"max_position_embeddings":65536,"model_type":"mixtral","num_attention_heads":48,
    "num_experts_per_tok":2,"num_hidden_layers":56,"num_key_value_heads":8,"num_local_experts":8,"rms_norm_eps":1e-05,
    "rope_theta":1000000,"sliding_window":null,"tie_word_embeddings":false,"torch_dtype":"bfloat16","vocab_size":32000})");
  write("model.safetensors.index.json", R"({"metadata":{"total_size":281241268224},"weight_map":{}})");
  const auto r = run_gpucal({"estimate", "--model", dir_.string(), "--gpu", "h200", "--tp", "4", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("checkpoint_on_disk").at("bytes"), 281241268224);
  EXPECT_EQ(j.at("checkpoint_bytes"), 281241268224);
}

TEST_F(checkpoint_folder, AConfigFileGivenDirectlyAlsoReadsItsFolder) {
  two_shards();
  const auto r = run_gpucal({"estimate", "--model", (dir_ / "config.json").string(), "--gpu", "h100", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("checkpoint_on_disk").at("bytes"), 213632);
}

TEST_F(checkpoint_folder, BadHeadersAreRefusedNamingTheFile) {
  const fs::path shard = dir_ / "model.safetensors";
  const auto refused = [&](const std::string& needle) {
    const auto r = gpucal::test::expect_refused({"estimate", "--model", dir_.string(), "--gpu", "h100"}, needle);
    EXPECT_NE(r.err.find(shard.string()), std::string::npos) << r.err;
  };
  std::ofstream(shard, std::ios::binary) << "abc";
  refused("not a safetensors file");
  {  // a length longer than the file
    std::ofstream f(shard, std::ios::binary);
    const char len[8] = {static_cast<char>(0xff), 0x7f, 0, 0, 0, 0, 0, 0};
    f.write(len, 8);
    f << "{}";
  }
  refused("header claims 32767 bytes, the file holds 2");
  {  // a header that is not JSON
    std::ofstream f(shard, std::ios::binary);
    const char len[8] = {4, 0, 0, 0, 0, 0, 0, 0};
    f.write(len, 8);
    f << "{not";
  }
  refused("safetensors header");
  // A byte range that is not dtype x shape bytes.
  write_shard(shard, {{"lm_head.weight", {256, 64}, "BF16"}});
  {
    std::ifstream in(shard, std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(in)), {});
    const auto at = all.find("[256,64]");
    ASSERT_NE(at, std::string::npos);
    all.replace(at, 8, "[256,65]");
    std::ofstream(shard, std::ios::binary) << all;
  }
  refused("data_offsets");
  // A byte range past the data.
  write_shard(shard, {{"lm_head.weight", {256, 64}, "BF16"}}, 0);
  fs::resize_file(shard, fs::file_size(shard) - 1);
  refused("not a byte range within the file");
}

TEST_F(checkpoint_folder, AFolderWithoutConfigIsRefused) {
  fs::remove(dir_ / "config.json");
  gpucal::test::expect_bad_input({{{"estimate", "--model", dir_.string(), "--gpu", "h100"}, "has no config.json"}});
}

TEST(tensor_roles, CheckpointNamesMapToTheModelsRoles) {
  using gpucal::model::tensor_role_of;
  EXPECT_EQ(tensor_role_of("model.layers.61.eh_proj.weight", 61), "mtp");  // DeepSeek-V3's MTP layer
  EXPECT_EQ(tensor_role_of("model.layers.60.self_attn.kv_a_proj_with_mqa.weight", 61), "attention");
  EXPECT_EQ(tensor_role_of("model.layers.3.mlp.experts.17.down_proj.weight_scale_inv", 61), "experts");
  EXPECT_EQ(tensor_role_of("model.layers.3.mlp.shared_experts.up_proj.weight", 61), "shared_experts");
  EXPECT_EQ(tensor_role_of("model.layers.3.mlp.gate.weight", 61), "router");
  EXPECT_EQ(tensor_role_of("model.layers.3.mlp.gate.e_score_correction_bias", 61), "router");
  EXPECT_EQ(tensor_role_of("model.layers.0.self_attn.q_proj.bias"), "biases");
  EXPECT_EQ(tensor_role_of("model.layers.0.linear_attn.in_proj_qkvz.weight"), "linear_attention");
  EXPECT_EQ(tensor_role_of("mtp.layers.0.mlp.experts.0.gate_proj.weight"), "mtp");
  EXPECT_EQ(tensor_role_of("backbone.layers.0.mixer.A_log"), "mamba");
  EXPECT_EQ(tensor_role_of("backbone.layers.0.mixer.in_proj.weight"), "mamba");
  EXPECT_EQ(tensor_role_of("backbone.layers.5.mixer.q_proj.weight"), "attention");
  EXPECT_EQ(tensor_role_of("backbone.layers.1.mixer.up_proj.weight"), "mlp");
  EXPECT_EQ(tensor_role_of("model.layers.2.self_attn.indexer.wk.weight"), "indexer");
  EXPECT_EQ(tensor_role_of("model.visual.blocks.0.attn.qkv.weight"), "vision");
  EXPECT_EQ(tensor_role_of("model.embed_tokens.weight"), "embedding");
  EXPECT_EQ(tensor_role_of("lm_head.weight"), "lm_head");
}

}  // namespace
