// The tensor-core kernels' index math, on the CPU: the mma.m16n8k16 fragment
// maps (each operand element held by exactly one lane and register half),
// a warp's mma emulated from the fragments against a plain product, the
// prefill kernel's reuse of the S = Q K^T accumulators as the A operand of
// P V, and W4A16 v3's weight layout: the reorder's round trip, every bit of
// the reordered array used once, the kernel's decode path (AND, OR 0x43004300,
// subtract 128 + zero, multiply by the scale, in bf16) emulated lane by lane
// through the emulated mma against the reference GEMM, and the grid.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "gpucal/kernels/int4_pack.hpp"
#include "gpucal/kernels/mma_layout.hpp"
#include "gpucal/kernels/numeric.hpp"
#include "gpucal/kernels/prefill_tiles.hpp"
#include "gpucal/kernels/w4a16_layout.hpp"

namespace gk = gpucal::kernels;
namespace mma = gpucal::kernels::mma;

namespace {

// One warp's mma.m16n8k16 from its fragments: a[lane][8], b[lane][4] -> d[lane][4] (+= c).
void emulate_mma(const float (&a)[32][8], const float (&b)[32][4], float (&d)[32][4]) {
  float A[16][16] = {}, B[16][8] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) A[mma::a_element(lane, i).row][mma::a_element(lane, i).col] = a[lane][i];
    for (int i = 0; i < 4; ++i) B[mma::b_element(lane, i).row][mma::b_element(lane, i).col] = b[lane][i];
  }
  for (int lane = 0; lane < 32; ++lane)
    for (int i = 0; i < 4; ++i) {
      const mma::rc e = mma::c_element(lane, i);
      double s = 0;
      for (int kk = 0; kk < 16; ++kk) s += static_cast<double>(A[e.row][kk]) * B[kk][e.col];
      d[lane][i] += static_cast<float>(s);
    }
}

TEST(mma_layout, every_operand_element_is_held_once) {
  std::set<std::pair<int, int>> a, b, c;
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) a.insert({mma::a_element(lane, i).row, mma::a_element(lane, i).col});
    for (int i = 0; i < 4; ++i) b.insert({mma::b_element(lane, i).row, mma::b_element(lane, i).col});
    for (int i = 0; i < 4; ++i) c.insert({mma::c_element(lane, i).row, mma::c_element(lane, i).col});
  }
  EXPECT_EQ(a.size(), 256u);
  EXPECT_EQ(b.size(), 128u);
  EXPECT_EQ(c.size(), 128u);
  for (const auto& [r, col] : a) EXPECT_TRUE(r < 16 && col < 16 && r >= 0 && col >= 0);
  for (const auto& [r, col] : b) EXPECT_TRUE(r < 16 && col < 8 && r >= 0 && col >= 0);
  // PTX's own examples: lane 5 (group 1, thread 1) holds A(1, 2), A(9, 3), A(1, 10); B(2, 1), B(11, 1); C(9, 3).
  EXPECT_EQ(mma::a_element(5, 0).row, 1);
  EXPECT_EQ(mma::a_element(5, 0).col, 2);
  EXPECT_EQ(mma::a_element(5, 3).row, 9);
  EXPECT_EQ(mma::a_element(5, 3).col, 3);
  EXPECT_EQ(mma::a_element(5, 4).col, 10);
  EXPECT_EQ(mma::b_element(5, 0).row, 2);
  EXPECT_EQ(mma::b_element(5, 3).row, 11);
  EXPECT_EQ(mma::b_element(5, 3).col, 1);
  EXPECT_EQ(mma::c_element(5, 3).row, 9);
  EXPECT_EQ(mma::c_element(5, 3).col, 3);
}

TEST(mma_layout, emulated_mma_is_the_matrix_product) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1, 1);
  float A[16][16], B[16][8];
  for (auto& r : A) for (auto& v : r) v = u(rng);
  for (auto& r : B) for (auto& v : r) v = u(rng);
  float a[32][8], b[32][4], d[32][4] = {};
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < 8; ++i) a[lane][i] = A[mma::a_element(lane, i).row][mma::a_element(lane, i).col];
    for (int i = 0; i < 4; ++i) b[lane][i] = B[mma::b_element(lane, i).row][mma::b_element(lane, i).col];
  }
  emulate_mma(a, b, d);
  for (int r = 0; r < 16; ++r)
    for (int col = 0; col < 8; ++col) {
      double s = 0;
      for (int kk = 0; kk < 16; ++kk) s += static_cast<double>(A[r][kk]) * B[kk][col];
      bool seen = false;
      for (int lane = 0; lane < 32; ++lane)
        for (int i = 0; i < 4; ++i)
          if (mma::c_element(lane, i).row == r && mma::c_element(lane, i).col == col) {
            EXPECT_NEAR(d[lane][i], s, 1e-5);
            seen = true;
          }
      EXPECT_TRUE(seen);
    }
}

TEST(mma_layout, score_accumulators_are_the_next_a_operand) {
  // Prefill attention: the accumulators of S tiles 2j and 2j + 1 (16 x 8 each)
  // become, as they stand in each lane, the A operand of k16 step j of P V:
  // A register q holds C elements 2 (q % 2), 2 (q % 2) + 1 of tile 2j + q / 2.
  for (int lane = 0; lane < 32; ++lane)
    for (int q = 0; q < 4; ++q)
      for (int h = 0; h < 2; ++h) {
        const mma::rc a = mma::a_element(lane, 2 * q + h);
        const mma::rc c = mma::c_element(lane, 2 * (q % 2) + h);
        EXPECT_EQ(a.row, c.row);
        EXPECT_EQ(a.col, c.col + 8 * (q / 2));
      }
}

TEST(prefill_tiles, the_walk_covers_every_attended_pair_and_no_more) {
  // CTAs of 64 rows in warps of 16, tiles of 64 keys, as the kernel.
  for (const int qlen : {1, 2, 15, 16, 17, 63, 64, 65, 130, 200})
    for (const int prefix : {0, 1, 5, 63, 64, 100, 1000}) {
      const int ctx = prefix + qlen;
      for (int q0 = 0; q0 < qlen; q0 += 64) {
        const int kv_end = gk::prefill_keys_end(qlen, ctx, q0, 64);
        ASSERT_LE(kv_end, ctx);
        int needed_end = 0;
        for (int w0 = q0; w0 < q0 + 64; w0 += 16) {
          if (w0 >= qlen) continue;  // an idle warp computes nothing
          const int warp_end = gk::prefill_keys_end(qlen, ctx, w0, 16);
          for (int r = w0; r < w0 + 16 && r < qlen; ++r) {
            const int pos = gk::prefill_row_position(qlen, ctx, r);
            ASSERT_EQ(pos, prefix + r);
            // Every key 0..pos is in a tile the CTA loads (key < kv_end) and the warp computes (tile start < warp_end).
            for (int key = 0; key <= pos; ++key) {
              ASSERT_LT(key, kv_end);
              ASSERT_LT(key / 64 * 64, warp_end) << qlen << " " << prefix << " row " << r << " key " << key;
            }
            needed_end = std::max(needed_end, pos + 1);
          }
        }
        EXPECT_EQ(kv_end, needed_end) << "qlen " << qlen << " prefix " << prefix << " q0 " << q0;  // no key past the last needed
      }
    }
  // Rows past the chunk take its last query's position.
  EXPECT_EQ(gk::prefill_row_position(5, 12, 9), 11);
}

TEST(w4a16_layout, slots_are_the_b_fragment_and_a_bijection) {
  std::set<std::tuple<int, int, int>> used;
  for (int n = 0; n < 16; ++n)
    for (int k = 0; k < 64; ++k) {
      const gk::w4_code_slot s = gk::w4_slot_in_tile(n, k);
      ASSERT_TRUE(s.lane >= 0 && s.lane < 32 && s.word >= 0 && s.word < 4 && s.bit >= 0 && s.bit <= 28 && s.bit % 4 == 0);
      EXPECT_TRUE(used.insert({s.lane, s.word, s.bit}).second) << n << "," << k;
      // The lane decodes pair p = (bit % 16) / 4 and half = bit / 16 back to (n, k) ...
      const int pair = (s.bit % 16) / 4, half = s.bit / 16;
      const mma::rc e = gk::w4_element_in_tile(s.lane, s.word, pair, half);
      EXPECT_EQ(e.row, n);
      EXPECT_EQ(e.col, k);
      // ... which is element 2 r + half of B register r = p % 2 of n8 tile p / 2 at k16 step `word`.
      const mma::rc b = mma::b_element(s.lane, 2 * (pair % 2) + half);
      EXPECT_EQ(n, (pair / 2) * 8 + b.col);
      EXPECT_EQ(k, s.word * 16 + b.row);
    }
  EXPECT_EQ(used.size(), 1024u);
}

gk::int4_weights random_weights(std::int64_t n, std::int64_t k, std::int64_t group, bool symmetric, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.05f);
  std::vector<float> w(static_cast<std::size_t>(n * k));
  for (auto& v : w) v = dist(rng);
  return gk::quantize_int4(w, n, k, group, symmetric);
}

TEST(w4a16_layout, reorder_round_trips_every_code) {
  for (const bool symmetric : {true, false}) {
    const auto q = random_weights(48, 192, 64, symmetric, symmetric ? 3u : 4u);
    const auto tiles = gk::reorder_int4_for_mma(q);
    ASSERT_EQ(tiles.size(), q.packed.size());
    for (std::int64_t r = 0; r < q.n; ++r)
      for (std::int64_t c = 0; c < q.k; ++c) ASSERT_EQ(gk::int4_mma_code(tiles, q.k, r, c), gk::int4_code(q, r, c)) << r << "," << c;
    // The same codes, only moved: the nibble histograms agree.
    std::vector<int> before(16), after(16);
    for (auto w : q.packed) for (int i = 0; i < 8; ++i) ++before[(w >> (4 * i)) & 0xF];
    for (auto w : tiles) for (int i = 0; i < 8; ++i) ++after[(w >> (4 * i)) & 0xF];
    EXPECT_EQ(before, after);
  }
  EXPECT_THROW(gk::reorder_int4_for_mma(random_weights(24, 64, 64, true, 1)), std::invalid_argument);   // n % 16
  EXPECT_THROW(gk::reorder_int4_for_mma(random_weights(16, 96, 32, true, 1)), std::invalid_argument);   // k % 64
}

TEST(w4a16_layout, magic_number_turns_a_code_into_128_plus_code) {
  for (std::uint32_t c = 0; c < 16; ++c) {
    const std::uint32_t v = ((c | (c << 16)) & 0x000F000Fu) | 0x43004300u;
    EXPECT_EQ(gk::bf16_bits_to_float(static_cast<std::uint16_t>(v & 0xFFFF)), 128.0f + static_cast<float>(c));
    EXPECT_EQ(gk::bf16_bits_to_float(static_cast<std::uint16_t>(v >> 16)), 128.0f + static_cast<float>(c));
  }
}

// The kernel's arithmetic for one M tile, lane by lane: weights decoded from
// the reordered words as bf16 ((128 + code) - (128 + zero) is exact, the
// product with the scale rounds once), activations gathered by a_element,
// FP32 accumulation through the emulated mma.
TEST(w4a16_layout, emulated_v3_tile_walk_matches_the_reference) {
  const std::int64_t m = 5, n = 32, k = 256, group = 128;
  for (const bool symmetric : {true, false}) {
    const auto q = random_weights(n, k, group, symmetric, 7);
    const auto tiles = gk::reorder_int4_for_mma(q);
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<float> x(static_cast<std::size_t>(m * k));
    for (auto& v : x) v = gk::round_to_bf16(u(rng));
    const std::int64_t k_tiles = k / 64;
    std::vector<double> got(static_cast<std::size_t>(m * n), 0.0);
    for (std::int64_t nb = 0; nb < n / 16; ++nb) {
      float acc[2][32][4] = {};
      for (std::int64_t kb = 0; kb < k_tiles; ++kb) {
        const std::int64_t gi = kb * 64 / group;
        for (int w = 0; w < 4; ++w) {
          float a[32][8], b[2][32][4];
          for (int lane = 0; lane < 32; ++lane) {
            const std::uint32_t word = tiles[static_cast<std::size_t>(gk::w4_tile_word(nb, kb, k_tiles) + lane * 4 + w)];
            for (int p = 0; p < 4; ++p) {
              const int nt = p / 2, r = p % 2;
              const std::int64_t row = nb * 16 + nt * 8 + (lane >> 2);
              const float s = gk::bf16_bits_to_float(q.scales[static_cast<std::size_t>(row * q.groups() + gi)]);
              const float z128 = 128.0f + static_cast<float>(q.zeros[static_cast<std::size_t>(row * q.groups() + gi)]);
              const std::uint32_t v = ((word >> (4 * p)) & 0x000F000Fu) | 0x43004300u;
              for (int h = 0; h < 2; ++h) {
                const float code128 = gk::bf16_bits_to_float(static_cast<std::uint16_t>(h ? v >> 16 : v & 0xFFFF));
                b[nt][lane][2 * r + h] = gk::round_to_bf16(gk::round_to_bf16(code128 - z128) * s);
              }
            }
            for (int i = 0; i < 8; ++i) {
              const mma::rc e = mma::a_element(lane, i);
              a[lane][i] = e.row < m ? x[static_cast<std::size_t>(e.row * k + kb * 64 + w * 16 + e.col)] : 0.0f;
            }
          }
          for (int nt = 0; nt < 2; ++nt) emulate_mma(a, b[nt], acc[nt]);
        }
      }
      for (int nt = 0; nt < 2; ++nt)
        for (int lane = 0; lane < 32; ++lane)
          for (int i = 0; i < 4; ++i) {
            const mma::rc e = mma::c_element(lane, i);
            if (e.row < m) got[static_cast<std::size_t>(e.row * n + nb * 16 + nt * 8 + e.col)] = acc[nt][lane][i];
          }
    }
    const auto wd = gk::dequantize_int4(q);  // (code - zero) x scale, exact in float
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t c = 0; c < n; ++c) {
        double ref = 0, mag = 0;
        for (std::int64_t kk = 0; kk < k; ++kk) {
          const double w = gk::round_to_bf16(wd[static_cast<std::size_t>(c * k + kk)]);
          ref += x[static_cast<std::size_t>(r * k + kk)] * w;
          mag += std::fabs(x[static_cast<std::size_t>(r * k + kk)] * w);
        }
        EXPECT_NEAR(got[static_cast<std::size_t>(r * n + c)], ref, 1e-5 * mag + 1e-7) << r << "," << c;
      }
  }
}

TEST(w4a16_layout, grid_fills_the_gpu_and_never_leaves_an_empty_slice) {
  // Llama-3-8B's down projection at M = 1 on 132 SMs: 64 CTAs want ceil(528 / 64) = 9 slices
  // of 25 tiles (the last 24); partials 9 x 8 bytes per output against 7168 bytes of weights.
  const auto down = gk::choose_w4a16_grid(1, 4096, 14336, 132);
  EXPECT_EQ(down.m_tiles, 1);
  EXPECT_EQ(down.ctas_n, 64);
  EXPECT_EQ(down.ctas_m, 1);
  EXPECT_EQ(down.splits, 9);
  EXPECT_EQ(down.k_tiles_per_split, 25);
  EXPECT_EQ(down.workspace_bytes(1, 4096), 9 * 4096 * 4);
  // M = 16 on the same layer: 64 CTAs leave SMs idle, so partials may take a quarter of
  // the weight bytes: 14336 / (64 x 16) = 14 slices at most; 9 wanted, 9 of 25 tiles.
  EXPECT_EQ(gk::choose_w4a16_grid(16, 4096, 14336, 132).splits, 9);
  // M = 64: 14336 / (64 x 64) = 3 slices of 75 tiles (the last 74): 192 CTAs instead of 64.
  const auto down64 = gk::choose_w4a16_grid(64, 4096, 14336, 132);
  EXPECT_EQ(down64.splits, 3);
  EXPECT_EQ(down64.k_tiles_per_split, 75);
  // gate|up at M = 64: 448 CTAs want 2 slices, but 2 x 64 rows of partials would
  // cost half the weight traffic (4096 / (160 x 64) < 1): one slice, no workspace.
  const auto up = gk::choose_w4a16_grid(64, 28672, 4096, 132);
  EXPECT_EQ(up.m_tiles, 4);
  EXPECT_EQ(up.ctas_n, 448);
  EXPECT_EQ(up.splits, 1);
  EXPECT_EQ(up.k_tiles_per_split, 64);
  EXPECT_EQ(up.workspace_bytes(64, 28672), 0);
  // M = 17 takes two 16-row tiles, M = 300 five CTAs of 64 rows.
  EXPECT_EQ(gk::choose_w4a16_grid(17, 64, 64, 132).m_tiles, 2);
  EXPECT_EQ(gk::choose_w4a16_grid(300, 64, 64, 132).ctas_m, 5);
  for (std::int64_t m : {1, 7, 16, 64, 300})
    for (std::int64_t k : {64, 576, 4096, 14336})
      for (int sms : {1, 78, 132}) {
        const auto g = gk::choose_w4a16_grid(m, 4096, k, sms);
        EXPECT_GE(g.splits, 1);
        EXPECT_GE(g.k_tiles_per_split, 1);
        EXPECT_GE(static_cast<std::int64_t>(g.splits) * g.k_tiles_per_split, k / 64);
        EXPECT_LT(static_cast<std::int64_t>(g.splits - 1) * g.k_tiles_per_split, k / 64);  // the last slice is not empty
        if (g.splits > 1) {
          EXPECT_GE(g.k_tiles_per_split, 8);
          // Partials under a tenth of the weight bytes, a quarter when the unsplit grid leaves SMs idle.
          EXPECT_LE((static_cast<std::int64_t>(g.ctas_n) * g.ctas_m < sms ? 64 : 160) * g.splits * m, k);
        }
      }
  // One workspace for a range of m: the largest any m needs (not the last m's).
  std::int64_t most = 0;
  for (std::int64_t m = 1; m <= 64; ++m) most = std::max(most, gk::choose_w4a16_grid(m, 4096, 4096, 132).workspace_bytes(m, 4096));
  EXPECT_EQ(gk::w4a16_max_workspace_bytes(64, 4096, 4096, 132), most);
  EXPECT_GT(most, gk::choose_w4a16_grid(1, 4096, 4096, 132).workspace_bytes(1, 4096));  // m = 1 is not the largest
  EXPECT_EQ(gk::choose_w4a16_grid(64, 4096, 4096, 132).splits, 1);  // 4096 / (64 x 64) = 1
  // The grid's y limit.
  EXPECT_EQ(gk::choose_w4a16_grid(gk::w4a16_max_m, 64, 64, 132).ctas_m, 65535);
  EXPECT_THROW(gk::choose_w4a16_grid(gk::w4a16_max_m + 1, 64, 64, 132), std::invalid_argument);
  EXPECT_THROW(gk::choose_w4a16_grid(1, 40, 64, 132), std::invalid_argument);
  EXPECT_THROW(gk::choose_w4a16_grid(1, 64, 100, 132), std::invalid_argument);
  EXPECT_THROW(gk::choose_w4a16_grid(0, 64, 64, 132), std::invalid_argument);
}

}  // namespace
