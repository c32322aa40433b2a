// W4A16: D[M,N] = X[M,K] . W[N,K]^T with W stored as INT4 codes packed
// eight per uint32 along K, one bf16 scale and one zero point (a byte) per
// `group` inputs of each row (the int4_weights layout of int4_pack.hpp);
// X and D bf16; FP32 accumulation. K must be a multiple of 8 and the group
// a multiple of 8; M and N are free.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace gpucal::kernels {

void w4a16_gemm(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                int m, int n, int k, int group, cudaStream_t stream);

/// Version 2, same layout and results (kernels/w4a16_gemm.cu): 16-byte
/// weight loads (32 codes per lane) with two in flight, every activation row
/// of an M tile of up to 16 in one pass (each weight byte read once per 16
/// rows), the group's scale and zero read once per 32 codes, and a
/// magic-number int4 -> float conversion. Needs k and group multiples of 32;
/// other shapes run version 1. CUDA cores only.
void w4a16_gemm_v2(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                   int m, int n, int k, int group, cudaStream_t stream);

/// Version 3, tensor cores (kernels/w4a16_gemm.cu): the same D from W's
/// codes in the reordered tile layout of w4a16_layout.hpp
/// (reorder_int4_for_mma) with the same [n][groups] scales and zero points.
/// Needs n a multiple of 16, k and group multiples of 64;
/// throws std::invalid_argument naming them otherwise. Where K is split across
/// CTAs the FP32 partial sums need `workspace` of
/// w4a16_gemm_v3_workspace_bytes() bytes (0 when unsplit; sized for the
/// current device; w4a16_max_workspace_bytes serves a range of m at once).
std::size_t w4a16_gemm_v3_workspace_bytes(int m, int n, int k, int group);
void w4a16_gemm_v3(const void* x, const std::uint32_t* tiles, const void* scales, const std::uint8_t* zeros, void* d, int m,
                   int n, int k, int group, void* workspace, std::size_t workspace_bytes, cudaStream_t stream);

}  // namespace gpucal::kernels
