// W4A16 v3's weight reorder and grid (see w4a16_layout.hpp).
#include "gpucal/kernels/w4a16_layout.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace gpucal::kernels {

namespace {

void check_tiles(std::int64_t n, std::int64_t k, const char* who) {
  if (n <= 0 || n % w4_tile_n)
    throw std::invalid_argument(std::string(who) + ": n must be a positive multiple of 16 (n=" + std::to_string(n) + ")");
  if (k <= 0 || k % w4_tile_k)
    throw std::invalid_argument(std::string(who) + ": k must be a positive multiple of 64 (k=" + std::to_string(k) + ")");
}

}  // namespace

std::vector<std::uint32_t> reorder_int4_for_mma(const int4_weights& q) {
  check_tiles(q.n, q.k, "reorder_int4_for_mma");
  const std::int64_t k_tiles = q.k / w4_tile_k;
  std::vector<std::uint32_t> out(static_cast<std::size_t>(q.n * q.k / 8), 0u);
  for (std::int64_t row = 0; row < q.n; ++row)
    for (std::int64_t col = 0; col < q.k; ++col) {
      const w4_code_slot s = w4_slot_in_tile(static_cast<int>(row % w4_tile_n), static_cast<int>(col % w4_tile_k));
      const std::int64_t word = w4_tile_word(row / w4_tile_n, col / w4_tile_k, k_tiles) + s.lane * 4 + s.word;
      out[static_cast<std::size_t>(word)] |= static_cast<std::uint32_t>(int4_code(q, row, col)) << s.bit;
    }
  return out;
}

int int4_mma_code(const std::vector<std::uint32_t>& tiles, std::int64_t k, std::int64_t row, std::int64_t col) {
  const w4_code_slot s = w4_slot_in_tile(static_cast<int>(row % w4_tile_n), static_cast<int>(col % w4_tile_k));
  const std::int64_t word = w4_tile_word(row / w4_tile_n, col / w4_tile_k, k / w4_tile_k) + s.lane * 4 + s.word;
  return static_cast<int>((tiles.at(static_cast<std::size_t>(word)) >> s.bit) & 0xFu);
}

w4a16_grid choose_w4a16_grid(std::int64_t m, std::int64_t n, std::int64_t k, int sms) {
  check_tiles(n, k, "choose_w4a16_grid");
  if (m <= 0 || m > w4a16_max_m || sms <= 0)
    throw std::invalid_argument("choose_w4a16_grid: m must be 1.." + std::to_string(w4a16_max_m) + " and sms positive (m=" +
                                std::to_string(m) + ")");
  w4a16_grid g;
  g.m_tiles = m <= 16 ? 1 : m <= 32 ? 2 : 4;
  g.ctas_n = static_cast<int>((n / w4_tile_n + 3) / 4);
  g.ctas_m = static_cast<int>((m + 16 * g.m_tiles - 1) / (16 * g.m_tiles));
  const std::int64_t k_tiles = k / w4_tile_k, base = static_cast<std::int64_t>(g.ctas_n) * g.ctas_m;
  const std::int64_t wanted = (4 * static_cast<std::int64_t>(sms) + base - 1) / base;
  // Slices of >= 8 k-tiles, and FP32 partials (4 bytes written and read back
  // per slice and output) under a tenth of the weight bytes (k / 2 per output
  // row: 8 x splits x m <= k / 20), or under a quarter when the unsplit grid
  // leaves SMs idle (8 x splits x m <= k / 8).
  const std::int64_t by_partials = base < sms ? k / (64 * m) : k / (160 * m);
  const std::int64_t splits = std::clamp<std::int64_t>(wanted, 1, std::max<std::int64_t>(1, std::min(k_tiles / 8, by_partials)));
  g.k_tiles_per_split = static_cast<int>((k_tiles + splits - 1) / splits);
  g.splits = static_cast<int>((k_tiles + g.k_tiles_per_split - 1) / g.k_tiles_per_split);  // no empty slice
  return g;
}

std::int64_t w4a16_max_workspace_bytes(std::int64_t max_m, std::int64_t n, std::int64_t k, int sms) {
  // Two slices need 128 x m <= k: beyond m = k / 128 every grid is unsplit.
  std::int64_t most = 0;
  for (std::int64_t m = 1; m <= std::min(max_m, k / 128); ++m) most = std::max(most, choose_w4a16_grid(m, n, k, sms).workspace_bytes(m, n));
  if (max_m >= 1) choose_w4a16_grid(max_m, n, k, sms);  // checks max_m and the shape like every grid
  return most;
}

}  // namespace gpucal::kernels
