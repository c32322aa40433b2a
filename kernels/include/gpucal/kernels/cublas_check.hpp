// GPUCAL_CUBLAS_CHECK: the cuBLAS(Lt) twin of GPUCAL_CUDA_CHECK, throwing with
// file:line, the status name and text, and the call's source text.
#pragma once

#include <cublasLt.h>

#include <string>

#include "gpucal/kernels/cuda_check.hpp"

namespace gpucal::kernels {

class cublas_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  throw cublas_error(std::string(file) + ":" + std::to_string(line) + ": " + cublasLtGetStatusName(status) + " (" +
                     cublasLtGetStatusString(status) + ") in " + call);
}

}  // namespace gpucal::kernels

#define GPUCAL_CUBLAS_CHECK(expr)                                                       \
  do {                                                                                  \
    const cublasStatus_t gpucal_status_ = (expr);                                       \
    if (gpucal_status_ != CUBLAS_STATUS_SUCCESS)                                        \
      ::gpucal::kernels::throw_cublas_error(gpucal_status_, #expr, __FILE__, __LINE__); \
  } while (0)

#define GPUCAL_CUBLAS_CHECK_NOTHROW(expr)                                                                 \
  do {                                                                                                    \
    const cublasStatus_t gpucal_status_ = (expr);                                                         \
    if (gpucal_status_ != CUBLAS_STATUS_SUCCESS)                                                          \
      std::fprintf(stderr, "%s:%d: %s in %s\n", __FILE__, __LINE__, cublasLtGetStatusName(gpucal_status_), #expr); \
  } while (0)
