// Device identity (cudaGetDeviceProperties, cudaMemGetInfo, versions) and a
// probe kernel: thread i writes (smid << 32) | i. Host-checkable: every slot
// must hold its own index and an SM id below the device's SM count.
#include <cuda_runtime.h>

#include <atomic>

#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/device_query.hpp"

namespace gpucal::kernels {

namespace {

__global__ void probe_kernel(std::uint64_t* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  unsigned smid;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(smid));
  out[i] = (static_cast<std::uint64_t>(smid) << 32) | static_cast<std::uint32_t>(i);
}

}  // namespace

std::size_t free_device_bytes() {
  std::size_t free = 0, total = 0;
  GPUCAL_CUDA_CHECK(cudaMemGetInfo(&free, &total));
  return free;
}

int current_device_sm_count() {
  static std::atomic<int> sms_of[64] = {};
  int device = 0;
  GPUCAL_CUDA_CHECK(cudaGetDevice(&device));
  const bool cached = device >= 0 && device < 64;
  if (cached && sms_of[device].load(std::memory_order_relaxed) > 0) return sms_of[device].load(std::memory_order_relaxed);
  int sms = 0;
  GPUCAL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (cached) sms_of[device].store(sms, std::memory_order_relaxed);
  return sms;
}

std::optional<device_info> first_device(std::string* reason) {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    if (reason) {
      *reason = status != cudaSuccess ? std::string("no usable CUDA device: ") + cudaGetErrorName(status) + " (" +
                                            cudaGetErrorString(status) + ")"
                                      : "no CUDA device present";
    }
    cudaGetLastError();  // clear the sticky error of a failed query
    return std::nullopt;
  }
  device_info d;
  cudaDeviceProp prop{};
  GPUCAL_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  GPUCAL_CUDA_CHECK(cudaSetDevice(0));
  size_t free_bytes = 0, total_bytes = 0;
  GPUCAL_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  d.name = prop.name;
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.sm_count = prop.multiProcessorCount;
  d.total_memory_bytes = static_cast<std::int64_t>(total_bytes);
  d.free_memory_bytes = static_cast<std::int64_t>(free_bytes);
  GPUCAL_CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
  GPUCAL_CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  return d;
}

std::vector<std::uint64_t> run_probe_kernel(int threads) {
  std::vector<std::uint64_t> host(static_cast<std::size_t>(threads));
  if (threads == 0) return host;
  device_buffer<std::uint64_t> dev(host.size());
  GPUCAL_CUDA_CHECK(cudaMemset(dev.data(), 0xff, dev.bytes()));  // poison: an unwritten slot reads as all ones
  const int block = 256;
  probe_kernel<<<(threads + block - 1) / block, block>>>(dev.data(), threads);
  GPUCAL_CUDA_CHECK(cudaGetLastError());
  GPUCAL_CUDA_CHECK(cudaMemcpy(host.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return host;
}

}  // namespace gpucal::kernels
