// Layer cache specs and vLLM's KV cache planning (see kv_cache.hpp). The
// rules follow vLLM 0.33: v1/kv_cache_interface.py (page sizes and the most
// memory a request can hold per spec), v1/core/kv_cache_planning.py
// (grouping, page unification, bytes per block), platforms/interface.py
// (_align_hybrid_block_size) and model_executor/layers/mamba/mamba_utils.py
// (state shapes and dtypes).
#include "gpucal/model/kv_cache.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "gpucal/model/errors.hpp"
#include "gpucal/model/tensor_inventory.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

std::string_view cache_kind_name(cache_kind k) {
  switch (k) {
    case cache_kind::full: return "full";
    case cache_kind::sliding: return "sliding";
    case cache_kind::chunked: return "chunked";
    case cache_kind::state: return "state";
  }
  return "?";
}

std::vector<layer_cache> layer_caches(const model_spec& m, const kv_cache_options& o) {
  const auto kv_bytes = static_cast<std::int64_t>(dtype_bits(o.kv_dtype)) / 8;
  const auto model_bytes = static_cast<std::int64_t>(dtype_bits(o.model_dtype)) / 8;
  const std::int64_t tp = o.tp;
  const bool fp8_kv = o.kv_dtype == dtype::fp8_e4m3 || o.kv_dtype == dtype::fp8_e5m2;
  std::vector<layer_cache> out;
  for (std::int64_t i = 0; i < m.num_layers(); ++i) {
    const layer_spec& l = m.layers[static_cast<std::size_t>(i)];
    layer_cache c;
    c.layer = i;
    switch (l.mixer) {
      case mixer_kind::attention: {
        const attention_spec& a = l.attention;
        if (a.kv_shared) break;  // reads an earlier layer's cache
        // Attention.get_kv_cache_spec: K and V per KV head on this rank (replicated when tp exceeds them).
        const std::int64_t vd = a.v_head_dim > 0 ? a.v_head_dim : a.head_dim;
        c.what = std::string(l.mixer_name());  // attention, sliding_attention, chunked_attention
        c.bytes_per_token = kv_heads_per_rank(a.num_kv_heads, o.tp) * (a.head_dim + vd) * kv_bytes;
        c.kind = a.window == attention_window::sliding   ? cache_kind::sliding
                 : a.window == attention_window::chunked ? cache_kind::chunked
                                                         : cache_kind::full;
        c.window_tokens = a.window_tokens;
        out.push_back(c);
        if (a.indexer) {
          // MiniMax-M3's indexer keys: one head of head_dim per token, on every rank
          // (MiniMaxM3IndexerCache, an MLAAttentionSpec in the model dtype by default).
          layer_cache x = c;
          x.kind = cache_kind::full;
          x.window_tokens = 0;
          x.what = "indexer";
          x.bytes_per_token = a.indexer->cache_bytes_per_token;
          out.push_back(x);
        }
        break;
      }
      case mixer_kind::mla: {
        // MLAAttentionSpec: one latent of kv_lora_rank + qk_rope_head_dim per token, on every rank.
        const mla_spec& a = l.mla;
        c.what = "mla";
        c.mla = true;
        c.bytes_per_token = (a.kv_lora_rank + a.qk_rope_head_dim) * kv_bytes;
        // Sparse MLA with an fp8 cache: FlashMLA-sparse on Hopper stores fp8_ds_mla
        // (512 fp8 NoPE + 4 fp32 scales + 64 bf16 RoPE = 656 B); Blackwell's
        // FlashInfer sparse MLA keeps plain fp8 (mla_attention.py, _canonicalize_sparse_mla_kv_cache_dtype).
        if (a.indexer && fp8_kv && o.compute_major == 9 && a.kv_lora_rank == 512 && a.qk_rope_head_dim == 64)
          c.bytes_per_token = 656;
        out.push_back(c);
        if (a.indexer && !a.shared_indexer) {
          layer_cache x = c;
          x.what = "indexer";
          x.bytes_per_token = a.indexer->cache_bytes_per_token;
          out.push_back(x);
        }
        break;
      }
      case mixer_kind::linear_attention: {
        const linear_attention_spec& a = l.linear;
        c.kind = cache_kind::state;
        const std::int64_t state_bytes = dtype_bits(a.state_dtype) / 8;
        if (a.kind == linear_attention_kind::gated_deltanet) {
          // gated_delta_net_state_shape: conv (K-1, (2 hk Hk + hv Hv)/tp), recurrent (Hv/tp, hv, hk).
          c.what = "gated_deltanet";
          c.conv_state_bytes = (a.conv_kernel - 1) * ((2 * a.head_k_dim * a.num_k_heads + a.head_v_dim * a.num_v_heads) / tp) * model_bytes;
          c.state_bytes = c.conv_state_bytes + a.num_v_heads / tp * a.head_v_dim * a.head_k_dim * state_bytes;
          // FlashInfer's GDN prefill (SM90, and SM10x with head_k_dim 128) exports
          // prefix-caching checkpoints aligned to 64 tokens, one extra block per request.
          if (o.compute_major == 9 || a.head_k_dim == 128) {
            c.checkpoint_alignment = 64;
            c.checkpoint_blocks = 1;
          }
        } else {
          // kda_state_shape: conv (K-1, (H d + 2 Hk dk)/tp), recurrent (H/tp, d, d).
          c.what = "kda";
          c.conv_state_bytes = (a.conv_kernel - 1) * ((a.num_v_heads * a.head_v_dim + 2 * a.num_k_heads * a.head_k_dim) / tp) * model_bytes;
          c.state_bytes = c.conv_state_bytes + a.num_v_heads / tp * a.head_v_dim * a.head_v_dim * state_bytes;
        }
        out.push_back(c);
        break;
      }
      case mixer_kind::mamba2: {
        // mamba2_state_shape: conv (K-1, (I + 2 G' N)/tp) with groups padded to a
        // multiple of tp, ssm (H/tp, head_dim, N). MambaMixer2 keeps one checkpoint block.
        const mamba2_spec& a = l.mamba;
        const std::int64_t groups = a.n_groups % tp == 0 ? a.n_groups : a.n_groups + (tp - a.n_groups);
        c.kind = cache_kind::state;
        c.what = "mamba2";
        c.conv_state_bytes = (a.conv_kernel - 1) * ((a.intermediate() + 2 * groups * a.state_size) / tp) * model_bytes;
        c.state_bytes = c.conv_state_bytes + a.num_heads / tp * a.head_dim * a.state_size * (dtype_bits(a.state_dtype) / 8);
        c.checkpoint_blocks = 1;
        out.push_back(c);
        break;
      }
      case mixer_kind::compressed_mla: break;  // summed below
      case mixer_kind::none: break;
    }
  }
  // DeepSeek-V4 (vLLM models/deepseek_v4, v1/attention/backends/mla/sparse_swa.py):
  // per layer a window of fp8_ds_mla entries (448 fp8 NoPE + 64 bf16 RoPE + 8
  // ue8m0 scales = 584 B), one compressed entry per compress_ratio tokens,
  // one 132-byte indexer entry per 4 tokens on compressed sparse layers, and
  // fp32 compressor states over coff x ratio tokens. vLLM packs all of them
  // into 256-token blocks (block-outermost layout); gpucal keeps one group
  // that grows with the context and one fixed part per request (windows and
  // compressor states, without the in-flight reservation).
  std::int64_t per_block = 0, fixed = 0;
  constexpr std::int64_t block = 256, entry = 584;
  for (const auto& l : m.layers) {
    if (l.mixer != mixer_kind::compressed_mla) continue;
    const compressed_mla_spec& a = l.compressed;
    fixed += (a.window + block) * entry;
    if (a.compress_ratio > 0) {
      const std::int64_t coff = a.compress_ratio == 4 ? 2 : 1;
      per_block += block / a.compress_ratio * entry;
      fixed += 2 * coff * a.head_dim * 4 * coff * a.compress_ratio;
      if (a.indexer) {
        per_block += block / 4 * a.indexer->cache_bytes_per_token;
        fixed += 2 * 2 * a.indexer->head_dim * 4 * 2 * 4;
      }
    }
  }
  if (per_block > 0 || fixed > 0) {
    layer_cache c;
    c.layer = 0;
    c.what = "compressed_mla";
    c.mla = true;
    c.bytes_per_token = per_block;
    c.tokens_per_entry = block;
    out.push_back(c);
    layer_cache w = c;
    w.kind = cache_kind::state;
    w.what = "swa_window";
    w.bytes_per_token = 0;
    w.tokens_per_entry = 1;
    w.state_bytes = fixed;
    out.push_back(w);
  }
  return out;
}

std::int64_t kv_plan::blocks_for(std::int64_t tokens) const {
  std::int64_t n = 0;
  for (const auto& g : groups) {
    std::int64_t per = 0;
    switch (g.kind) {
      case cache_kind::full: per = ceil_div(tokens, g.block_size); break;
      case cache_kind::sliding:
        per = std::min(ceil_div(tokens, g.block_size),
                       ceil_div(std::min(g.window_tokens - 1 + in_flight_tokens, tokens), g.block_size) + 1);
        break;
      case cache_kind::chunked: per = ceil_div(std::min(g.window_tokens + in_flight_tokens, tokens), g.block_size); break;
      case cache_kind::state: per = g.state_blocks; break;
    }
    n += per;
  }
  return n;
}

namespace {

struct spec {
  cache_kind kind;
  std::int64_t bytes_per_token;  // attention kinds
  std::int64_t page;             // bytes of one layer's block
  std::int64_t block_size;
  std::int64_t window;
  int state_blocks;
  std::string what;
  std::int64_t layers = 0;
};

// The most blocks a request holds in a group of this spec (vLLM's max_memory_usage_bytes / page).
std::int64_t max_blocks(const spec& s, std::int64_t len, std::int64_t in_flight) {
  switch (s.kind) {
    case cache_kind::full: return ceil_div(len, s.block_size);
    case cache_kind::sliding: return ceil_div(std::min(s.window - 1 + in_flight, len), s.block_size) + 1;
    case cache_kind::chunked: return ceil_div(std::min(s.window + in_flight, len), s.block_size);
    case cache_kind::state: return s.state_blocks;
  }
  return 0;
}

}  // namespace

kv_plan plan_kv_cache(const std::vector<layer_cache>& caches, const kv_cache_rules& rules, std::int64_t max_model_len,
                      std::int64_t max_num_batched_tokens) {
  kv_plan p;
  p.max_model_len = max_model_len;
  p.in_flight_tokens = checked_mul(rules.in_flight_batches, max_num_batched_tokens, "the tokens in flight");
  p.block_size = rules.block_size;
  if (caches.empty()) {
    p.layout = "none";
    return p;
  }
  const auto state_of = [](const layer_cache& c) { return c.kind == cache_kind::state; };
  const bool any_state = std::any_of(caches.begin(), caches.end(), state_of);
  const auto first_attention = std::find_if_not(caches.begin(), caches.end(), state_of);
  for (const auto& c : caches) {
    if (c.kind == cache_kind::state) {
      p.state_bytes_per_request = checked_add(p.state_bytes_per_request, c.state_bytes, "the state bytes per request");
    } else {
      p.bytes_per_token = checked_add(p.bytes_per_token, ceil_div(c.bytes_per_token, c.tokens_per_entry), "the KV bytes per token");
    }
  }

  // Hybrid attention + state models: attention blocks grow until one
  // attention page holds the largest state (platforms/interface.py,
  // Platform._align_hybrid_block_size); state pages are padded to it.
  std::int64_t state_page = 0;
  if (any_state) {
    std::int64_t largest = 0, checkpoint_align = 1;
    bool mla = false;
    for (const auto& c : caches) {
      if (c.kind != cache_kind::state) {
        mla = mla || c.mla;
        continue;
      }
      largest = std::max(largest, c.state_bytes);
      checkpoint_align = checked_lcm(checkpoint_align, c.checkpoint_alignment, "the state checkpoint alignment");
    }
    state_page = largest;
    if (first_attention != caches.end() && first_attention->tokens_per_entry > 1) {
      // DeepSeek-V4: the fixed part takes whole blocks of the compressed group's page.
      state_page = checked_mul(rules.block_size / first_attention->tokens_per_entry, first_attention->bytes_per_token, "the KV page");
    } else if (first_attention != caches.end()) {
      const std::int64_t per_token = ceil_div(first_attention->bytes_per_token, first_attention->tokens_per_entry);
      std::int64_t align = std::max<std::int64_t>(16, rules.block_size);
      if (mla) align = std::max(align, rules.mla_state_align);
      if (rules.state_prefix_caching) align = checked_lcm(align, checkpoint_align, "the state block alignment");
      const std::int64_t block = checked_mul(align, ceil_div(largest, checked_mul(align, per_token, "the state block alignment")), "the state block");
      p.block_size = std::max(rules.block_size, block);
      state_page = checked_mul(p.block_size, per_token, "the state page");
    }
    p.state_padded_bytes = state_page;
  }

  std::vector<spec> specs;
  for (const auto& c : caches) {
    spec s{c.kind, c.bytes_per_token, 0, p.block_size, c.window_tokens, 0, c.what};
    if (!rules.hybrid_allocator && (s.kind == cache_kind::sliding || s.kind == cache_kind::chunked)) {
      s.kind = cache_kind::full;  // without the hybrid manager, local layers keep every token
      s.window = 0;
    }
    if (s.kind == cache_kind::state) {
      s.page = state_page;
      s.block_size = 1;
      s.state_blocks = rules.state_prefix_caching ? 2 + c.checkpoint_blocks : 1;
      if (first_attention != caches.end() && first_attention->tokens_per_entry > 1)
        s.state_blocks = static_cast<int>(ceil_div(c.state_bytes, state_page));
    } else {
      s.page = checked_mul(p.block_size / c.tokens_per_entry, c.bytes_per_token, "the KV page");
    }
    specs.push_back(s);
  }

  const auto same = [](const spec& a, const spec& b) {
    return a.kind == b.kind && a.page == b.page && a.window == b.window && a.block_size == b.block_size &&
           a.state_blocks == b.state_blocks;
  };
  const bool uniform = std::all_of(specs.begin(), specs.end(), [&](const spec& s) { return same(s, specs[0]); });
  // One type with one block size: one group holding every layer's own page
  // (UniformTypeKVCacheSpecs; MLA and indexer layers are full-attention type).
  const bool uniform_type = std::all_of(specs.begin(), specs.end(), [&](const spec& s) {
    return s.kind == specs[0].kind && s.block_size == specs[0].block_size && s.window == specs[0].window &&
           s.kind != cache_kind::state;
  });
  if (uniform || uniform_type) {
    kv_group g;
    g.kind = specs[0].kind;
    g.what = specs[0].what;
    g.layers = static_cast<std::int64_t>(specs.size());
    g.block_size = specs[0].block_size;
    g.window_tokens = specs[0].window;
    g.state_blocks = specs[0].state_blocks;
    for (const auto& s : specs) g.page_bytes = checked_add(g.page_bytes, s.page, "the bytes per block");
    g.blocks_per_request = max_blocks(specs[0], max_model_len, p.in_flight_tokens);
    p.bytes_per_block = g.page_bytes;
    g.page_bytes = specs[0].page;
    p.groups.push_back(g);
    p.blocks_per_request = p.groups[0].blocks_per_request;
    p.layout = uniform ? "uniform" : "uniform type";
    return p;
  }

  // Hybrid: one page size for all (kv_cache_planning.py, unify_kv_cache_spec_page_size):
  // smaller attention pages take proportionally larger blocks when the
  // largest page is a multiple of theirs, otherwise they (and states) are padded.
  std::int64_t max_page = 0;
  for (const auto& s : specs) max_page = std::max(max_page, s.page);
  for (auto& s : specs) {
    if (s.page == max_page) continue;
    if (s.kind != cache_kind::state && max_page % s.page == 0) s.block_size *= max_page / s.page;
    s.page = max_page;
  }
  // Buckets of identical specs, split into groups of group_size layers
  // (_get_kv_cache_groups_uniform_page_size).
  std::vector<spec> buckets;
  for (const auto& s : specs) {
    auto it = std::find_if(buckets.begin(), buckets.end(),
                           [&](const spec& b) { return same(b, s) && b.bytes_per_token == s.bytes_per_token && b.what == s.what; });
    if (it == buckets.end()) {
      buckets.push_back(s);
      buckets.back().layers = 1;
    } else {
      ++it->layers;
    }
  }
  std::int64_t min_n = buckets[0].layers, max_n = buckets[0].layers;
  for (const auto& b : buckets) {
    min_n = std::min(min_n, b.layers);
    max_n = std::max(max_n, b.layers);
  }
  const std::int64_t group_size = 2 * max_n < 3 * min_n ? max_n : min_n;
  std::int64_t widest = 0;
  for (const auto& b : buckets) {
    const std::int64_t n = ceil_div(b.layers, group_size);
    for (std::int64_t k = 0; k < n; ++k) {
      kv_group g;
      g.kind = b.kind;
      g.what = b.what;
      g.layers = b.layers / n + (k < b.layers % n ? 1 : 0);
      g.block_size = b.block_size;
      g.page_bytes = b.page;
      g.window_tokens = b.window;
      g.state_blocks = b.state_blocks;
      g.blocks_per_request = max_blocks(b, max_model_len, p.in_flight_tokens);
      widest = std::max(widest, g.layers);
      p.blocks_per_request += g.blocks_per_request;
      p.groups.push_back(g);
    }
  }
  p.bytes_per_block = checked_mul(widest, max_page, "the bytes per block");
  p.layout = "hybrid";
  return p;
}

}  // namespace gpucal::model
