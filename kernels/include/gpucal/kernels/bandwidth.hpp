// Memory-bandwidth probes: read, write, copy and triad over a buffer of any
// size, with 16-byte vector accesses for the body and a scalar tail, and a
// grid-stride loop over a grid sized from the SM count. The read probe
// reduces what it reads (a wrapping uint32 sum per block) so nothing can be
// optimized away; tests check every byte each probe must write.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gpucal::kernels {

enum class bandwidth_op { read, write, copy, triad };
std::string_view bandwidth_op_name(bandwidth_op op);

inline constexpr int bandwidth_block_threads = 512;

/// Blocks for a bandwidth probe: enough resident blocks to fill every SM.
int bandwidth_grid(int sm_count);

/// HBM bytes one probe moves over a buffer of `bytes` (per operand): read and
/// write move `bytes`, copy 2 x bytes (read + write), triad 3 x bytes.
double bandwidth_bytes_moved(bandwidth_op op, std::size_t bytes);

/// Sums src as uint32 words (wrapping) into block_sums[blockIdx.x]; `bytes` a multiple of 4.
void bandwidth_read(const void* src, std::size_t bytes, std::uint32_t* block_sums, int grid, cudaStream_t stream);
/// Writes the 4-byte `pattern` over dst (byte i gets byte i % 4 of the pattern, little-endian).
void bandwidth_write(void* dst, std::size_t bytes, std::uint32_t pattern, int grid, cudaStream_t stream);
/// dst = src, `bytes` bytes.
void bandwidth_copy(void* dst, const void* src, std::size_t bytes, int grid, cudaStream_t stream);
/// a[i] = fma(scalar, c[i], b[i]) for n floats (STREAM triad, one rounding).
void bandwidth_triad(float* a, const float* b, const float* c, float scalar, std::size_t n, int grid,
                     cudaStream_t stream);

/// v2 of read and copy for working sets that fit in L2: `passes` sweeps over
/// the buffer inside one launch, loads and stores through L2 only (not L1),
/// so the plateau measured is L2's and not the launch rate. read_v2's block
/// sums are `passes` times read's (wrapping).
void bandwidth_read_v2(const void* src, std::size_t bytes, int passes, std::uint32_t* block_sums, int grid,
                       cudaStream_t stream);
void bandwidth_copy_v2(void* dst, const void* src, std::size_t bytes, int passes, int grid, cudaStream_t stream);

/// Fills a buffer with pseudo-random data on the device (counter-based hash of
/// `seed` and the index), so benchmarks never time zeros.
void fill_random_bytes(void* dst, std::size_t bytes, std::uint64_t seed, cudaStream_t stream);
/// Uniform floats in [lo, hi) rounded to bf16 / fp8 e4m3 / int8 (int8: [-127, 127]), stored in that format.
void fill_random_bf16(void* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream);
void fill_random_fp8_e4m3(void* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream);
void fill_random_int8(void* dst, std::size_t count, std::uint64_t seed, cudaStream_t stream);
void fill_random_f32(float* dst, std::size_t count, float lo, float hi, std::uint64_t seed, cudaStream_t stream);

}  // namespace gpucal::kernels
