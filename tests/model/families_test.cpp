// The model families of 2025-26 checkpoints: parameter counts and
// checkpoint bytes against the totals their publishers give (each cited),
// layer kinds read from each config, KV and recurrent-state bytes worked
// out by hand from the config values and vLLM 0.33's cache rules, and the
// errors a malformed config of each family gets.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/kv_cache.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/tensor_inventory.hpp"
#include "gpucal/model/throughput_model.hpp"
#include "test_support.hpp"

namespace gm = gpucal::model;

namespace {

std::string data(const std::string& file) { return std::string(GPUCAL_TEST_DATA_DIR) + "/configs/" + file; }

struct counts {
  std::int64_t loaded, stored, active;
};

counts params_of(const std::string& name) {
  const auto inv = gm::build_inventory(gm::resolve_model(name), 1);
  return {inv.total_params(), inv.checkpoint_params(), inv.active_params()};
}

std::int64_t checkpoint_bytes(const std::string& name) { return gm::checkpoint_bytes(gm::resolve_model(name)); }

std::int64_t layers_with(const gm::model_spec& m, std::string_view mixer) {
  std::int64_t n = 0;
  for (const auto& l : m.layers) n += l.mixer_name() == mixer ? 1 : 0;
  return n;
}

void expect_within(std::int64_t got, double published, double rel, const char* what) {
  EXPECT_LE(std::abs(static_cast<double>(got) - published), rel * published)
      << what << ": " << got << " vs published " << published;
}

// Published totals: "HF" = the Hugging Face API's safetensors.total as
// recorded in AlexsJones/llmfit @a3e0eb2 llmfit-core/data/hf_models.json
// (field parameters_raw) unless another source is named.

TEST(families, qwen3_5_hybrid_gated_deltanet) {
  // Qwen/Qwen3.5-397B-A17B: HF 403,397,928,944, a header audit splitting it into text
  // 396,346,350,336 + vision 456,010,480 + MTP 6,595,568,128; index total_size 806,795,875,168 B.
  const counts c = params_of("qwen3.5-397b-a17b");
  EXPECT_EQ(c.stored, 403'397'928'944);
  EXPECT_EQ(c.loaded, 396'346'350'336 + 456'010'480);  // vLLM loads text and vision, not the MTP layer
  EXPECT_EQ(checkpoint_bytes("qwen3.5-397b-a17b"), 806'795'875'168);  // A_log and the gated norms in fp32
  expect_within(c.active, 17e9, 0.03, "active");  // "397B total / 17B active" (model name)
  EXPECT_EQ(params_of("qwen3.5-122b-a10b").stored, 125'086'497'008);  // HF
  EXPECT_EQ(params_of("qwen3.5-35b-a3b").stored, 35'951'822'704);     // HF
  EXPECT_EQ(params_of("qwen3.5-27b").stored, 27'781'427'952);         // HF
  EXPECT_EQ(params_of("qwen3.6-27b-nvfp4").stored, 27'781'427'952);   // Qwen/Qwen3.6-27B, HF: the same architecture
  // Layer kinds: 15 x (3 Gated DeltaNet + 1 gated full attention).
  const auto m = gm::resolve_model("qwen3.5-397b-a17b");
  EXPECT_EQ(layers_with(m, "gated_deltanet"), 45);
  EXPECT_EQ(layers_with(m, "attention"), 15);
  EXPECT_TRUE(m.layers[3].attention.output_gate);
  EXPECT_EQ(m.mtp_layers.size(), 1u);
}

TEST(families, qwen3_5_state_and_hybrid_blocks_by_hand) {
  // Qwen3.5-397B-A17B at tp 8, bf16: full attention keeps max(1, 2 / 8) = 1 KV head of 256
  // for K and V: 1 x (256 + 256) x 2 B = 1024 B per token. Gated DeltaNet: conv state
  // (4 - 1) x (2 x 16 x 128 + 64 x 128) / 8 x 2 B = 3 x 1536 x 2 = 9216 B; recurrent
  // state 64 / 8 x 128 x 128 x 4 B (mamba_ssm_dtype float32) = 524,288 B.
  gm::kv_cache_options o;
  o.tp = 8;
  const auto caches = gm::layer_caches(gm::resolve_model("qwen3.5-397b-a17b"), o);
  ASSERT_EQ(caches.size(), 60u);
  EXPECT_EQ(caches[3].bytes_per_token, 1024);
  EXPECT_EQ(caches[0].conv_state_bytes, 9216);
  EXPECT_EQ(caches[0].state_bytes, 9216 + 524'288);
  // vLLM 0.33 (prefix caching on for hybrids, FlashInfer GDN on Hopper: checkpoints
  // aligned to 64 tokens): block = 64 x cdiv(533,504, 64 x 1024) = 576; the state page
  // is padded to 576 x 1024 = 589,824 B. Groups: 45 GDN layers in 3 groups of 15, one
  // attention group of 15; a block id covers 15 layers.
  gm::kv_cache_rules v033;
  v033.in_flight_batches = 2;
  v033.state_prefix_caching = true;
  const auto p = gm::plan_kv_cache(caches, v033, 262'144, 8192);
  EXPECT_EQ(p.block_size, 576);
  EXPECT_EQ(p.state_padded_bytes, 589'824);
  EXPECT_EQ(p.bytes_per_block, 15 * 589'824);
  EXPECT_EQ(p.groups.size(), 4u);
  // A request: cdiv(262,144, 576) = 456 attention blocks + 3 state groups x (2 + 1 checkpoint) blocks.
  EXPECT_EQ(p.blocks_per_request, 456 + 9);
  // Without the checkpoint alignment (vLLM 0.11's rules): 16 x cdiv(533,504, 16 x 1024) = 528, one state block.
  const auto old = gm::plan_kv_cache(caches, gm::kv_cache_rules{}, 262'144, 8192);
  EXPECT_EQ(old.block_size, 528);
  EXPECT_EQ(old.bytes_per_block, 15 * 528 * 1024);
  EXPECT_EQ(old.blocks_per_request, (262'144 + 527) / 528 + 3);
}

TEST(families, nvfp4_checkpoint_bytes_match_the_published_index) {
  // nvidia/Qwen3.5-122B-A10B-NVFP4: 83,474,870,752 B of safetensors (HF per-dtype counts
  // BF16 9,122,380,016 + F8_E4M3 7,247,757,312 + U8 57,982,058,496 elements, plus fp32
  // scalars), GitHub file ids 66550113221 / 66477710092 (checked 2026-09-08). Only the
  // routed experts are NVFP4; the exclude list keeps layer 0's experts NVFP4 too (its
  // 'mtp.layers.0*' entry names the MTP layer, not decoder layer 0). NVIDIA's export keeps
  // A_log and the gated norms in bf16 where Qwen's release, which gpucal follows, has fp32:
  // 36 layers x (64 + 128) x 2 B = 13,824 B more here.
  EXPECT_EQ(checkpoint_bytes(data("nvidia--Qwen3.5-122B-A10B-NVFP4_config.json")), 83'474'870'752 + 13'824);
  // openai/gpt-oss-120b and -20b: index total_size 65,248,815,744 B and 13,761,264,768 B
  // (MXFP4 experts, bf16 elsewhere; GitHub file id 31112482743 vendors the 20b index).
  EXPECT_EQ(checkpoint_bytes("gpt-oss-120b"), 65'248'815'744);
  EXPECT_EQ(checkpoint_bytes("gpt-oss-20b"), 13'761'264'768);
  EXPECT_EQ(params_of("gpt-oss-120b").stored, 116'829'156'672);  // HF API 2026-09-25
  EXPECT_EQ(params_of("gpt-oss-20b").stored, 20'914'757'184);
  // mistralai/Mixtral-8x22B-v0.1: tensor payload 281,241,268,224 B (GitHub file id 56218868576).
  EXPECT_EQ(checkpoint_bytes(data("mistralai--Mixtral-8x22B-v0.1_config.json")), 281'241'268'224);
  // Qwen/Qwen3-235B-A22B index total_size 470,187,269,120; Qwen/Qwen3-VL-8B-Instruct 17,534,247,392.
  EXPECT_EQ(checkpoint_bytes("qwen3-235b-a22b"), 470'187'269'120);
  EXPECT_EQ(checkpoint_bytes("qwen3-vl-8b-instruct"), 17'534'247'392);
}

TEST(families, nemotron_h_mamba2_hybrid) {
  // nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16: HF 31,577,937,344; gpucal also counts the
  // 23 x 128 routing-bias buffers the checkpoint stores (2,944 more).
  expect_within(params_of("nemotron-3-nano-30b-a3b").stored, 31'577'937'344, 1e-6, "Nano");
  // nvidia/NVIDIA-Nemotron-3-Super-120B-A12B-FP8: HF 123,611,012,096 (MTP block included).
  expect_within(params_of("nemotron-3-super-120b-a12b-fp8").stored, 123'611'012'096, 1e-6, "Super");
  const auto nano = gm::resolve_model("nemotron-3-nano-30b-a3b");
  EXPECT_EQ(layers_with(nano, "mamba2"), 23);
  EXPECT_EQ(layers_with(nano, "attention"), 6);
  EXPECT_EQ(nano.num_moe_layers(), 23);
  // Mamba-2 state at tp 1: conv (4 - 1) x (64 x 64 + 2 x 8 x 128) x 2 B = 36,864 B;
  // SSM 64 heads x 64 x 128 x 4 B (mamba_ssm_cache_dtype float32) = 2,097,152 B.
  const auto caches = gm::layer_caches(nano, {});
  const auto& mamba = caches.front();
  EXPECT_EQ(mamba.conv_state_bytes, 36'864);
  EXPECT_EQ(mamba.state_bytes, 36'864 + 2'097'152);
  // Attention 2 x 2 KV heads x 128 x 2 B = 1024 B per token; block = 16 x cdiv(2,134,016,
  // 16 x 1024) = 2096 tokens; groups of min(6, 23) = 6 layers: 1 attention + 4 Mamba groups.
  const auto p = gm::plan_kv_cache(caches, gm::kv_cache_rules{}, 262'144, 8192);
  EXPECT_EQ(p.block_size, 2096);
  EXPECT_EQ(p.bytes_per_block, 6 * 2096 * 1024);
  EXPECT_EQ(p.groups.size(), 5u);
  EXPECT_EQ(p.blocks_per_request, (262'144 + 2095) / 2096 + 4);
  // Nemotron-H-56B: the config holds a Python Infinity (time_step_limit), read as null.
  const auto h56 = gm::resolve_model(data("nvidia--Nemotron-H-56B-Base-8K_config.json"));
  EXPECT_EQ(layers_with(h56, "mamba2"), 54);
  EXPECT_EQ(layers_with(h56, "attention"), 10);
}

TEST(families, mla_and_dsa_flagships) {
  // DeepSeek-V3.2: 685,355,329,792 (third-party table, GitHub file id 69468411049) and HF
  // 685,396,921,376 with the fp32 scales counted; every layer carries a lightning indexer.
  EXPECT_EQ(params_of("deepseek-v3.2").stored, 685'355'329'792);
  expect_within(params_of("deepseek-v3.2").stored, 685'396'921'376, 1e-3, "DeepSeek-V3.2 HF");
  // zai-org/GLM-5: HF 753,864,139,008 (its MTP layer shares embedding and head).
  EXPECT_EQ(params_of("glm-5").stored, 753'864'139'008);
  // moonshotai/Kimi-K2-Instruct: HF API 2026-09-25 1,026,408,235,864 (routing biases aside).
  expect_within(params_of("kimi-k2-instruct").stored, 1'026'408'235'864, 1e-6, "Kimi-K2");
  // Kimi-K2.5: NVIDIA's card "Active parameters 32.86B" (text).
  expect_within(params_of("kimi-k2.5").active, 32.86e9, 1e-3, "Kimi-K2.5 active");
  // GLM-5.2 keeps an indexer on layers 0, 1, 2, 6, 10, ..., 74 (index_topk_freq 4 after offset 3).
  const auto glm52 = gm::resolve_model("glm-5.2");
  std::int64_t own = 0;
  for (const auto& l : glm52.layers) own += l.mla.indexer && !l.mla.shared_indexer ? 1 : 0;
  EXPECT_EQ(own, 21);
  // KV per token and layer at tp 8: MLA (512 + 64) x 2 B = 1152 (bf16), 656 B fp8_ds_mla on
  // Hopper; the indexer 128 fp8 + 4 B scale = 132 B; both replicated on every rank.
  gm::kv_cache_options o;
  o.tp = 8;
  const auto v32 = gm::layer_caches(gm::resolve_model("deepseek-v3.2"), o);
  ASSERT_EQ(v32.size(), 122u);
  EXPECT_EQ(v32[0].bytes_per_token, 1152);
  EXPECT_EQ(v32[1].bytes_per_token, 132);
  o.kv_dtype = gm::dtype::fp8_e4m3;
  EXPECT_EQ(gm::layer_caches(gm::resolve_model("deepseek-v3.2"), o)[0].bytes_per_token, 656);
  // One uniform-type group at block 64: a block holds 61 x 64 x (1152 + 132) B.
  o.kv_dtype = gm::dtype::bfloat16;
  gm::kv_cache_rules r;
  r.block_size = 64;
  EXPECT_EQ(gm::plan_kv_cache(v32, r, 163'840, 8192).bytes_per_block, 61 * 64 * (1152 + 132));
}

TEST(families, deepseek_v4_compressed_attention) {
  // DeepSeek-V4-Flash: 290,944,616,402 in a third-party table (GitHub file id 69468411049);
  // the card says "284B total / 13B active" for the model without its MTP layer.
  expect_within(params_of("deepseek-v4-flash").stored, 290'944'616'402, 1e-4, "V4-Flash");
  expect_within(params_of("deepseek-v4-flash").loaded, 284e9, 2e-3, "V4-Flash text");
  const auto m = gm::resolve_model("deepseek-v4-flash");
  EXPECT_EQ(layers_with(m, "swa_mla"), 2);  // compress_ratios 0, 0, then 4 / 128 alternating
  EXPECT_EQ(layers_with(m, "csa"), 21);
  EXPECT_EQ(layers_with(m, "hca"), 20);
  // Experts in fp4 (expert_dtype), the rest block fp8 with ue8m0 scales.
  ASSERT_TRUE(m.quantization.has_value());
  EXPECT_EQ(m.quantization->format_for("layers.5.ffn.experts.*.w1").name, "mxfp4");
  EXPECT_EQ(*m.quantization->format_for("layers.5.attn.wq_b").weight, gm::dtype::fp8_e4m3);
  // The NVFP4 variant: NVFP4 experts over the same fp8 base.
  const auto nv = gm::resolve_model(data("nvidia--DeepSeek-V4-Flash-NVFP4_config.json"));
  EXPECT_EQ(nv.quantization->format_for("layers.5.ffn.experts.*.w1").name, "nvfp4");
  EXPECT_EQ(*nv.quantization->format_for("layers.5.attn.wq_b").weight, gm::dtype::fp8_e4m3);
  // A copy answers from its own rules once the original is gone (the lookup
  // cache points into the object that filled it; the sanitizer pass checks).
  std::optional<gm::quant_spec> copy;
  {
    const gm::quant_spec original = *nv.quantization;
    (void)original.format_for("layers.5.ffn.experts.*.w1");  // fills its cache
    copy = original;
  }
  EXPECT_EQ(copy->format_for("layers.5.ffn.experts.*.w1").name, "nvfp4");
  EXPECT_EQ(*copy->format_for("layers.5.attn.wq_b").weight, gm::dtype::fp8_e4m3);
}

TEST(families, gpt_oss_sinks_windows_and_mxfp4) {
  const auto m = gm::resolve_model("gpt-oss-120b");
  EXPECT_EQ(layers_with(m, "sliding_attention"), 18);
  EXPECT_EQ(layers_with(m, "attention"), 18);
  EXPECT_TRUE(m.layers[0].attention.sinks);
  // 2 x 8 KV heads x 64 x 2 B = 2048 B per token and layer; two groups of 18 layers with
  // equal pages; at max_model_len 131,072 and two batches of 8192 tokens in flight a request
  // holds 8192 full blocks + cdiv(127 + 16,384, 16) + 1 = 1033 sliding blocks.
  const auto caches = gm::layer_caches(m, {});
  EXPECT_EQ(caches[0].bytes_per_token, 2048);
  gm::kv_cache_rules r;
  r.in_flight_batches = 2;
  const auto p = gm::plan_kv_cache(caches, r, 131'072, 8192);
  EXPECT_EQ(p.bytes_per_block, 18 * 16 * 2048);
  EXPECT_EQ(p.blocks_per_request, 8192 + 1033);
}

TEST(families, llama4_chunked_attention_and_vision) {
  // meta-llama/Llama-4-Scout-17B-16E-Instruct HF 108,641,793,536 ("109B total"); Maverick
  // HF 401,583,781,376; both with their vision tower.
  EXPECT_EQ(params_of("llama-4-scout").stored, 108'641'793'536);
  EXPECT_EQ(params_of("llama-4-maverick").stored, 401'583'781'376);
  const auto scout = gm::resolve_model("llama-4-scout");
  EXPECT_EQ(layers_with(scout, "chunked_attention"), 36);  // RoPE layers, chunks of 8192
  EXPECT_EQ(layers_with(scout, "attention"), 12);          // every 4th (NoPE) layer is global
  EXPECT_EQ(scout.num_moe_layers(), 48);
  EXPECT_EQ(gm::resolve_model("llama-4-maverick").num_moe_layers(), 24);  // interleave_moe_layer_step 2
}

TEST(families, gemma_multimodal_and_defaults) {
  // google/gemma-3-4b-it HF 4,300,079,472: its text_config omits the head counts and the
  // vocabulary, which Gemma3TextConfig fills (8 heads, 4 KV heads, head_dim 256, vocab 262,208).
  EXPECT_EQ(params_of("gemma-3-4b-it").stored, 4'300'079'472);
  const auto g = gm::resolve_model("gemma-3-4b-it");
  EXPECT_EQ(g.layers[0].attention.num_heads, 8);
  EXPECT_EQ(g.layers[0].attention.num_kv_heads, 4);
  EXPECT_EQ(g.vocab_size, 262'208);
  EXPECT_FALSE(g.vision.empty());  // SigLIP tower and projector
  EXPECT_EQ(params_of("gemma-3-27b-it").stored, 27'432'406'640);  // HF
  EXPECT_EQ(params_of("gemma-7b").stored, 8'537'680'896);         // KerasHub gemma_7b_en preset
  // Gemma 4: global layers use head_dim 512 and, with attention_k_eq_v, 2 KV heads and no v_proj.
  const auto g4 = gm::resolve_model("gemma-4-26b-a4b");
  EXPECT_EQ(layers_with(g4, "attention"), 5);
  EXPECT_EQ(g4.layers[5].attention.head_dim, 512);
  EXPECT_EQ(g4.layers[5].attention.num_kv_heads, 2);
  EXPECT_TRUE(g4.layers[5].attention.k_eq_v);
  EXPECT_TRUE(g4.layers[0].moe.has_value() && g4.layers[0].mlp.has_value());  // MoE beside the dense MLP
}

TEST(families, other_current_checkpoints) {
  EXPECT_EQ(params_of("minimax-m2.7").stored, 228'689'764'864);                      // HF API 2026-09-25
  EXPECT_EQ(params_of("llama-3.3-nemotron-super-49b").stored, 49'867'145'216);      // HF
  EXPECT_EQ(params_of("mistral-small-3.1-24b-instruct").stored, 24'011'361'280);    // KerasHub preset (with Pixtral)
  EXPECT_EQ(params_of("phi-2").stored, 2'779'683'840);                              // HF; index total_size 5,559,367,680 (fp16)
  EXPECT_EQ(checkpoint_bytes("phi-2"), 5'559'367'680);
  EXPECT_EQ(params_of("granite-3.3-8b-instruct").stored, 8'170'864'640);            // HF
  EXPECT_EQ(params_of("qwen3-vl-235b-a22b-instruct").stored, 235'670'022'896);      // HF
  EXPECT_EQ(params_of(data("Qwen--Qwen3-VL-2B-Instruct_config.json")).stored, 2'127'532'032);  // HF, tied
  EXPECT_EQ(params_of(data("XiaomiMiMo--MiMo-7B-Base_config.json")).stored, 7'833'409'536);    // HF, MTP included
  expect_within(params_of("mimo-v2-flash").stored, 309'785'318'400, 1e-3, "MiMo-V2-Flash");   // HF
  expect_within(params_of("step-3.7-flash").loaded, 196e9, 1e-3, "Step-3.7 text");  // card "196B language parameters"
  EXPECT_EQ(params_of(data("google--gemma-2b_config.json")).stored, 2'506'172'416);  // KerasHub gemma_2b_en
  // MiMo-V2-Flash: sliding layers 8 KV heads x (192 + 128), full layers 4 x (192 + 128), bf16.
  const auto mimo = gm::layer_caches(gm::resolve_model("mimo-v2-flash"), {});
  EXPECT_EQ(mimo[1].bytes_per_token, 8 * 320 * 2);
  EXPECT_EQ(mimo[0].bytes_per_token, 4 * 320 * 2);
  // Kimi K3 at tp 8: KDA conv (4 - 1) x (96 x 128 x 3) / 8 x 2 B = 27,648 B, recurrent
  // 96 / 8 x 128 x 128 x 4 B = 786,432 B; MLA (512 + 64) x 2 B per token.
  gm::kv_cache_options o;
  o.tp = 8;
  const auto k3 = gm::resolve_model("kimi-k3");
  EXPECT_EQ(layers_with(k3, "kda"), 69);
  EXPECT_EQ(layers_with(k3, "mla"), 24);
  const auto kc = gm::layer_caches(k3, o);
  EXPECT_EQ(kc[1].state_bytes, 27'648 + 786'432);
  EXPECT_EQ(kc[3].bytes_per_token, 1152);
  // The MLA hybrid aligns attention blocks to 128: 128 x cdiv(814,080, 128 x 1152) = 768.
  EXPECT_EQ(gm::plan_kv_cache(kc, gm::kv_cache_rules{}, 131'072, 8192).block_size, 768);
  // MiniMax-M3: sparse layers add a 128-wide bf16 index key (256 B) per token on every rank.
  const auto mm3 = gm::layer_caches(gm::resolve_model("minimax-m3"), o);
  std::int64_t index_layers = 0;
  for (const auto& c : mm3) index_layers += c.what == "indexer" && c.bytes_per_token == 256 ? 1 : 0;
  EXPECT_EQ(index_layers, 57);
}

TEST(families, modelopt_and_fp8_formats) {
  // A quantization_config without quant_method beside a ModelOpt FP8 file: the file decides.
  const auto static_fp8 = gm::resolve_model(data("Qwen--Qwen3-32B-FP8-Static-PerTensor_config.json"));
  ASSERT_TRUE(static_fp8.quantization.has_value());
  EXPECT_EQ(*static_fp8.quantization->weight, gm::dtype::fp8_e4m3);
  EXPECT_EQ(static_fp8.quantization->tensor_scale_bytes, 4);  // input_scale beside weight_scale
  // Only hf_quant_config.json: ModelOpt FP8 with lm_head excluded.
  const auto llama_fp8 = gm::resolve_model(data("nvidia--Llama-3.1-70B-Instruct-FP8_config.json"));
  ASSERT_TRUE(llama_fp8.quantization.has_value());
  EXPECT_EQ(llama_fp8.quantization->method, "modelopt");
  // Block fp8: 1 byte per weight + 4 bytes per 128 x 128 block; the MTP layer is stored.
  const std::int64_t r1 = checkpoint_bytes(data("deepseek-ai--DeepSeek-R1_config.json"));
  expect_within(r1, 688'586'727'753, 1e-3, "DeepSeek-R1 repo file bytes");  // dashboard artifact_bytes (commit 56d4cbbb)
}

TEST(families, bad_configs_name_the_field) {
  const auto parse = [](const std::string& json) { return gm::parse_hf_config(json, "t", "t.json"); };
  expect_input_error([&] { parse(R"({"model_type": "qwen4_next", "hidden_size": 8})"); },
                     {"model_type", "qwen4_next", "closest", "a config.json of a supported family works"});
  expect_input_error(
      [&] {
        parse(R"({"model_type": "nemotron_h", "hidden_size": 64, "vocab_size": 100, "max_position_embeddings": 64,
                  "hybrid_override_pattern": "M*X"})");
      },
      {"hybrid_override_pattern", "'X'", "M, *, -, E"});
  expect_input_error(
      [&] {
        parse(R"({"model_type": "qwen3_5_text", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "vocab_size": 100, "max_position_embeddings": 64, "intermediate_size": 128,
                  "layer_types": ["linear_attention"]})");
      },
      {"layer_types", "one type per layer"});
  expect_input_error(
      [&] {
        parse(R"({"model_type": "deepseek_v4", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "head_dim": 16, "q_lora_rank": 8, "o_lora_rank": 8, "o_groups": 2, "index_n_heads": 2,
                  "index_head_dim": 8, "index_topk": 4, "n_routed_experts": 4, "num_experts_per_tok": 2,
                  "moe_intermediate_size": 16, "vocab_size": 100, "max_position_embeddings": 64,
                  "compress_ratios": [0, 5, 0]})");
      },
      {"compress_ratios", "entry 1", "0, 4, 128"});
  expect_input_error(
      [&] {
        parse(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64,
                  "quantization_config": {"quant_method": "modelopt", "quant_algo": "W3A3"}})");
      },
      {"quant_algo", "W3A3", "NVFP4"});
  // More KV heads than heads, and KV heads that do not divide them.
  expect_input_error(
      [&] {
        parse(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "num_key_value_heads": 8, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64})");
      },
      {"num_key_value_heads", "exceeds"});
  expect_input_error(
      [&] {
        parse(R"({"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6,
                  "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64})");
      },
      {"num_key_value_heads", "does not divide"});
}

TEST(families, every_catalog_model_estimates_and_times) {
  // estimate and a decode step for every catalog model on an H200 at the smallest tp that fits.
  const auto& gpu = gm::resolve_gpu("h200");
  for (const auto& e : gm::list_models()) {
    SCOPED_TRACE(e.name);
    const auto m = gm::resolve_model(e.name);
    for (int tp : {1, 2, 4, 8}) {
      gm::estimate_options o;
      o.tp = tp;
      try {
        gm::validate_tp(m, tp);
      } catch (const gpucal::input_error&) {
        continue;
      }
      const auto est = gm::estimate_memory(m, gpu, gm::resolve_engine("vllm"), gm::default_coefficients(), o);
      EXPECT_GT(est.weights_bytes, 0);
      EXPECT_GE(est.kv_pool_bytes, 0);
      if (!est.fits) continue;
      EXPECT_GT(est.num_blocks, 0);
      EXPECT_GT(est.max_tokens, 0);
      // perf: a decode step and a prefill, finite and positive, with every operator accounted.
      const gm::throughput_model perf(m, gpu, est.settings, gm::default_coefficients().throughput, gm::resolve_engine("vllm"));
      const auto decode = perf.decode_step(16, 4096), prefill = perf.prefill(2048);
      EXPECT_TRUE(std::isfinite(decode.total_s) && decode.total_s > 0);
      EXPECT_TRUE(std::isfinite(prefill.total_s) && prefill.total_s > decode.total_s);
      double sum = 0;
      for (const auto& op : decode.ops) sum += op.time_s;
      EXPECT_DOUBLE_EQ(sum, decode.total_s);
      break;
    }
  }
}

}  // namespace

namespace {

const gm::op_time& op(const gm::step_time& s, const std::string& name) {
  for (const auto& o : s.ops)
    if (o.name == name) return o;
  throw std::runtime_error("no operator " + name);
}

gm::throughput_model perf_of(const char* model, const char* gpu, int tp) {
  const auto m = gm::resolve_model(model);
  gm::estimate_options o;
  o.tp = tp;
  const auto s = gm::resolve_settings(m, gm::resolve_gpu(gpu), gm::resolve_engine("vllm"), o, gm::resolve_gpu(gpu).memory_bytes);
  return gm::throughput_model(m, gm::resolve_gpu(gpu), s, gm::default_coefficients().throughput, gm::resolve_engine("vllm"));
}

TEST(families, linear_attention_decode_is_constant_in_context) {
  // Qwen3.5: a Gated DeltaNet layer reads and writes its recurrent state once per decoded
  // token, whatever the context; the 15 full-attention layers read the whole context.
  const auto p = perf_of("qwen3.5-397b-a17b", "b200", 8);
  const auto short_ctx = p.decode_step(32, 1'000), long_ctx = p.decode_step(32, 100'000);
  EXPECT_DOUBLE_EQ(op(short_ctx, "linear_attention").bytes, op(long_ctx, "linear_attention").bytes);
  EXPECT_NEAR(op(long_ctx, "attention").bytes / op(short_ctx, "attention").bytes, 100.0, 1e-9);
  // Per decoded token and layer the state moves twice (read, write): 32 x 45 x 2 x 533,504 B at tp 8.
  EXPECT_DOUBLE_EQ(op(short_ctx, "linear_attention").bytes, 32.0 * 45 * 2 * 533'504);
}

TEST(families, dsa_attends_to_its_top_k) {
  // DeepSeek-V3.2: MLA reads index_topk = 2048 latents per layer however long the context,
  // while the indexer scans 132 B per cached token.
  const auto p = perf_of("deepseek-v3.2", "h200", 8);
  const auto at = [&](double ctx) { return p.decode_step(8, ctx); };
  EXPECT_DOUBLE_EQ(op(at(10'000), "attention").bytes, op(at(100'000), "attention").bytes);
  EXPECT_DOUBLE_EQ(op(at(100'000), "attention").bytes, 8.0 * 2048 * 61 * 1152);
  EXPECT_DOUBLE_EQ(op(at(100'000), "indexer").bytes, 8.0 * 100'000 * 61 * 132);
}

}  // namespace
