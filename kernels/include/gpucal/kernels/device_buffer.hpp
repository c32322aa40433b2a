// Move-only owner of one cudaMalloc allocation, and blocking copies of a
// host vector to and from one.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "gpucal/kernels/cuda_check.hpp"

namespace gpucal::kernels {

template <typename T>
class device_buffer {
public:
  device_buffer() = default;
  explicit device_buffer(std::size_t count) : count_(count) {
    if (count_ > 0) GPUCAL_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), count_ * sizeof(T)));
  }
  ~device_buffer() {
    if (data_) GPUCAL_CUDA_CHECK_NOTHROW(cudaFree(data_));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      if (data_) GPUCAL_CUDA_CHECK_NOTHROW(cudaFree(data_));
      data_ = std::exchange(o.data_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }

  T* data() const { return data_; }
  std::size_t size() const { return count_; }
  std::size_t bytes() const { return count_ * sizeof(T); }

private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
};

/// A new buffer holding v's elements (cudaMemcpy, returns once they landed).
template <typename T>
device_buffer<T> to_device(const std::vector<T>& v) {
  device_buffer<T> d(v.size());
  if (!v.empty()) GPUCAL_CUDA_CHECK(cudaMemcpy(d.data(), v.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

/// The buffer's elements on the host.
template <typename T>
std::vector<T> from_device(const device_buffer<T>& d) {
  std::vector<T> v(d.size());
  if (!v.empty()) GPUCAL_CUDA_CHECK(cudaMemcpy(v.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost));
  return v;
}

}  // namespace gpucal::kernels
