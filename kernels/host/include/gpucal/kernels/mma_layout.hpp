// Where each element of a bf16 mma.sync.m16n8k16 operand sits in a warp, as
// the PTX ISA's "Matrix Fragments for mma.m16n8k16 with floating point type"
// defines it (groupID = lane / 4, threadID_in_group = lane % 4):
//   A, 16 x 16 row-major, elements a0..a7 in four 32-bit registers (two
//     bf16 each, the lower index in the low half);
//   B, 16 x 8 (K x N), elements b0..b3 in two registers;
//   C/D, 16 x 8 floats, c0..c3.
// The tensor-core kernels index their operands with these functions and the
// CPU tests check them by emulating a warp's mma (tests/kernels/mma_layout_test.cpp).
#pragma once

#if defined(__CUDACC__)
#define GPUCAL_HD __host__ __device__ __forceinline__
#else
#define GPUCAL_HD inline
#endif

namespace gpucal::kernels::mma {

struct rc {
  int row, col;
};

/// A element i (0..7) of `lane`: register i / 2, half i % 2.
GPUCAL_HD rc a_element(int lane, int i) {
  const int g = lane >> 2, t = lane & 3;
  return {g + 8 * ((i >> 1) & 1), 2 * t + (i & 1) + 8 * (i >> 2)};
}

/// B element i (0..3) of `lane` as (k, n): register i / 2, half i % 2.
GPUCAL_HD rc b_element(int lane, int i) {
  const int g = lane >> 2, t = lane & 3;
  return {2 * t + (i & 1) + 8 * (i >> 1), g};
}

/// C/D element i (0..3) of `lane`.
GPUCAL_HD rc c_element(int lane, int i) {
  const int g = lane >> 2, t = lane & 3;
  return {g + 8 * (i >> 1), 2 * t + (i & 1)};
}

}  // namespace gpucal::kernels::mma
