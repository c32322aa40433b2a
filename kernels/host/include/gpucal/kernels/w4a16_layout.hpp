// W4A16 v3's weight layout (the offline reorder of the int4_weights codes)
// and its grid. The codes of W[N][K] are stored in tiles of 16 rows (n) x 64
// inputs (k), tile (nb, kb) at word (nb x K/64 + kb) x 128: 512 bytes, one
// 16-byte word per lane of a warp. Word w of a lane holds the tile's k16 step
// w: for both n8 halves nt of the tile and both B registers r of
// mma.m16n8k16 (mma_layout.hpp), the register's two codes sit at bits
// 4 p and 16 + 4 p with p = 2 nt + r, so a lane turns them into a bf16x2
// B register with one AND, one OR with 0x43004300 (bf16 128.0 in both
// halves, the code landing in the mantissa), a subtraction of 128 + zero and
// a multiplication by the scale. Scales and zero points keep their
// [n][groups] layout. Host code and __host__ __device__ index math, tested on
// the CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "gpucal/kernels/int4_pack.hpp"
#include "gpucal/kernels/mma_layout.hpp"

namespace gpucal::kernels {

inline constexpr int w4_tile_n = 16, w4_tile_k = 64;
inline constexpr int w4_tile_words = w4_tile_n * w4_tile_k / 8;  ///< 128 uint32: 32 lanes x 4

struct w4_code_slot {
  int lane, word, bit;  ///< word 0..3 of the lane's 16 bytes, bit offset of the 4-bit code
};

/// Where code (n_in, k_in) of a tile (0 <= n_in < 16, 0 <= k_in < 64) is stored.
GPUCAL_HD w4_code_slot w4_slot_in_tile(int n_in, int k_in) {
  const int kk = k_in & 15, nt = n_in >> 3, r = kk >> 3;
  return {(n_in & 7) * 4 + ((kk & 7) >> 1), k_in >> 4, 4 * (2 * nt + r) + 16 * (kk & 1)};
}

/// The inverse: (n_in, k_in) of the code a lane finds in `word`, pair p (0..3), half (0 low, 1 high).
GPUCAL_HD mma::rc w4_element_in_tile(int lane, int word, int pair, int half) {
  return {(pair >> 1) * 8 + (lane >> 2), word * 16 + 2 * (lane & 3) + half + 8 * (pair & 1)};
}

/// First uint32 of tile (nb, kb) for a K of k_tiles x 64.
GPUCAL_HD std::int64_t w4_tile_word(std::int64_t nb, std::int64_t kb, std::int64_t k_tiles) {
  return (nb * k_tiles + kb) * w4_tile_words;
}

/// q's codes in the v3 layout; needs n a multiple of 16, k a multiple of 64
/// (throws std::invalid_argument naming the size otherwise).
std::vector<std::uint32_t> reorder_int4_for_mma(const int4_weights& q);

/// Code (row, col) read back from a v3-layout array of a [n][k] weight.
int int4_mma_code(const std::vector<std::uint32_t>& tiles, std::int64_t k, std::int64_t row, std::int64_t col);

/// How W4A16 v3 covers a GEMM: CTAs of 4 warps, one 16-row tile of W each
/// and all `m_tiles` x 16 activation rows of the CTA (so each weight byte is
/// read once per 16 x m_tiles rows); K split so that about four CTAs per SM
/// are in flight, each slice at least 8 k-tiles (512 inputs) long and the
/// FP32 partial sums (written, then read back by the reduction) under a tenth
/// of the weight bytes, or a quarter where the unsplit grid has fewer CTAs
/// than the GPU has SMs.
struct w4a16_grid {
  int m_tiles = 1;             ///< 16-row activation tiles per CTA: 1, 2 or 4
  int ctas_n = 0, ctas_m = 0;  ///< ceil(n / 64), ceil(m / (16 m_tiles))
  int splits = 1;              ///< K slices; above 1 the partial sums go through the workspace
  int k_tiles_per_split = 0;   ///< 64-input tiles per slice
  /// FP32 partial sums: splits x m x n floats when splits > 1, else none.
  std::int64_t workspace_bytes(std::int64_t m, std::int64_t n) const { return splits > 1 ? splits * m * n * 4 : 0; }
};

/// Largest M: 65535 CTA rows of 64 activation rows (the grid's y limit).
inline constexpr std::int64_t w4a16_max_m = 65535LL * 64;

/// The grid for an m x n x k GEMM on `sms` multiprocessors (1 <= m <=
/// w4a16_max_m, n % 16 == 0, k % 64 == 0, sms >= 1; throws
/// std::invalid_argument otherwise).
w4a16_grid choose_w4a16_grid(std::int64_t m, std::int64_t n, std::int64_t k, int sms);

/// The workspace that serves every m from 1 to max_m: the split, and so the
/// workspace, is not monotonic in m (the slices shrink as m grows while the
/// partials per slice grow), so a caller sizing once for a batch range takes
/// this maximum.
std::int64_t w4a16_max_workspace_bytes(std::int64_t max_m, std::int64_t n, std::int64_t k, int sms);

}  // namespace gpucal::kernels
