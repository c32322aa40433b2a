// Vision towers and projectors of multimodal checkpoints, tensor by
// tensor from each wrapper's vision_config (transformers' defaults for
// omitted keys), with vLLM's sharding: attention qkv and MLP fc1 split by
// column, output projection and fc2 by row, norms, embeddings and biases of
// row-parallel layers replicated. vLLM loads these towers whenever it serves
// the multimodal architecture (unless --language-model-only).
#include <fmt/format.h>

#include "arch/family.hpp"

namespace gpucal::model::arch {

namespace {

struct tower {
  std::vector<extra_tensor>& out;
  std::string prefix;

  void add(const std::string& name, std::int64_t rows, std::int64_t cols, shard s, std::int64_t count = 1) {
    if (rows > 0 && cols > 0 && count > 0) out.push_back({prefix + name, tensor_role::vision, rows, cols, count, s, false});
  }
  // A linear layer [out, in] with an optional bias; column-parallel biases split with it, row-parallel ones stay whole.
  void linear(const std::string& name, std::int64_t out_f, std::int64_t in_f, shard s, bool bias, std::int64_t count = 1) {
    add(name + ".weight", out_f, in_f, s, count);
    if (bias) add(name + ".bias", out_f, 1, s == shard::column ? shard::column : shard::replicated, count);
  }
  void norm(const std::string& name, std::int64_t width, bool bias, std::int64_t count = 1) {
    add(name + ".weight", width, 1, shard::replicated, count);
    if (bias) add(name + ".bias", width, 1, shard::replicated, count);
  }
};

// A ViT block: two norms, fused qkv (or q, k, v), an output projection and a two-layer MLP (gated when `gated`).
void vit_blocks(tower& t, const std::string& p, std::int64_t n, std::int64_t w, std::int64_t inter, bool bias,
                bool norm_bias, bool gated = false, bool fused_qkv = true, std::int64_t qkv_width = 0) {
  const std::int64_t q = qkv_width > 0 ? qkv_width : w;
  t.norm(p + ".norm1", w, norm_bias, n);
  t.norm(p + ".norm2", w, norm_bias, n);
  if (fused_qkv) {
    t.linear(p + ".attn.qkv", 3 * q, w, shard::column, bias, n);
  } else {
    for (const char* x : {".attn.q_proj", ".attn.k_proj", ".attn.v_proj"}) t.linear(p + x, q, w, shard::column, bias, n);
  }
  t.linear(p + ".attn.proj", w, q, shard::row, bias, n);
  if (gated) t.linear(p + ".mlp.gate_proj", inter, w, shard::column, bias, n);
  t.linear(p + ".mlp.fc1", inter, w, shard::column, bias, n);
  t.linear(p + ".mlp.fc2", w, inter, shard::row, bias, n);
}

}  // namespace

// Qwen3-VL and Qwen3.5 vision (transformers Qwen3VLVisionConfig /
// Qwen3_5VisionConfig): Conv3d patch embedding, learned positions, ViT
// blocks, a patch merger to the text width, and deepstack mergers at the
// listed block indexes.
void qwen3_vision(const field_reader& vc, std::int64_t text_hidden, std::int64_t deepstack_default, model_spec& m) {
  tower t{m.vision, "model.visual."};
  const std::int64_t w = vc.dim_or("hidden_size", 1152, max_width), inter = vc.dim_or("intermediate_size", 4304, max_width);
  const std::int64_t depth = vc.dim_or("depth", 27, max_layers), patch = vc.dim_or("patch_size", 16, 1024);
  const std::int64_t temporal = vc.dim_or("temporal_patch_size", 2, 64), channels = vc.dim_or("in_channels", 3, 64);
  const std::int64_t merge = vc.dim_or("spatial_merge_size", 2, 64), out = vc.dim_or("out_hidden_size", text_hidden, max_width);
  const std::int64_t merged = w * merge * merge;
  t.linear("patch_embed.proj", w, channels * temporal * patch * patch, shard::replicated, true);
  t.add("pos_embed.weight", vc.dim_or("num_position_embeddings", 2304, max_context), w, shard::replicated);
  vit_blocks(t, "blocks.*", depth, w, inter, true, true);
  const auto merger = [&](const std::string& p, std::int64_t norm_width, std::int64_t count) {
    t.norm(p + ".norm", norm_width, true, count);
    t.linear(p + ".linear_fc1", merged, merged, shard::column, true, count);
    t.linear(p + ".linear_fc2", out, merged, shard::row, true, count);
  };
  merger("merger", w, 1);
  // Qwen3VLVisionConfig defaults deepstack_visual_indexes to (8, 16, 24); Qwen3.5's config class has none.
  std::int64_t deepstack = deepstack_default;
  if (vc.has("deepstack_visual_indexes")) deepstack = static_cast<std::int64_t>(vc.array("deepstack_visual_indexes").size());
  merger("deepstack_merger_list.*", merged, deepstack);
}

// SigLIP (Gemma 3, transformers SiglipVisionConfig without the pooling
// head) and the Gemma 3 projector (a bare [vision, text] matrix and a soft
// embedding norm).
void siglip_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m) {
  tower t{m.vision, "vision_tower.vision_model."};
  const std::int64_t w = vc.dim_or("hidden_size", 768, max_width), inter = vc.dim_or("intermediate_size", 3072, max_width);
  const std::int64_t depth = vc.dim_or("num_hidden_layers", 12, max_layers), patch = vc.dim_or("patch_size", 16, 1024);
  const std::int64_t image = vc.dim_or("image_size", 224, 1 << 16), channels = vc.dim_or("num_channels", 3, 64);
  t.linear("embeddings.patch_embedding", w, channels * patch * patch, shard::replicated, true);
  t.add("embeddings.position_embedding.weight", (image / patch) * (image / patch), w, shard::replicated);
  vit_blocks(t, "encoder.layers.*", depth, w, inter, true, true, false, false);
  t.norm("post_layernorm", w, true);
  if (vc.boolean_or("vision_use_head", false))
    vc.fail("vision_use_head", "is true; gpucal counts the Gemma 3 tower without SigLIP's pooling head");
  t.prefix = "multi_modal_projector.";
  t.add("mm_input_projection_weight", w, text_hidden, shard::replicated);
  t.norm("mm_soft_emb_norm", w, false);
}

// Pixtral (Mistral 3, transformers PixtralVisionConfig) and the Mistral 3
// projector: a norm, the patch merger and two linears to the text width.
void pixtral_vision(const field_reader& vc, const field_reader& outer, std::int64_t text_hidden, model_spec& m) {
  tower t{m.vision, "vision_tower."};
  const std::int64_t w = vc.dim_or("hidden_size", 1024, max_width), inter = vc.dim_or("intermediate_size", 4096, max_width);
  const std::int64_t depth = vc.dim_or("num_hidden_layers", 24, max_layers), patch = vc.dim_or("patch_size", 16, 1024);
  const std::int64_t channels = vc.dim_or("num_channels", 3, 64);
  t.add("patch_conv.weight", w, channels * patch * patch, shard::replicated);
  t.norm("ln_pre", w, false);
  vit_blocks(t, "transformer.layers.*", depth, w, inter, false, false, true, false);
  const std::int64_t merge = outer.dim_or("spatial_merge_size", 2, 64);
  const bool bias = outer.boolean_or("multimodal_projector_bias", false);
  t.prefix = "multi_modal_projector.";
  t.norm("norm", w, false);
  t.add("patch_merger.merging_layer.weight", w, w * merge * merge, shard::replicated);
  t.linear("linear_1", text_hidden, w, shard::column, bias);
  t.linear("linear_2", text_hidden, text_hidden, shard::row, bias);
}

// Llama 4 vision (transformers Llama4VisionConfig): unfolded patch
// embedding, class and positional embeddings, biased ViT layers, the
// pixel-shuffle adapter MLP and the projector to the text width.
void llama4_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m) {
  tower t{m.vision, "vision_model."};
  const std::int64_t w = vc.dim_or("hidden_size", 768, max_width), inter = vc.dim_or("intermediate_size", 3072, max_width);
  const std::int64_t depth = vc.dim_or("num_hidden_layers", 34, max_layers), patch = vc.dim_or("patch_size", 14, 1024);
  const std::int64_t image = vc.dim_or("image_size", 448, 1 << 16), channels = vc.dim_or("num_channels", 3, 64);
  const bool bias = vc.boolean_or("multi_modal_projector_bias", false);
  t.add("patch_embedding.linear.weight", w, channels * patch * patch, shard::column);
  t.add("class_embedding", w, 1, shard::replicated);
  t.add("positional_embedding_vlm", (image / patch) * (image / patch) + 1, w, shard::replicated);
  t.norm("layernorm_pre", w, true);
  t.norm("layernorm_post", w, true);
  vit_blocks(t, "model.layers.*", depth, w, inter, true, true, false, false);
  const std::int64_t in_dim = vc.dim_or("projector_input_dim", 4096, max_width);
  const std::int64_t out_dim = vc.dim_or("projector_output_dim", 4096, max_width);
  t.linear("vision_adapter.mlp.fc1", in_dim, inter, shard::column, bias);
  t.linear("vision_adapter.mlp.fc2", out_dim, out_dim, shard::row, bias);
  t.prefix = "multi_modal_projector.";
  t.add("linear_1.weight", text_hidden, vc.dim_or("vision_output_dim", 7680, max_width), shard::column);
}

// Gemma 4 vision (transformers Gemma4VisionConfig): vLLM replicates the
// whole tower and its embedder on every GPU.
void gemma4_vision(const field_reader& vc, std::int64_t text_hidden, model_spec& m) {
  tower t{m.vision, "model.vision_tower."};
  const std::int64_t w = vc.dim_or("hidden_size", 768, max_width), inter = vc.dim_or("intermediate_size", 3072, max_width);
  const std::int64_t depth = vc.dim_or("num_hidden_layers", 16, max_layers), patch = vc.dim_or("patch_size", 16, 1024);
  const std::int64_t heads = vc.dim_or("num_attention_heads", 12, max_heads), kv = vc.dim_or("num_key_value_heads", heads, max_heads);
  const std::int64_t hd = vc.dim_or("head_dim", w / heads, max_heads);
  t.add("patch_embedder.input_proj.weight", w, 3 * patch * patch, shard::replicated);
  t.add("patch_embedder.position_embedding_table", 2 * vc.dim_or("position_embedding_size", 10240, max_context), w,
        shard::replicated);
  const std::string p = "encoder.layers.*";
  t.add(p + ".self_attn.q_proj.weight", heads * hd, w, shard::replicated, depth);
  t.add(p + ".self_attn.k_proj.weight", kv * hd, w, shard::replicated, depth);
  t.add(p + ".self_attn.v_proj.weight", kv * hd, w, shard::replicated, depth);
  t.add(p + ".self_attn.o_proj.weight", w, heads * hd, shard::replicated, depth);
  t.add(p + ".self_attn.q_norm.weight", hd, 1, shard::replicated, depth);
  t.add(p + ".self_attn.k_norm.weight", hd, 1, shard::replicated, depth);
  t.add(p + ".mlp.gate_proj.weight", inter, w, shard::replicated, depth);
  t.add(p + ".mlp.up_proj.weight", inter, w, shard::replicated, depth);
  t.add(p + ".mlp.down_proj.weight", w, inter, shard::replicated, depth);
  t.add(p + ".norms", w, 1, shard::replicated, 4 * depth);
  if (vc.boolean_or("standardize", false)) t.add("std_bias_and_scale", w, 1, shard::replicated, 2);
  t.prefix = "model.embed_vision.";
  t.add("embedding_projection.weight", text_hidden, w, shard::replicated);
}

// MoonViT (Kimi K2.5: LayerNorms and biases; Kimi K3's MoonViT3d: RMSNorms,
// no biases, a wider qkv) and the patch-merger projector to the text width.
void moonvit_vision(const field_reader& vc, std::int64_t text_hidden, bool k3, model_spec& m) {
  tower t{m.vision, "vision_tower."};
  const std::int64_t w = vc.dim_or("vt_hidden_size", 1152, max_width), inter = vc.dim_or("vt_intermediate_size", 4304, max_width);
  const std::int64_t depth = vc.dim_or("vt_num_hidden_layers", 27, max_layers), patch = vc.dim_or("patch_size", 14, 1024);
  const std::int64_t qkv = k3 ? vc.dim_or("qkv_hidden_size", w, max_width) : w;
  const bool ln = !k3 || vc.string_or("norm_type", "layernorm") != "rmsnorm";
  const bool attn_bias = k3 ? vc.boolean_or("attn_bias", false) : true, linear_bias = k3 ? vc.boolean_or("linear_bias", false) : true;
  const bool patch_bias = k3 ? vc.boolean_or("patch_embed_proj_bias", false) : true;
  t.linear("patch_embed.proj", w, 3 * patch * patch, shard::replicated, patch_bias);
  t.add("patch_embed.pos_emb.weight", vc.dim_or("init_pos_emb_height", 64, 4096) * vc.dim_or("init_pos_emb_width", 64, 4096), w,
        shard::replicated);
  const std::string p = "encoder.blocks.*";
  t.norm(p + ".norm0", w, ln, depth);
  t.norm(p + ".norm1", w, ln, depth);
  t.linear(p + ".wqkv", 3 * qkv, w, shard::column, attn_bias, depth);
  t.linear(p + ".wo", w, qkv, shard::row, attn_bias, depth);
  t.linear(p + ".mlp.fc0", inter, w, shard::column, linear_bias, depth);
  t.linear(p + ".mlp.fc1", w, inter, shard::row, linear_bias, depth);
  t.norm("encoder.final_layernorm", w, ln);
  std::int64_t merge = 4;
  if (vc.has("merge_kernel_size")) {
    const json& k = vc.array("merge_kernel_size");
    if (k.size() != 2 || !k[0].is_number_integer() || !k[1].is_number_integer() || k[0].get<std::int64_t>() <= 0 ||
        k[1].get<std::int64_t>() <= 0 || k[0].get<std::int64_t>() > 64 || k[1].get<std::int64_t>() > 64)
      vc.fail("merge_kernel_size", fmt::format("must be [a, b] with 0 < a, b <= 64, got {}", detail::shown(k)));
    merge = k[0].get<std::int64_t>() * k[1].get<std::int64_t>();
  }
  const std::int64_t merged = w * merge;
  t.prefix = "mm_projector.";
  if (k3) {
    t.add("proj.0.weight", merged, merged, shard::replicated);
    t.add("proj.2.weight", text_hidden, merged, shard::replicated);
    t.norm("post_norm", text_hidden, false);
  } else {
    t.norm("pre_norm", w, true);
    t.linear("proj.0", merged, merged, shard::replicated, true);
    t.linear("proj.2", text_hidden, merged, shard::replicated, true);
  }
}

// MiniMax-M3's CLIP-style tower (Conv3d patches, no post-norm), its
// projector and the patch merger that joins spatial_merge_size^2 patches.
void clip_vision(const field_reader& vc, const field_reader& outer, std::int64_t text_hidden, model_spec& m) {
  tower t{m.vision, "vision_tower.vision_model."};
  const std::int64_t w = vc.dim_or("hidden_size", 1280, max_width), inter = vc.dim_or("intermediate_size", 5120, max_width);
  const std::int64_t depth = vc.dim_or("num_hidden_layers", 32, max_layers), patch = vc.dim_or("patch_size", 14, 1024);
  std::int64_t temporal = 2, merge = 2;
  if (outer.has("img_token_compression_config")) {
    const field_reader c = outer.child("img_token_compression_config");
    temporal = c.dim_or("temporal_patch_size", 2, 64);
    merge = c.dim_or("spatial_merge_size", 2, 64);
  }
  t.add("embeddings.patch_embedding.weight", w, vc.dim_or("num_channels", 3, 64) * temporal * patch * patch, shard::replicated);
  t.norm("pre_layrnorm", w, true);
  vit_blocks(t, "encoder.layers.*", depth, w, inter, true, true, false, false);
  const std::int64_t proj = outer.dim_or("projector_hidden_size", text_hidden, max_width);
  const bool bias = outer.boolean_or("multimodal_projector_bias", true);
  t.prefix = "multi_modal_projector.";
  t.linear("linear_1", proj, w, shard::column, bias);
  t.linear("linear_2", text_hidden, proj, shard::row, bias);
  t.prefix = "patch_merge_mlp.";
  t.linear("linear_1", proj, text_hidden * merge * merge, shard::column, bias);
  t.linear("linear_2", text_hidden, proj, shard::row, bias);
}

}  // namespace gpucal::model::arch
