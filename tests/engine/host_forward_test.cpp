// The reference engine's host side: shapes and weight bytes against the
// memory model, flattening of a step, and the paged host forward against a
// dense causal forward written here without paging.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "gpucal/engine/engine_model.hpp"
#include "gpucal/engine/forward_batch.hpp"
#include "gpucal/engine/host_forward.hpp"
#include "gpucal/engine/scheduler.hpp"
#include "gpucal/kernels/block_allocator.hpp"
#include "gpucal/kernels/numeric.hpp"
#include "gpucal/kernels/reference_ops.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/memory_model.hpp"

namespace {

using namespace gpucal::engine;
namespace kernels = gpucal::kernels;
namespace model = gpucal::model;

engine_model tiny(linear_format f, bool bias = false, bool tied = false) {
  engine_model m;
  m.name = "tiny";
  m.hidden = 128;
  m.layers = m.model_layers = 2;
  m.q_heads = 4;
  m.kv_heads = 2;
  m.head_dim = 64;
  m.intermediate = 256;
  m.vocab = 300;
  m.qkv_bias = bias;
  m.tie_embeddings = tied;
  m.rms_eps = 1e-5;
  m.rope_theta = 500000;
  m.rope_scaling = kernels::llama3_rope_scaling{};
  m.format = f;
  return m;
}

// Dense causal forward of one sequence, every position, no paging: logits of the last token.
std::vector<double> dense_last_logits(const engine_model& m, const host_weights& w, const std::vector<std::int32_t>& ids) {
  const auto T = static_cast<std::int64_t>(ids.size());
  const std::int64_t H = m.hidden, hd = m.head_dim, group = m.q_heads / m.kv_heads;
  std::vector<double> x(static_cast<std::size_t>(T * H));
  for (std::int64_t t = 0; t < T; ++t)
    for (std::int64_t i = 0; i < H; ++i) x[t * H + i] = w.embed[ids[t] * H + i];
  std::vector<std::int64_t> pos(static_cast<std::size_t>(T));
  std::iota(pos.begin(), pos.end(), 0);
  const auto inv = [&] {
    auto f = kernels::rope_inv_freq(hd, m.rope_theta, m.rope_scaling);
    for (auto& v : f) v = static_cast<float>(v);
    return f;
  }();
  const auto dense = [&](const std::vector<double>& in, const host_linear& l) {
    const bool fp8 = m.format == linear_format::fp8;
    const std::vector<float> W = fp8 ? l.values : l.effective();
    std::vector<double> xin = in;
    double out_scale = 1;
    if (fp8) {  // per-tensor dynamic quantization: scale = absmax / 448
      double absmax = 0;
      for (double v : in) absmax = std::max(absmax, std::abs(v));
      const float xs = static_cast<float>(absmax / 448.0);
      for (auto& v : xin) v = kernels::round_to_fp8_e4m3(static_cast<float>(v) / xs);
      out_scale = static_cast<double>(xs) * static_cast<double>(l.scale);
    }
    std::vector<double> y(static_cast<std::size_t>(T * l.rows));
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t j = 0; j < l.rows; ++j) {
        double s = 0;
        for (std::int64_t i = 0; i < l.cols; ++i) s += xin[t * l.cols + i] * W[j * l.cols + i];
        y[t * l.rows + j] = s * out_scale;
      }
    round_bf16(y);
    return y;
  };
  for (const host_layer& L : w.layers) {
    auto h = kernels::rms_norm_ref(x, {L.input_norm.begin(), L.input_norm.end()}, H, m.rms_eps);
    round_bf16(h);
    auto qkv = dense(h, L.qkv);
    if (m.qkv_bias) {
      for (std::int64_t t = 0; t < T; ++t)
        for (std::int64_t j = 0; j < m.qkv_width(); ++j) qkv[t * m.qkv_width() + j] += L.qkv_bias[j];
      round_bf16(qkv);
    }
    std::vector<double> q, k, v;
    for (std::int64_t t = 0; t < T; ++t) {
      const double* r = qkv.data() + t * m.qkv_width();
      q.insert(q.end(), r, r + m.q_width());
      k.insert(k.end(), r + m.q_width(), r + m.q_width() + m.kv_width());
      v.insert(v.end(), r + m.q_width() + m.kv_width(), r + m.qkv_width());
    }
    kernels::rope_ref(q, pos, m.q_heads, hd, inv);
    kernels::rope_ref(k, pos, m.kv_heads, hd, inv);
    round_bf16(q);
    round_bf16(k);
    std::vector<double> attn(q.size());
    for (std::int64_t t = 0; t < T; ++t)
      for (std::int64_t qh = 0; qh < m.q_heads; ++qh) {
        const std::int64_t kh = qh / group;
        std::vector<double> s(static_cast<std::size_t>(t + 1));
        double mx = -1e300;
        for (std::int64_t j = 0; j <= t; ++j) {
          double d = 0;
          for (std::int64_t i = 0; i < hd; ++i) d += q[(t * m.q_heads + qh) * hd + i] * k[(j * m.kv_heads + kh) * hd + i];
          s[j] = d / std::sqrt(static_cast<double>(hd));
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (auto& e : s) z += (e = std::exp(e - mx));
        for (std::int64_t i = 0; i < hd; ++i) {
          double o = 0;
          for (std::int64_t j = 0; j <= t; ++j) o += s[j] / z * v[(j * m.kv_heads + kh) * hd + i];
          attn[(t * m.q_heads + qh) * hd + i] = o;
        }
      }
    round_bf16(attn);
    auto o = dense(attn, L.o);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    round_bf16(x);
    h = kernels::rms_norm_ref(x, {L.post_attention_norm.begin(), L.post_attention_norm.end()}, H, m.rms_eps);
    round_bf16(h);
    auto act = kernels::silu_mul_ref(dense(h, L.gate_up), m.intermediate);
    round_bf16(act);
    auto d = dense(act, L.down);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += d[i];
    round_bf16(x);
  }
  std::vector<double> last(x.end() - H, x.end());
  auto hn = kernels::rms_norm_ref(last, {w.final_norm.begin(), w.final_norm.end()}, H, m.rms_eps);
  round_bf16(hn);
  const auto& head = m.tie_embeddings ? w.embed : w.lm_head;
  std::vector<double> logits(static_cast<std::size_t>(m.vocab));
  for (std::int64_t j = 0; j < m.vocab; ++j) {
    double s = 0;
    for (std::int64_t i = 0; i < H; ++i) s += hn[i] * head[j * H + i];
    logits[j] = s;
  }
  round_bf16(logits);
  return logits;
}

std::vector<std::int32_t> ids_for(std::int64_t n, std::int32_t vocab, std::uint32_t salt) {
  std::vector<std::int32_t> ids(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) ids[i] = static_cast<std::int32_t>((i * 2654435761u + salt) % vocab);
  return ids;
}

double max_rel_diff(const std::vector<float>& got, const std::vector<double>& ref, std::size_t offset) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num = std::max(num, std::abs(got[offset + i] - ref[i]));
    den = std::max(den, std::abs(ref[i]));
  }
  return num / den;
}

TEST(EngineModel, LlamaAndQwenWeightsMatchTheMemoryModelToTheByte) {
  for (const char* name : {"llama-3-8b", "qwen2.5-7b", "llama-2-7b"}) {
    const model::model_spec spec = model::resolve_model(name);
    const engine_model e = engine_model_from(spec, linear_format::bf16, std::nullopt);
    model::estimate_options opt;
    const auto est = model::estimate_memory(spec, model::resolve_gpu("h100-sxm-80gb"), model::resolve_engine("vllm"),
                                            model::default_coefficients(), opt);
    EXPECT_EQ(weight_bytes(e), est.weights_bytes) << name;
    EXPECT_EQ(e.kv_bytes_per_token(), est.kv.bytes_per_token) << name;
  }
  const engine_model q = engine_model_from(model::resolve_model("qwen2.5-7b"), linear_format::bf16, 4);
  EXPECT_TRUE(q.qkv_bias);
  EXPECT_EQ(q.layers, 4);
  EXPECT_EQ(q.model_layers, 28);
  EXPECT_EQ(q.qkv_width(), (28 + 2 * 4) * 128);
}

TEST(EngineModel, NumericsComeFromTheConfig) {
  const engine_model e = engine_model_from(model::resolve_model("llama-3.1-8b"), linear_format::bf16, std::nullopt);
  EXPECT_EQ(e.rope_theta, 500000.0);   // config.json rope_theta
  EXPECT_EQ(e.rms_eps, 1e-5);          // config.json rms_norm_eps
  ASSERT_TRUE(e.rope_scaling.has_value());
  EXPECT_EQ(e.rope_scaling->factor, 8.0);
  EXPECT_EQ(e.rope_scaling->original_max_position, 8192.0);
}

TEST(EngineModel, RefusesWhatItCannotRunNamingWhy) {
  const auto refuses = [](const char* name, const char* why) {
    try {
      engine_model_from(model::resolve_model(name), linear_format::bf16, std::nullopt);
      ADD_FAILURE() << name << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  refuses("mixtral-8x7b", "model_type");
  refuses("deepseek-v3", "model_type");
  refuses("gemma-2-9b", "model_type");
  EXPECT_THROW(engine_model_from(model::resolve_model("llama-3-8b"), linear_format::bf16, 33), std::invalid_argument);
  EXPECT_THROW(parse_linear_format("int3", "--linear"), std::invalid_argument);
  EXPECT_EQ(parse_linear_format("w4a16", "--linear"), linear_format::w4a16);
}

TEST(EngineModel, LinearBytesPerFormat) {
  EXPECT_EQ(linear_weight_bytes(linear_format::bf16, 4096, 4096), 4096LL * 4096 * 2);
  EXPECT_EQ(linear_weight_bytes(linear_format::fp8, 4096, 4096), 4096LL * 4096 + 4);
  // 4-bit codes, a bf16 scale and a zero byte per 128 inputs: 4096 x (2048 + 32 x 3).
  EXPECT_EQ(linear_weight_bytes(linear_format::w4a16, 4096, 4096), 4096LL * (2048 + 32 * 3));
}

TEST(ForwardBatch, FromASchedulerStepKeepsItsSlotsAndSamples) {
  kernels::block_allocator blocks(32, 4);
  scheduler s(blocks, {4, 10, 64}, 300, 3);
  s.add({1, 6, 2});
  s.add({2, 9, 1});
  const step_plan p = s.schedule();  // 6 tokens of request 1, then 4 of request 2
  const forward_batch b = to_forward_batch(p, 16, 4);
  EXPECT_EQ(b.input_ids, p.input_ids);
  EXPECT_EQ(b.positions, p.positions);
  EXPECT_EQ(b.slot_mapping, p.slot_mapping);
  EXPECT_EQ(b.context_lens, p.context_lens_per_token);
  EXPECT_EQ(b.sample_rows, p.sample_rows);
  EXPECT_EQ(b.sequences(), static_cast<std::int64_t>(p.seqs.size()));
}

TEST(ForwardBatch, FlattensSlotsContextsAndTables) {
  forward_batch b(4);
  b.append_sequence({5, 6, 7}, 2, {9, 3}, 4, true);  // positions 2..4: blocks 9 (0..3), 3 (4..7)
  b.append_sequence({8}, 0, {1}, 4, false);
  EXPECT_EQ(b.tokens(), 4);
  EXPECT_EQ(b.positions, (std::vector<std::int32_t>{2, 3, 4, 0}));
  EXPECT_EQ(b.slot_mapping, (std::vector<std::int64_t>{38, 39, 12, 4}));
  EXPECT_EQ(b.context_lens, (std::vector<std::int32_t>{3, 4, 5, 1}));
  EXPECT_EQ(b.sample_rows, (std::vector<std::int32_t>{2}));
  EXPECT_EQ(std::vector<std::int32_t>(b.block_tables.begin() + 8, b.block_tables.begin() + 12),
            (std::vector<std::int32_t>{9, 3, 0, 0}));
  EXPECT_EQ(b.max_context_len(), 5);
  EXPECT_THROW(b.append_sequence({1, 2}, 7, {1, 2}, 4, true), std::invalid_argument);  // position 8 needs a third block
  EXPECT_THROW(b.append_sequence({1}, 0, {1, 2, 3, 4, 5}, 4, true), std::invalid_argument);
}

TEST(HostWeights, RandomNeverZeroWithUnitScaleProducts) {
  const engine_model m = tiny(linear_format::bf16, true);
  const host_weights w = random_host_weights(m, 11);
  ASSERT_EQ(w.layers.size(), 2u);
  const auto& qkv = w.layers[0].qkv.values;
  ASSERT_EQ(qkv.size(), static_cast<std::size_t>(m.qkv_width() * m.hidden));
  double sq = 0;
  for (float v : qkv) {
    ASSERT_NE(v, 0.0f);
    sq += static_cast<double>(v) * v;
  }
  EXPECT_NEAR(sq / static_cast<double>(qkv.size()) * static_cast<double>(m.hidden), 1.0, 0.05);  // variance 1 / cols
  EXPECT_EQ(w.layers[0].qkv_bias.size(), static_cast<std::size_t>(m.qkv_width()));
  const host_weights f8 = random_host_weights(tiny(linear_format::fp8), 11);
  for (float v : f8.layers[1].down.values) ASSERT_EQ(v, kernels::round_to_fp8_e4m3(v));
}

class PagedVersusDense : public ::testing::TestWithParam<linear_format> {};

TEST_P(PagedVersusDense, TwoSequencesThroughScrambledBlocks) {
  const engine_model m = tiny(GetParam(), /*bias=*/true);
  const host_weights w = random_host_weights(m, 5);
  host_forward f(m, w, 16, 4);
  const auto a = ids_for(13, 300, 1), b = ids_for(7, 300, 2);
  std::vector<float> logits;
  if (GetParam() == linear_format::fp8) {
    // fp8 activations are quantized per tensor over the whole step, so each
    // sequence gets its own step to match a dense run of that sequence alone.
    for (const auto* ids : {&a, &b}) {
      forward_batch one(8);
      one.append_sequence(*ids, 0, ids == &a ? std::vector<std::int32_t>{7, 2, 11, 0} : std::vector<std::int32_t>{5, 9}, 4,
                          true);
      const auto l = f.forward(one);
      logits.insert(logits.end(), l.begin(), l.end());
    }
  } else {
    forward_batch batch(8);
    batch.append_sequence(a, 0, {7, 2, 11, 0}, 4, true);
    batch.append_sequence(b, 0, {5, 9}, 4, true);
    logits = f.forward(batch);
  }
  ASSERT_EQ(logits.size(), 2u * 300);
  EXPECT_LT(max_rel_diff(logits, dense_last_logits(m, w, a), 0), 1e-6);
  EXPECT_LT(max_rel_diff(logits, dense_last_logits(m, w, b), 300), 1e-6);
}

class ChunkInvariance : public ::testing::TestWithParam<linear_format> {};

// fp8 is left out: its activation scales depend on the step's whole batch.
TEST_P(ChunkInvariance, ChunkedPrefillAndDecodeEqualOneShot) {
  const engine_model m = tiny(GetParam(), false, /*tied=*/true);
  const host_weights w = random_host_weights(m, 9);
  const auto ids = ids_for(15, 300, 3);
  const std::vector<std::int32_t> table{3, 14, 6, 1};
  host_forward chunked(m, w, 16, 4);
  std::vector<float> last;
  std::int64_t pos = 0;
  for (std::int64_t n : {5, 5, 3, 1, 1}) {  // prefill 13 in three chunks, then two single tokens
    forward_batch b(4);
    b.append_sequence({ids.begin() + pos, ids.begin() + pos + n}, pos, table, 4, true);
    last = chunked.forward(b);
    pos += n;
  }
  host_forward once(m, w, 16, 4);
  forward_batch b(4);
  b.append_sequence(ids, 0, table, 4, true);
  const std::vector<float> whole = once.forward(b);
  ASSERT_EQ(last.size(), whole.size());
  for (std::size_t i = 0; i < whole.size(); ++i) ASSERT_EQ(last[i], whole[i]) << i;
  EXPECT_LT(max_rel_diff(whole, dense_last_logits(m, w, ids), 0), 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Formats, PagedVersusDense,
                         ::testing::Values(linear_format::bf16, linear_format::fp8, linear_format::w4a16),
                         [](const auto& p) { return std::string(linear_format_name(p.param)); });
INSTANTIATE_TEST_SUITE_P(Formats, ChunkInvariance, ::testing::Values(linear_format::bf16, linear_format::w4a16),
                         [](const auto& p) { return std::string(linear_format_name(p.param)); });

}  // namespace
