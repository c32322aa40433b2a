// Framework-overhead probes of `gpucal-engine probe`: the device memory that
// serving costs beyond weights, activations and KV, each measured as a
// device-memory delta with its samples.
//   CUDA context      NVML's used memory before and after the process's first
//                     CUDA call (so this runs before any other CUDA call)
//   cuBLASLt          a handle and its 64 MiB workspace (cudaMemGetInfo delta)
//   allocation grain  the smallest cudaMalloc (1 byte) as free memory sees it
//   NCCL              a one-rank communicator; with two or more GPUs, a
//                     communicator over all of them per GPU, and all-reduce
//                     and all-gather bandwidth sweeps over their link
// NCCL is opened with dlopen (libnccl.so.2), so nothing links against it.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/calibration.hpp"

namespace gpucal::calibrate {
class nvml;
}

namespace gpucal::engine_tool {

struct overhead_result {
  std::vector<model::measurement> measurements;
  std::optional<double> context_bytes, cublaslt_bytes, grain_bytes, nccl_one_rank_bytes, nccl_per_gpu_bytes;
  std::optional<double> allreduce_latency_us, allreduce_bus_gbps;  ///< with two or more GPUs
  std::vector<std::string> skipped;  ///< probes that could not run, with the reason
};

/// Step 1, before any CUDA call of the process: NVML's used memory now.
std::optional<double> memory_used_before_cuda(const calibrate::nvml& n);

/// The probes, `used_before` from memory_used_before_cuda. `progress` gets one line per probe.
overhead_result measure_overheads(const calibrate::nvml& n, std::optional<double> used_before, bool quick,
                                  const std::function<void(const std::string&)>& progress);

}  // namespace gpucal::engine_tool
