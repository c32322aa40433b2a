// GPU: cuBLASLt GEMMs against a host reference in double on fresh random
// data, at shapes that include M = 1 and sizes off the 16-element grid.
// Tolerances (documented in the README): bf16 and fp8 (bf16 output)
// |got - ref| <= 1.6e-2 (rtol, PyTorch's bf16 default) x |ref| + 1.6e-2 x
// rms(ref) (atol scaled to the output, whose entries grow as sqrt(K)), and a
// relative Frobenius error under 5e-3 (bf16 rounding of the output alone is
// about 2e-3); int8 -> int32 is exact. FP8 with fast accumulation keeps
// Hopper's reduced-precision accumulator (about 14 bits; DeepSeek-V3
// technical report, section 3.3.2, measures a maximum relative error near 2 %
// at K = 4096), so it gets 5e-2 element tolerances and a 2e-2 Frobenius bound.
// Outputs are poisoned before each run and every element is checked.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gpu_fixture.hpp"
#include "gpucal/kernels/compare.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/gemm_reference.hpp"
#include "gpucal/kernels/lt_gemm.hpp"
#include "gpucal/kernels/numeric.hpp"

namespace gk = gpucal::kernels;

namespace {

class lt_gemm_test : public gpucal::test::gpu_test {
protected:
  void SetUp() override {
    gpu_test::SetUp();
    if (IsSkipped()) return;
    ctx_.emplace();
  }
  std::optional<gk::lt_context> ctx_;
};

// Uniform in [lo, hi), rounded to the storage format by `round`.
template <typename Round>
std::vector<double> random_values(std::size_t n, unsigned seed, float lo, float hi, Round round) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = round(dist(rng));
  return v;
}

void expect_close_bf16_output(const std::vector<double>& got, std::vector<double> ref, double tol = 1.6e-2,
                              double frobenius = 5e-3) {
  for (auto& r : ref) r = gk::round_to_bf16(static_cast<float>(r));  // reference rounded to the output dtype
  const auto report = gk::compare_close(got, ref, tol * gk::rms(ref), tol);
  EXPECT_TRUE(report.ok()) << report.describe(got, ref);
  EXPECT_LT(report.rel_frobenius, frobenius) << report.describe(got, ref);
}

std::vector<double> read_bf16(const gk::device_buffer<std::uint16_t>& d) {
  std::vector<std::uint16_t> bits(d.size());
  GPUCAL_CUDA_CHECK(cudaMemcpy(bits.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost));
  std::vector<double> out(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) out[i] = gk::bf16_bits_to_float(bits[i]);
  return out;
}

struct shape_case {
  std::int64_t m, n, k;
};

TEST_F(lt_gemm_test, bf16_matches_reference) {
  // M = 1 (decode), sizes off the 16-grid, a real layer slice.
  for (const shape_case s : {shape_case{1, 4096, 4096}, shape_case{7, 200, 96}, shape_case{33, 129, 72},
                             shape_case{127, 257, 131}, shape_case{300, 1024, 512}}) {
    SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k);
    const unsigned seed = static_cast<unsigned>(s.m * 131 + s.n * 7 + s.k);
    const auto bf16 = [](float v) { return static_cast<double>(gk::round_to_bf16(v)); };
    const auto x = random_values(static_cast<std::size_t>(s.m * s.k), seed, -1, 1, bf16);
    const auto w = random_values(static_cast<std::size_t>(s.n * s.k), seed + 1, -1, 1, bf16);
    std::vector<double> ref;
    gk::reference_gemm_tn(x, w, ref, s.m, s.n, s.k);

    const auto to_bits = [](const std::vector<double>& v) {
      std::vector<std::uint16_t> b(v.size());
      for (std::size_t i = 0; i < v.size(); ++i) b[i] = gk::float_to_bf16_bits(static_cast<float>(v[i]));
      return b;
    };
    const auto xb = to_bits(x), wb = to_bits(w);
    gk::device_buffer<std::uint16_t> dx(xb.size()), dw(wb.size()), dd(static_cast<std::size_t>(s.m * s.n));
    GPUCAL_CUDA_CHECK(cudaMemcpy(dx.data(), xb.data(), dx.bytes(), cudaMemcpyHostToDevice));
    GPUCAL_CUDA_CHECK(cudaMemcpy(dw.data(), wb.data(), dw.bytes(), cudaMemcpyHostToDevice));
    GPUCAL_CUDA_CHECK(cudaMemset(dd.data(), 0xFF, dd.bytes()));  // bf16 NaN poison
    std::string reason;
    const auto plan = gk::lt_gemm_plan::create(*ctx_, gk::gemm_dtype::bf16, {s.m, s.n, s.k}, &reason);
    ASSERT_TRUE(plan.has_value()) << reason;
    plan->run(*ctx_, dx.data(), dw.data(), dd.data(), nullptr, nullptr, nullptr);
    GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
    expect_close_bf16_output(read_bf16(dd), ref);
  }
}

TEST_F(lt_gemm_test, fp8_with_per_tensor_scales_matches_reference) {
  GPUCAL_REQUIRE_CC(8, 9);
  // 8-bit operands need K (the leading dimension) a multiple of 16; M and N are free here.
  for (const bool fast : {false, true}) {
    for (const shape_case s : {shape_case{1, 4096, 4096}, shape_case{7, 272, 160}, shape_case{33, 144, 96},
                               shape_case{300, 1024, 512}}) {
      SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k << " fast=" << fast);
      const unsigned seed = static_cast<unsigned>(s.m * 31 + s.n * 17 + s.k) + (fast ? 5u : 0u);
      const auto fp8 = [](float v) { return static_cast<double>(gk::round_to_fp8_e4m3(v)); };
      const auto x = random_values(static_cast<std::size_t>(s.m * s.k), seed, -2, 2, fp8);
      const auto w = random_values(static_cast<std::size_t>(s.n * s.k), seed + 1, -2, 2, fp8);
      const float x_scale = 0.5f, w_scale = 0.25f;
      std::vector<double> ref;
      gk::reference_gemm_tn(x, w, ref, s.m, s.n, s.k, static_cast<double>(x_scale) * w_scale);

      const auto to_bits = [](const std::vector<double>& v) {
        std::vector<std::uint8_t> b(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) b[i] = gk::float_to_fp8_e4m3_bits(static_cast<float>(v[i]));
        return b;
      };
      const auto xb = to_bits(x), wb = to_bits(w);
      gk::device_buffer<std::uint8_t> dx(xb.size()), dw(wb.size());
      gk::device_buffer<std::uint16_t> dd(static_cast<std::size_t>(s.m * s.n));
      gk::device_buffer<float> scales(2);
      const float host_scales[2] = {x_scale, w_scale};
      GPUCAL_CUDA_CHECK(cudaMemcpy(dx.data(), xb.data(), dx.bytes(), cudaMemcpyHostToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(dw.data(), wb.data(), dw.bytes(), cudaMemcpyHostToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(scales.data(), host_scales, sizeof host_scales, cudaMemcpyHostToDevice));
      GPUCAL_CUDA_CHECK(cudaMemset(dd.data(), 0xFF, dd.bytes()));
      std::string reason;
      const auto plan = gk::lt_gemm_plan::create(*ctx_, gk::gemm_dtype::fp8_e4m3, {s.m, s.n, s.k}, &reason, fast);
      ASSERT_TRUE(plan.has_value()) << reason;
      plan->run(*ctx_, dx.data(), dw.data(), dd.data(), scales.data(), scales.data() + 1, nullptr);
      GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
      if (fast) expect_close_bf16_output(read_bf16(dd), ref, 5e-2, 2e-2);
      else expect_close_bf16_output(read_bf16(dd), ref);
    }
  }
}

TEST_F(lt_gemm_test, int8_is_exact) {
  for (const shape_case s : {shape_case{1, 4096, 4096}, shape_case{7, 272, 160}, shape_case{33, 144, 96},
                             shape_case{300, 1024, 512}}) {
    SCOPED_TRACE(::testing::Message() << "m=" << s.m << " n=" << s.n << " k=" << s.k);
    std::mt19937 rng(static_cast<unsigned>(s.m + s.n + s.k));
    std::uniform_int_distribution<int> dist(-128, 127);
    std::vector<std::int8_t> x(static_cast<std::size_t>(s.m * s.k)), w(static_cast<std::size_t>(s.n * s.k));
    for (auto& v : x) v = static_cast<std::int8_t>(dist(rng));
    for (auto& v : w) v = static_cast<std::int8_t>(dist(rng));
    std::vector<std::int32_t> ref;
    gk::reference_gemm_tn_int8(x, w, ref, s.m, s.n, s.k);

    gk::device_buffer<std::int8_t> dx(x.size()), dw(w.size());
    gk::device_buffer<std::int32_t> dd(ref.size());
    GPUCAL_CUDA_CHECK(cudaMemcpy(dx.data(), x.data(), dx.bytes(), cudaMemcpyHostToDevice));
    GPUCAL_CUDA_CHECK(cudaMemcpy(dw.data(), w.data(), dw.bytes(), cudaMemcpyHostToDevice));
    GPUCAL_CUDA_CHECK(cudaMemset(dd.data(), 0x7F, dd.bytes()));
    std::string reason;
    const auto plan = gk::lt_gemm_plan::create(*ctx_, gk::gemm_dtype::int8, {s.m, s.n, s.k}, &reason);
    ASSERT_TRUE(plan.has_value()) << reason;
    plan->run(*ctx_, dx.data(), dw.data(), dd.data(), nullptr, nullptr, nullptr);
    GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<std::int32_t> got(ref.size());
    GPUCAL_CUDA_CHECK(cudaMemcpy(got.data(), dd.data(), dd.bytes(), cudaMemcpyDeviceToHost));
    std::size_t bad = 0;
    for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != ref[i];
    EXPECT_EQ(bad, 0u) << "first: got " << got[0] << " expected " << ref[0];
  }
}

TEST_F(lt_gemm_test, rejects_bad_shapes_with_a_reason) {
  std::string reason;
  EXPECT_FALSE(gk::lt_gemm_plan::create(*ctx_, gk::gemm_dtype::bf16, {0, 16, 16}, &reason).has_value());
  EXPECT_NE(reason.find("positive"), std::string::npos);
}

}  // namespace
