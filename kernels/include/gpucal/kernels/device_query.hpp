// Device identity and a trivial kernel that proves the CUDA toolchain and a
// device work end to end: every thread writes its global index and SM id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpucal::kernels {

struct device_info {
  int ordinal = 0;
  std::string name;
  int cc_major = 0;
  int cc_minor = 0;
  int sm_count = 0;
  std::int64_t total_memory_bytes = 0;  ///< cudaMemGetInfo total
  std::int64_t free_memory_bytes = 0;
  int driver_version = 0;   ///< cudaDriverGetVersion, e.g. 12080
  int runtime_version = 0;  ///< cudaRuntimeGetVersion
};

/// The first device, or nullopt with `reason` set when none is usable (no
/// driver, no device): callers skip with that reason.
std::optional<device_info> first_device(std::string* reason);

/// Free memory of the current device now (cudaMemGetInfo), in bytes.
std::size_t free_device_bytes();

/// The current device's multiprocessor count, asked once per device and
/// cached (kernel launchers size their grids with it).
int current_device_sm_count();

/// Launches the probe kernel over `threads` threads and returns, per thread,
/// its global index in the low 32 bits and its SM id in the high 32 bits.
std::vector<std::uint64_t> run_probe_kernel(int threads);

}  // namespace gpucal::kernels
