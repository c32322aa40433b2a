// The coefficients the model reads: framework overheads and activation
// factors for the memory model. Defaults ship embedded
// (model/catalog/coefficients/default.json, every value marked
// "source": "default" with its rationale); a calibration file measured by
// `gpucal calibrate` replaces them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gpucal::model {

struct coefficient {
  double value = 0;
  std::string source;  ///< "default" or "measured"
  std::string note;    ///< how the value was obtained
};

struct memory_coefficients {
  coefficient cuda_context_bytes;      ///< CUDA context + runtime, before the engine's first snapshot
  coefficient non_torch_bytes;         ///< cuBLAS/cuBLASLt workspaces and other non-allocator memory, tp = 1
  coefficient nccl_bytes_per_gpu;      ///< NCCL communicator + custom all-reduce buffers, added when tp > 1
  coefficient cuda_graph_bytes;        ///< CUDA-graph memory pool of the captured decode batch sizes
  coefficient activation_scale;        ///< multiplies the analytical forward peak
  coefficient activation_fixed_bytes;  ///< added to the activation peak (allocator slack, workspaces)
  coefficient sampler_fp32_copies;     ///< FP32 [rows, vocab] tensors alive at the sampler's peak
};

struct coefficients {
  std::string source = "default";  ///< "default", or "calibration <path>"
  std::optional<std::int64_t> usable_memory_bytes;  ///< measured cudaMemGetInfo total, when calibrated
  memory_coefficients memory;
};

/// Parses a coefficients object (schema gpucal.coefficients/1), or a
/// calibration file (schema gpucal.calibration/1) carrying one under
/// "coefficients". Errors name the field.
coefficients parse_coefficients(std::string_view json_text, std::string_view where);

/// Reads and parses a --calibration file.
coefficients load_coefficients_file(const std::string& path);

}  // namespace gpucal::model
