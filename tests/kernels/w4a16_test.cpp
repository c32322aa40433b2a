// GPU: W4A16 GEMM (versions 1, 2 and 3) against the host reference on the
// dequantized weights, at M = 1, 2, 3, 7, 16, 17, 64, 300 and N, K off the
// tile grid, symmetric and asymmetric,
// group 128 (and 64). Version 3 (tensor cores) reads the reordered tiles and
// multiplies bf16-rounded weights, which its reference rounds too; its K
// splits (1 to 5 here) go through the workspace. The reference multiplies exactly the bf16 activations
// and the dequantized int4 weights in double; the kernel accumulates in FP32
// and rounds to bf16: |got - ref| <= 1.6e-2 |ref| + 1.6e-2 rms(ref), relative
// Frobenius < 5e-3. Output poisoned, every element checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "device_vectors.hpp"
#include "gpu_fixture.hpp"
#include "gpucal/kernels/compare.hpp"
#include "gpucal/kernels/gemm_reference.hpp"
#include "gpucal/kernels/int4_pack.hpp"
#include "gpucal/kernels/w4a16_gemm.hpp"
#include "gpucal/kernels/w4a16_layout.hpp"

namespace gk = gpucal::kernels;
using gpucal::test::from_device_bf16;
using gpucal::test::random_bf16;
using gpucal::test::to_device;
using gpucal::test::to_device_bf16;

namespace {

class w4a16_test : public gpucal::test::gpu_test {};

struct shape {
  int m, n, k, group;
  bool symmetric;
};

// Random weights quantized for `s`, random activations, one launch of kernel
// `version` into a poisoned output, every element checked against the reference.
void check_version(const shape& s, int version) {
  SCOPED_TRACE(::testing::Message() << "v" << version << " m=" << s.m << " n=" << s.n << " k=" << s.k << " group=" << s.group
                                    << " symmetric=" << s.symmetric);
  std::mt19937 rng(static_cast<unsigned>(s.m * 7 + s.n * 3 + s.k + version));
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> w(static_cast<std::size_t>(s.n) * s.k);
  for (auto& v : w) v = dist(rng);
  const auto q = gk::quantize_int4(w, s.n, s.k, s.group, s.symmetric);
  auto wd = gk::dequantize_int4(q);
  if (version == 3)
    for (auto& v : wd) v = gk::round_to_bf16(v);  // v3's B operand is bf16
  const auto x = random_bf16(static_cast<std::size_t>(s.m) * s.k, static_cast<unsigned>(s.k + version));
  std::vector<double> ref;
  gk::reference_gemm_tn(x, std::vector<double>(wd.begin(), wd.end()), ref, s.m, s.n, s.k);

  auto dx = to_device_bf16(x);
  auto dp = to_device(version == 3 ? gk::reorder_int4_for_mma(q) : q.packed);
  auto dsc = to_device(q.scales);
  auto dz = to_device(q.zeros);
  gk::device_buffer<std::uint16_t> dd(static_cast<std::size_t>(s.m) * s.n);
  GPUCAL_CUDA_CHECK(cudaMemset(dd.data(), 0xFF, dd.bytes()));
  if (version == 3) {
    const std::size_t ws_bytes = gk::w4a16_gemm_v3_workspace_bytes(s.m, s.n, s.k, s.group);
    gk::device_buffer<std::uint8_t> ws(std::max<std::size_t>(ws_bytes, 1));
    GPUCAL_CUDA_CHECK(cudaMemset(ws.data(), 0xFF, ws.bytes()));  // NaN partials unless every slice writes its own
    gk::w4a16_gemm_v3(dx.data(), dp.data(), dsc.data(), dz.data(), dd.data(), s.m, s.n, s.k, s.group, ws.data(), ws_bytes, nullptr);
    GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
  } else {
    (version == 1 ? gk::w4a16_gemm : gk::w4a16_gemm_v2)(dx.data(), dp.data(), dsc.data(), dz.data(), dd.data(), s.m, s.n, s.k,
                                                         s.group, nullptr);
    GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
  }
  const auto got = from_device_bf16(dd);
  for (auto& r : ref) r = gk::round_to_bf16(static_cast<float>(r));
  const auto report = gk::compare_close(got, ref, 1.6e-2 * gk::rms(ref), 1.6e-2);
  EXPECT_TRUE(report.ok()) << report.describe(got, ref);
  EXPECT_LT(report.rel_frobenius, 5e-3) << report.describe(got, ref);
}

TEST_F(w4a16_test, matches_reference) {
  // Both versions; v2 runs its own kernel where k and group are multiples of 32
  // (M tiles of 1, 2, 4, 8, 16 rows) and falls back to v1 elsewhere (k = 520, 8).
  for (const int version : {1, 2})
    for (const shape s : {shape{1, 4096, 1024, 128, true}, shape{7, 300, 520, 128, false}, shape{64, 129, 256, 128, true},
                          shape{300, 72, 384, 64, false}, shape{1, 1, 8, 8, true}, shape{2, 33, 4096, 128, false},
                          shape{16, 257, 4096, 128, false}, shape{17, 64, 2048, 32, true}, shape{3, 1000, 14336, 128, true},
                          shape{5, 40, 4128, 128, false}})
      check_version(s, version);
}

TEST_F(w4a16_test, v3_tensor_cores_match_reference) {
  // M tiles of 1, 2 and 4 x 16 rows, several CTAs in M (300), K splits (1 to 28
  // on an H200), a partial last group (k = 192, group 128).
  for (const shape s : {shape{1, 4096, 1024, 128, true}, shape{7, 304, 512, 128, false}, shape{16, 256, 4096, 128, false},
                        shape{17, 64, 2048, 64, true}, shape{64, 128, 256, 128, true}, shape{300, 80, 384, 64, false},
                        shape{3, 1024, 14336, 128, true}, shape{5, 32, 192, 128, false}, shape{33, 48, 4096, 128, false},
                        shape{2, 16, 64, 64, true}, shape{128, 1024, 4096, 128, true}})
    check_version(s, 3);
}

TEST_F(w4a16_test, v3_refuses_shapes_off_its_tiles_and_a_short_workspace) {
  EXPECT_THROW(gk::w4a16_gemm_v3(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 40, 64, 64, nullptr, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::w4a16_gemm_v3(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 64, 96, 32, nullptr, 0, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::w4a16_gemm_v3(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 64, 192, 96, nullptr, 0, nullptr), std::invalid_argument);
  // Llama-3-8B's down projection at M = 1 splits K on any GPU with more than 16 SMs.
  const std::size_t need = gk::w4a16_gemm_v3_workspace_bytes(1, 4096, 14336, 128);
  if (need > 0) {
    EXPECT_THROW(gk::w4a16_gemm_v3(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4096, 14336, 128, nullptr, need - 4, nullptr),
                 std::invalid_argument);
  }
}

TEST_F(w4a16_test, rejects_k_off_the_packing_grid) {
  EXPECT_THROW(gk::w4a16_gemm(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 12, 128, nullptr), std::invalid_argument);
  EXPECT_THROW(gk::w4a16_gemm_v2(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 1, 12, 128, nullptr), std::invalid_argument);
}

}  // namespace
