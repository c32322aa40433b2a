// W4A16: D[M,N] = X[M,K] . W[N,K]^T with W stored as INT4 codes packed
// eight per uint32 along K, one bf16 scale and one zero point (a byte) per
// `group` inputs of each row (the int4_weights layout of int4_pack.hpp);
// X and D bf16; FP32 accumulation. K must be a multiple of 8 and the group
// a multiple of 8; M and N are free.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gpucal::kernels {

void w4a16_gemm(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                int m, int n, int k, int group, cudaStream_t stream);

/// Version 2, same layout and results (kernels/w4a16_gemm.cu): 16-byte
/// weight loads (32 codes per lane) with two in flight, every activation row
/// of an M tile of up to 16 in one pass (each weight byte read once per 16
/// rows), the group's scale and zero read once per 32 codes, and a
/// magic-number int4 -> float conversion. Needs k and group multiples of 32;
/// other shapes run version 1. CUDA cores only: the tensor-core (mma.sync)
/// path for M >= 16 is not written yet.
void w4a16_gemm_v2(const void* x, const std::uint32_t* packed, const void* scales, const std::uint8_t* zeros, void* d,
                   int m, int n, int k, int group, cudaStream_t stream);

}  // namespace gpucal::kernels
