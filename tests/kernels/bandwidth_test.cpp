// GPU: the bandwidth probes write every byte they must (and only those), on
// sizes that are not multiples of the 16-byte vector, with random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "device_vectors.hpp"
#include "gpu_fixture.hpp"
#include "gpucal/kernels/bandwidth.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_buffer.hpp"

namespace gk = gpucal::kernels;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

class bandwidth_test : public gpucal::test::gpu_test {
protected:
  int grid() const { return gk::bandwidth_grid(device_->sm_count); }

  // Random bytes from `seed` through `launch(dst, src, bytes)`, a copy probe:
  // every byte copied, nothing written past the end.
  template <typename Launch>
  void check_copy(std::size_t bytes, unsigned seed, Launch launch) {
    const auto src_host = random_bytes(bytes, seed);
    gk::device_buffer<std::uint8_t> src(bytes + 16), dst(bytes + 64);
    if (bytes) GPUCAL_CUDA_CHECK(cudaMemcpy(src.data(), src_host.data(), bytes, cudaMemcpyHostToDevice));
    GPUCAL_CUDA_CHECK(cudaMemset(dst.data(), 0xCD, dst.bytes()));
    launch(dst.data(), src.data(), bytes);
    const auto out = gpucal::test::from_device(dst);
    for (std::size_t i = 0; i < bytes; ++i) ASSERT_EQ(out[i], src_host[i]) << "byte " << i;
    for (std::size_t i = bytes; i < out.size(); ++i) ASSERT_EQ(out[i], 0xCD) << "guard byte " << i;
  }

  // Random bytes from `seed` through `launch(src, bytes, block_sums)`, a read
  // probe making `passes` sweeps: the block sums add up to the wrapping sum of
  // the little-endian uint32 words, once per pass.
  template <typename Launch>
  void check_read(std::size_t bytes, unsigned seed, int passes, Launch launch) {
    const auto host = random_bytes(bytes, seed);
    std::uint32_t one = 0;
    for (std::size_t i = 0; i + 4 <= bytes; i += 4) {
      std::uint32_t w;
      std::memcpy(&w, &host[i], 4);
      one += w;
    }
    const auto expected = static_cast<std::uint32_t>(one * static_cast<std::uint32_t>(passes));  // wrapping
    gk::device_buffer<std::uint8_t> src(bytes + 16);
    if (bytes) GPUCAL_CUDA_CHECK(cudaMemcpy(src.data(), host.data(), bytes, cudaMemcpyHostToDevice));
    gk::device_buffer<std::uint32_t> sums(static_cast<std::size_t>(grid()));
    GPUCAL_CUDA_CHECK(cudaMemset(sums.data(), 0xFF, sums.bytes()));  // every block must overwrite its slot
    launch(src.data(), bytes, sums.data());
    std::uint32_t got = 0;
    for (std::uint32_t s : gpucal::test::from_device(sums)) got += s;
    EXPECT_EQ(got, expected);
  }
};

// Byte sizes: zero, below one vector, vector multiples, awkward tails, and a few MiB.
const std::size_t sizes[] = {0, 4, 12, 16, 20, 1000, 4096 + 12, (3u << 20) + 4};

TEST_F(bandwidth_test, write_fills_every_byte_and_nothing_past_it) {
  for (std::size_t bytes : sizes) {
    SCOPED_TRACE(bytes);
    gk::device_buffer<std::uint8_t> buf(bytes + 64);
    GPUCAL_CUDA_CHECK(cudaMemset(buf.data(), 0xAB, buf.bytes()));  // poison, including a guard band
    const std::uint32_t pattern = 0x11223344u ^ static_cast<std::uint32_t>(bytes);
    gk::bandwidth_write(buf.data(), bytes, pattern, grid(), nullptr);
    std::vector<std::uint8_t> host(buf.size());
    GPUCAL_CUDA_CHECK(cudaMemcpy(host.data(), buf.data(), buf.bytes(), cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < bytes; ++i)
      ASSERT_EQ(host[i], static_cast<std::uint8_t>(pattern >> (8 * (i % 4)))) << "byte " << i;
    for (std::size_t i = bytes; i < host.size(); ++i) ASSERT_EQ(host[i], 0xAB) << "guard byte " << i;
  }
}

TEST_F(bandwidth_test, copy_moves_every_byte) {
  for (std::size_t bytes : sizes) {
    SCOPED_TRACE(bytes);
    ASSERT_NO_FATAL_FAILURE(check_copy(bytes, static_cast<unsigned>(bytes) + 1, [&](void* dst, const void* src, std::size_t n) {
      gk::bandwidth_copy(dst, src, n, grid(), nullptr);
    }));
  }
}

TEST_F(bandwidth_test, read_sums_every_word) {
  for (std::size_t bytes : sizes) {
    SCOPED_TRACE(bytes);
    ASSERT_NO_FATAL_FAILURE(check_read(bytes, static_cast<unsigned>(bytes) + 7, 1,
                                       [&](const void* src, std::size_t n, std::uint32_t* sums) {
                                         gk::bandwidth_read(src, n, sums, grid(), nullptr);
                                       }));
  }
}

// v2 (several L2 sweeps in one launch): every word summed once per pass, and
// every byte copied, with nothing written past the end.
TEST_F(bandwidth_test, v2_read_sums_every_word_once_per_pass) {
  for (std::size_t bytes : sizes) {
    for (int passes : {1, 3, 64}) {
      SCOPED_TRACE(::testing::Message() << bytes << " bytes, " << passes << " passes");
      ASSERT_NO_FATAL_FAILURE(check_read(bytes, static_cast<unsigned>(bytes) + 11, passes,
                                         [&](const void* src, std::size_t n, std::uint32_t* sums) {
                                           gk::bandwidth_read_v2(src, n, passes, sums, grid(), nullptr);
                                         }));
    }
  }
}

TEST_F(bandwidth_test, v2_copy_moves_every_byte) {
  for (std::size_t bytes : sizes) {
    SCOPED_TRACE(bytes);
    ASSERT_NO_FATAL_FAILURE(check_copy(bytes, static_cast<unsigned>(bytes) + 5, [&](void* dst, const void* src, std::size_t n) {
      gk::bandwidth_copy_v2(dst, src, n, 5, grid(), nullptr);
    }));
  }
}

TEST_F(bandwidth_test, triad_matches_fma_exactly) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{1024}, std::size_t{1'000'003}}) {
    SCOPED_TRACE(n);
    std::mt19937 rng(static_cast<unsigned>(n));
    std::uniform_real_distribution<float> dist(-10.0f, 10.0f);
    std::vector<float> b(n), c(n);
    for (std::size_t i = 0; i < n; ++i) {
      b[i] = dist(rng);
      c[i] = dist(rng);
    }
    const float s = 3.0f / 7.0f;
    gk::device_buffer<float> db(n + 4), dc(n + 4), da(n + 4);
    if (n) {
      GPUCAL_CUDA_CHECK(cudaMemcpy(db.data(), b.data(), n * sizeof(float), cudaMemcpyHostToDevice));
      GPUCAL_CUDA_CHECK(cudaMemcpy(dc.data(), c.data(), n * sizeof(float), cudaMemcpyHostToDevice));
    }
    GPUCAL_CUDA_CHECK(cudaMemset(da.data(), 0xFF, da.bytes()));  // NaN poison
    gk::bandwidth_triad(da.data(), db.data(), dc.data(), s, n, grid(), nullptr);
    std::vector<float> a(n + 4);
    GPUCAL_CUDA_CHECK(cudaMemcpy(a.data(), da.data(), da.bytes(), cudaMemcpyDeviceToHost));
    for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(a[i], std::fma(s, c[i], b[i])) << "element " << i;
    for (std::size_t i = n; i < n + 4; ++i) ASSERT_TRUE(std::isnan(a[i])) << "guard " << i;
  }
}

TEST_F(bandwidth_test, random_fills_are_not_constant) {
  const std::size_t n = 1 << 20;
  gk::device_buffer<std::uint8_t> buf(n);
  GPUCAL_CUDA_CHECK(cudaMemset(buf.data(), 0, n));
  gk::fill_random_bf16(buf.data(), n / 2, -1.0f, 1.0f, 42, nullptr);
  GPUCAL_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<std::uint16_t> host(n / 2);
  GPUCAL_CUDA_CHECK(cudaMemcpy(host.data(), buf.data(), n, cudaMemcpyDeviceToHost));
  std::size_t zeros = 0;
  for (auto v : host) zeros += (v == 0 || v == 0x8000);
  EXPECT_LT(zeros, host.size() / 1000);  // never time zeros
}

}  // namespace
