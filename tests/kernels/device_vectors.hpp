// Test helpers: host vectors to and from device buffers in bf16/fp8/int
// formats, and random values already rounded to the device format.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_buffer.hpp"
#include "gpucal/kernels/numeric.hpp"

namespace gpucal::test {

/// Uniform [lo, hi) values rounded to bf16, as doubles.
inline std::vector<double> random_bf16(std::size_t n, unsigned seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = gpucal::kernels::round_to_bf16(dist(rng));
  return v;
}

inline gpucal::kernels::device_buffer<std::uint16_t> to_device_bf16(const std::vector<double>& v) {
  std::vector<std::uint16_t> bits(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) bits[i] = gpucal::kernels::float_to_bf16_bits(static_cast<float>(v[i]));
  gpucal::kernels::device_buffer<std::uint16_t> d(bits.size());
  if (!bits.empty()) GPUCAL_CUDA_CHECK(cudaMemcpy(d.data(), bits.data(), d.bytes(), cudaMemcpyHostToDevice));
  return d;
}

inline std::vector<double> from_device_bf16(const gpucal::kernels::device_buffer<std::uint16_t>& d) {
  std::vector<std::uint16_t> bits(d.size());
  if (!bits.empty()) GPUCAL_CUDA_CHECK(cudaMemcpy(bits.data(), d.data(), d.bytes(), cudaMemcpyDeviceToHost));
  std::vector<double> v(bits.size());
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = gpucal::kernels::bf16_bits_to_float(bits[i]);
  return v;
}

using gpucal::kernels::from_device;
using gpucal::kernels::to_device;

}  // namespace gpucal::test
