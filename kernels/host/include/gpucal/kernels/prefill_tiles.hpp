// Which keys prefill attention walks (kernels/prefill_attention.cu): a
// sequence's chunk of `qlen` queries ends its `ctx` cached tokens, so query
// row r (0-based in the chunk) sits at position ctx - qlen + r and attends to
// keys 0..that position. A CTA takes `rows` consecutive query rows from q0,
// a warp 16 of them; rows past the chunk take the last query's position
// (computed, never stored). __host__ __device__: the kernel walks with these
// and tests/kernels/mma_layout_test.cpp checks them against every
// (query, key) pair by brute force.
#pragma once

#include "gpucal/kernels/mma_layout.hpp"

namespace gpucal::kernels {

/// Position of query row r, rows past the chunk clamped to its last query.
GPUCAL_HD int prefill_row_position(int qlen, int ctx, int r) { return ctx - qlen + (r < qlen - 1 ? r : qlen - 1); }

/// Keys [0, end) that rows [first_row, first_row + rows) attend to at most: one past the last one's position.
GPUCAL_HD int prefill_keys_end(int qlen, int ctx, int first_row, int rows) {
  return prefill_row_position(qlen, ctx, first_row + rows - 1) + 1;
}

}  // namespace gpucal::kernels
