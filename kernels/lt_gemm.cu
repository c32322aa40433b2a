// cuBLASLt GEMM plans (see lt_gemm.hpp). The operands map to cuBLASLt as
//   A = W  : column-major K x N (ld K), op T  -> N x K
//   B = X  : column-major K x M (ld K), op N  -> K x M
//   D      : column-major N x M (ld N)       == row-major D[M, N]
#include "gpucal/kernels/lt_gemm.hpp"

#include <utility>

#include "gpucal/kernels/cublas_check.hpp"
#include "gpucal/kernels/cuda_check.hpp"

namespace gpucal::kernels {

std::string_view gemm_dtype_name(gemm_dtype t) {
  switch (t) {
    case gemm_dtype::bf16: return "bf16";
    case gemm_dtype::fp8_e4m3: return "fp8";
    case gemm_dtype::int8: return "int8";
  }
  return "?";
}

double gemm_input_bytes(gemm_dtype t) { return t == gemm_dtype::bf16 ? 2 : 1; }
double gemm_output_bytes(gemm_dtype t) { return t == gemm_dtype::int8 ? 4 : 2; }

lt_context::lt_context(std::size_t workspace_bytes) : workspace_(workspace_bytes) {
  GPUCAL_CUBLAS_CHECK(cublasLtCreate(&handle_));
}
lt_context::~lt_context() {
  if (handle_) GPUCAL_CUBLAS_CHECK_NOTHROW(cublasLtDestroy(handle_));
}
lt_context::lt_context(lt_context&& o) noexcept
    : handle_(std::exchange(o.handle_, nullptr)), workspace_(std::move(o.workspace_)) {}
lt_context& lt_context::operator=(lt_context&& o) noexcept {
  if (this != &o) {
    if (handle_) GPUCAL_CUBLAS_CHECK_NOTHROW(cublasLtDestroy(handle_));
    handle_ = std::exchange(o.handle_, nullptr);
    workspace_ = std::move(o.workspace_);
  }
  return *this;
}

void lt_gemm_plan::release() noexcept {
  if (desc_) GPUCAL_CUBLAS_CHECK_NOTHROW(cublasLtMatmulDescDestroy(desc_));
  for (cublasLtMatrixLayout_t l : {a_, b_, d_})
    if (l) GPUCAL_CUBLAS_CHECK_NOTHROW(cublasLtMatrixLayoutDestroy(l));
  desc_ = nullptr;
  a_ = b_ = d_ = nullptr;
}
lt_gemm_plan::~lt_gemm_plan() { release(); }
lt_gemm_plan::lt_gemm_plan(lt_gemm_plan&& o) noexcept
    : dtype_(o.dtype_), shape_(o.shape_), desc_(std::exchange(o.desc_, nullptr)), a_(std::exchange(o.a_, nullptr)),
      b_(std::exchange(o.b_, nullptr)), d_(std::exchange(o.d_, nullptr)), algo_(o.algo_),
      x_scale_(o.x_scale_), w_scale_(o.w_scale_) {}
lt_gemm_plan& lt_gemm_plan::operator=(lt_gemm_plan&& o) noexcept {
  if (this != &o) {
    release();
    dtype_ = o.dtype_;
    shape_ = o.shape_;
    desc_ = std::exchange(o.desc_, nullptr);
    a_ = std::exchange(o.a_, nullptr);
    b_ = std::exchange(o.b_, nullptr);
    d_ = std::exchange(o.d_, nullptr);
    algo_ = o.algo_;
    x_scale_ = o.x_scale_;
    w_scale_ = o.w_scale_;
  }
  return *this;
}

std::optional<lt_gemm_plan> lt_gemm_plan::create(const lt_context& ctx, gemm_dtype dtype, gemm_shape shape,
                                                 std::string* reason, bool fast_accumulation) {
  const auto fail = [reason](std::string why) -> std::optional<lt_gemm_plan> {
    if (reason) *reason = std::move(why);
    return std::nullopt;
  };
  if (shape.m <= 0 || shape.n <= 0 || shape.k <= 0) return fail("m, n and k must be positive");
  if (dtype == gemm_dtype::fp8_e4m3) {
    int device = 0, major = 0, minor = 0;
    GPUCAL_CUDA_CHECK(cudaGetDevice(&device));
    GPUCAL_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
    GPUCAL_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
    if (major * 10 + minor < 89) return fail("needs sm_89+ for fp8 (this device is sm_" + std::to_string(major * 10 + minor) + ")");
  }
  lt_gemm_plan p;
  p.dtype_ = dtype;
  p.shape_ = shape;

  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F, in = CUDA_R_16BF, out = CUDA_R_16BF;
  if (dtype == gemm_dtype::fp8_e4m3) in = CUDA_R_8F_E4M3;
  if (dtype == gemm_dtype::int8) {
    compute = CUBLAS_COMPUTE_32I;
    scale = CUDA_R_32I;
    in = CUDA_R_8I;
    out = CUDA_R_32I;
  }
  GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc_, compute, scale));
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc_, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a));
  GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc_, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b));
  if (dtype == gemm_dtype::fp8_e4m3) {
    const std::int8_t fast = fast_accumulation ? 1 : 0;
    GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc_, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast));
  }
  const auto u64 = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  GPUCAL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a_, in, u64(shape.k), u64(shape.n), shape.k));  // W
  GPUCAL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b_, in, u64(shape.k), u64(shape.m), shape.k));  // X
  GPUCAL_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d_, out, u64(shape.n), u64(shape.m), shape.n));  // D (and C)

  cublasLtMatmulPreference_t pref = nullptr;
  GPUCAL_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const std::uint64_t ws = ctx.workspace_bytes();
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (status == CUBLAS_STATUS_SUCCESS)
    status = cublasLtMatmulAlgoGetHeuristic(ctx.handle(), p.desc_, p.a_, p.b_, p.d_, p.d_, pref, 1, &result, &returned);
  GPUCAL_CUBLAS_CHECK_NOTHROW(cublasLtMatmulPreferenceDestroy(pref));
  if (status == CUBLAS_STATUS_NOT_SUPPORTED || (status == CUBLAS_STATUS_SUCCESS && returned == 0))
    return fail(std::string("cuBLASLt has no ") + std::string(gemm_dtype_name(dtype)) + " algorithm for m=" +
                std::to_string(shape.m) + " n=" + std::to_string(shape.n) + " k=" + std::to_string(shape.k) +
                (dtype != gemm_dtype::bf16 ? " (8-bit operands need k and n multiples of 16)" : ""));
  GPUCAL_CUBLAS_CHECK(status);
  p.algo_ = result.algo;
  return p;
}

void lt_gemm_plan::run(const lt_context& ctx, const void* x, const void* w, void* d, const float* x_scale,
                       const float* w_scale, cudaStream_t stream) const {
  if (dtype_ == gemm_dtype::fp8_e4m3) {
    if (!x_scale || !w_scale) throw std::invalid_argument("lt_gemm_plan::run: fp8 needs x_scale and w_scale");
    // A is W and B is X in cuBLASLt's terms. Written only when the pointers
    // change, so repeated runs (a timed loop) do no descriptor work.
    if (w_scale != w_scale_) {
      GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof w_scale));
      w_scale_ = w_scale;
    }
    if (x_scale != x_scale_) {
      GPUCAL_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof x_scale));
      x_scale_ = x_scale;
    }
  }
  if (dtype_ == gemm_dtype::int8) {
    const std::int32_t alpha = 1, beta = 0;
    GPUCAL_CUBLAS_CHECK(cublasLtMatmul(ctx.handle(), desc_, &alpha, w, a_, x, b_, &beta, d, d_, d, d_, &algo_,
                                       ctx.workspace(), ctx.workspace_bytes(), stream));
  } else {
    const float alpha = 1, beta = 0;
    GPUCAL_CUBLAS_CHECK(cublasLtMatmul(ctx.handle(), desc_, &alpha, w, a_, x, b_, &beta, d, d_, d, d_, &algo_,
                                       ctx.workspace(), ctx.workspace_bytes(), stream));
  }
}

}  // namespace gpucal::kernels
