// NVML loaded at run time with dlopen, so nothing links against the driver:
// clocks, power limit, temperature and throttle reasons of one GPU. Every
// query returns nullopt when NVML or the function is missing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace gpucal::calibrate {

struct gpu_clocks {
  std::optional<unsigned> sm_mhz, mem_mhz;
  std::optional<unsigned> sm_max_mhz, sm_default_mhz;  ///< max and default application SM clock
  std::optional<unsigned> power_limit_w, temperature_c;
  std::optional<std::uint64_t> throttle_reasons;        ///< NVML clocks-event reason bit mask
  /// A thermal, hardware-slowdown or power-brake reason is set: the clocks
  /// were held down by something other than the power limit a user sets.
  bool throttled() const;
  /// The software power cap is set: the board ran at its power limit.
  bool power_capped() const;
};

class nvml {
public:
  /// Loads libnvidia-ml.so.1 and opens the GPU with this PCI bus id
  /// (cudaDeviceGetPCIBusId); `available()` is false with `why()` otherwise.
  explicit nvml(const std::string& pci_bus_id);
  ~nvml();
  nvml(const nvml&) = delete;
  nvml& operator=(const nvml&) = delete;

  bool available() const { return device_ != nullptr; }
  const std::string& why() const { return why_; }
  std::string driver_version() const;
  gpu_clocks read() const;
  /// Device memory in use on the whole GPU (nvmlDeviceGetMemoryInfo), without
  /// a CUDA context of this process: what the context's own size is measured by.
  std::optional<std::uint64_t> memory_used_bytes() const;
  /// Board power draw in watts (nvmlDeviceGetPowerUsage).
  std::optional<double> power_w() const;
  /// Uncorrected ECC errors since the driver loaded (volatile count), when ECC is on.
  std::optional<std::uint64_t> uncorrected_ecc_errors() const;

private:
  struct api;
  std::unique_ptr<api> api_;
  void* library_ = nullptr;
  void* device_ = nullptr;
  std::string why_;
};

}  // namespace gpucal::calibrate
