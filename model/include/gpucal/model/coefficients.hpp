// The coefficients the model reads: framework overheads and activation
// factors for the memory model; GEMM, attention, bandwidth and all-reduce
// efficiencies for the throughput model. Defaults ship embedded
// (model/catalog/coefficients/default.json, every value marked
// "source": "default" with its rationale); a calibration file measured by
// `gpucal calibrate` replaces them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

/// GEMM efficiency of one kernel family: compute efficiency (share of the
/// dense peak) as a curve over M, linear in log2(M) between points and flat
/// beyond the ends; memory efficiency (share of HBM bandwidth) for weight
/// streaming.
struct gemm_curve {
  std::vector<double> m;
  std::vector<double> compute_efficiency;
  double memory_efficiency = 0.8;
  std::string source;
  std::string note;

  double compute_at(double m_rows) const;
};

struct throughput_coefficients {
  std::map<std::string, gemm_curve> gemm;  ///< "bf16", "fp8", "int8", "w4a16", and optionally "fp4"
  coefficient hbm_efficiency;               ///< element-wise kernels
  coefficient decode_attention_efficiency;  ///< share of HBM bandwidth reading the KV cache
  coefficient prefill_attention_efficiency; ///< share of the 16-bit peak in causal prefill attention
  coefficient allreduce_efficiency;         ///< share of per-direction link bandwidth
  coefficient allreduce_latency_us;         ///< fixed cost per all-reduce
  /// Measured per-step overhead (us) by engine profile name (e.g. "gpucal"):
  /// replaces that profile's step_overhead_us. Optional in the JSON; empty
  /// when no engine's step was measured.
  std::map<std::string, coefficient> step_overhead_us;

  const gemm_curve& curve(const std::string& kind) const;
};

struct coefficients {
  std::string source = "default";  ///< "default", or "calibration <path>"
  std::optional<std::int64_t> usable_memory_bytes;  ///< measured cudaMemGetInfo total, when calibrated
  memory_coefficients memory;
  throughput_coefficients throughput;
};

/// Parses a coefficients object (schema gpucal.coefficients/1), or a
/// calibration file (schema gpucal.calibration/1) carrying one under
/// "coefficients". Errors name the field.
coefficients parse_coefficients(std::string_view json_text, std::string_view where);

/// Reads and parses a --calibration file.
coefficients load_coefficients_file(const std::string& path);

}  // namespace gpucal::model
