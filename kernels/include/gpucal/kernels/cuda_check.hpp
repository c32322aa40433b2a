// GPUCAL_CUDA_CHECK: turns a failed CUDA runtime call into an exception that
// carries file:line, the error's name and text, and the call's source text.
// GPUCAL_CUDA_CHECK_NOTHROW is for destructors only.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdio>
#include <stdexcept>
#include <string>

namespace gpucal::kernels {

class cuda_error : public std::runtime_error {
public:
  cuda_error(cudaError_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  cudaError_t code() const { return code_; }

private:
  cudaError_t code_;
};

[[noreturn]] inline void throw_cuda_error(cudaError_t code, const char* call, const char* file, int line) {
  throw cuda_error(code, std::string(file) + ":" + std::to_string(line) + ": " + cudaGetErrorName(code) + " (" +
                             cudaGetErrorString(code) + ") in " + call);
}

}  // namespace gpucal::kernels

#define GPUCAL_CUDA_CHECK(expr)                                                       \
  do {                                                                                \
    const cudaError_t gpucal_status_ = (expr);                                        \
    if (gpucal_status_ != cudaSuccess)                                                \
      ::gpucal::kernels::throw_cuda_error(gpucal_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define GPUCAL_CUDA_CHECK_NOTHROW(expr)                                                                  \
  do {                                                                                                   \
    const cudaError_t gpucal_status_ = (expr);                                                           \
    if (gpucal_status_ != cudaSuccess)                                                                   \
      std::fprintf(stderr, "%s:%d: %s in %s\n", __FILE__, __LINE__, cudaGetErrorName(gpucal_status_), #expr); \
  } while (0)
