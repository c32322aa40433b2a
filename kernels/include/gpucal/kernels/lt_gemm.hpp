// GEMMs through cuBLASLt in the layout of an LLM linear layer: row-major
// activations X[M,K] times a row-major weight W[N,K] (output-major, as
// checkpoints store it) into row-major D[M,N] = X . W^T. In cuBLASLt's
// column-major terms that is D^T = W^T(T) . X^T(N): "TN", the layout FP8
// requires. Handles, workspace, descriptors and the heuristic's algorithm
// are made once per plan, outside any timed region.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "gpucal/kernels/device_buffer.hpp"

namespace gpucal::kernels {

enum class gemm_dtype {
  bf16,      ///< bf16 x bf16 -> bf16, FP32 accumulate
  fp8_e4m3,  ///< e4m3 x e4m3 with per-tensor fp32 scales -> bf16, FP32 accumulate (sm_89+)
  int8,      ///< int8 x int8 -> int32, INT32 accumulate
};
std::string_view gemm_dtype_name(gemm_dtype t);
/// Bytes per element of X and W, and of D.
double gemm_input_bytes(gemm_dtype t);
double gemm_output_bytes(gemm_dtype t);

/// Owns a cuBLASLt handle and its workspace (move-only).
class lt_context {
public:
  explicit lt_context(std::size_t workspace_bytes = 64ull << 20);
  ~lt_context();
  lt_context(const lt_context&) = delete;
  lt_context& operator=(const lt_context&) = delete;
  lt_context(lt_context&&) noexcept;
  lt_context& operator=(lt_context&&) noexcept;

  cublasLtHandle_t handle() const { return handle_; }
  void* workspace() const { return workspace_.data(); }
  std::size_t workspace_bytes() const { return workspace_.bytes(); }

private:
  cublasLtHandle_t handle_ = nullptr;
  device_buffer<std::uint8_t> workspace_;
};

struct gemm_shape {
  std::int64_t m, n, k;
};

/// A planned GEMM: descriptors and the heuristic's first algorithm.
class lt_gemm_plan {
public:
  /// Plans D = X . W^T; returns nullopt and sets `reason` when cuBLASLt has no
  /// algorithm for it here (e.g. fp8 below sm_89, or a leading dimension fp8
  /// cannot use). `fast_accumulation` lets fp8 accumulate in reduced precision.
  static std::optional<lt_gemm_plan> create(const lt_context& ctx, gemm_dtype dtype, gemm_shape shape,
                                            std::string* reason, bool fast_accumulation = false);
  ~lt_gemm_plan();
  lt_gemm_plan(const lt_gemm_plan&) = delete;
  lt_gemm_plan& operator=(const lt_gemm_plan&) = delete;
  lt_gemm_plan(lt_gemm_plan&&) noexcept;
  lt_gemm_plan& operator=(lt_gemm_plan&&) noexcept;

  /// Launches on `stream`. fp8 needs device pointers to one float scale for X
  /// and one for W (D = x_scale x w_scale x X . W^T); others ignore them.
  void run(const lt_context& ctx, const void* x, const void* w, void* d, const float* x_scale, const float* w_scale,
           cudaStream_t stream) const;

  gemm_dtype dtype() const { return dtype_; }
  gemm_shape shape() const { return shape_; }

private:
  lt_gemm_plan() = default;
  void release() noexcept;

  gemm_dtype dtype_ = gemm_dtype::bf16;
  gemm_shape shape_{};
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, d_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  mutable const float* x_scale_ = nullptr;  // scale pointers last written into desc_ (fp8)
  mutable const float* w_scale_ = nullptr;
};

}  // namespace gpucal::kernels
