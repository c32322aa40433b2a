// Datasheet description of a GPU SKU, from the embedded catalog
// (model/catalog/gpus.json, sources named per entry).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gpucal::model {

struct gpu_spec {
  std::string name;  ///< display name, e.g. "H100-SXM"
  std::string vendor = "nvidia";  ///< "nvidia" or "amd" (gpucal calibrates NVIDIA GPUs only)
  std::string slug;  ///< results/ folder name, e.g. "h100-sxm-80gb"
  std::vector<std::string> aliases;
  std::string architecture;
  std::string compute_capability;
  std::int64_t sm_count = 0;
  std::int64_t memory_bytes = 0;                         ///< datasheet capacity
  std::optional<std::int64_t> cuda_total_memory_bytes;   ///< what cudaMemGetInfo reports, where published
  std::string memory_note;
  double hbm_bandwidth_gbps = 0;                         ///< GB/s (10^9 B/s)
  std::map<std::string, double> peak_tflops;             ///< dense TFLOP/s (TOP/s for ints) by dtype name
  std::optional<double> nvlink_gbps;                     ///< per direction, GB/s
  std::optional<double> pcie_gbps;                       ///< per direction, GB/s
  std::vector<std::string> sources;

  bool supports(std::string_view dtype_key) const { return peak_tflops.contains(std::string(dtype_key)); }
};

/// Parses the catalog file (schema gpucal.gpus/1).
std::vector<gpu_spec> parse_gpu_catalog(std::string_view json_text, std::string_view where);

}  // namespace gpucal::model
