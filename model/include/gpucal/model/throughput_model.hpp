// The throughput model: a roofline per operator of one engine step, with
// efficiencies from the coefficients (GEMM curves over M per kernel family,
// attention and bandwidth efficiencies, all-reduce cost) and a per-step
// overhead: the calibration's measured one for the engine, else the engine
// profile's. Every operator reports its time and what bounds it.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/engine_profile.hpp"
#include "gpucal/model/gpu_spec.hpp"
#include "gpucal/model/kv_cache.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/model_spec.hpp"
#include "gpucal/model/tensor_inventory.hpp"

namespace gpucal::model {

enum class bound { compute, memory, latency, overhead };
std::string_view bound_name(bound b);

/// One operator of a step, summed over the layers it occurs in.
struct op_time {
  std::string name;     ///< "qkv_proj", "attention", "experts", "allreduce", ...
  double time_s = 0;
  bound bound_by = bound::memory;
  double flops = 0;     ///< per GPU
  double bytes = 0;     ///< HBM (or link) bytes moved per GPU
  double longest_part_s = 0;  ///< the longest of the parts summed here; its bound labels the operator
};

/// The per-step overhead a throughput model adds, and where it came from.
struct step_overhead_choice {
  coefficient overhead_us;         ///< value (us), source ("measured" or "default") and note
  bool from_coefficients = false;  ///< the coefficients' entry for this engine; else the engine profile's own
  /// "measured, calibration" (or "<source>, coefficients") when from the
  /// coefficients, else "engine profile <source>", e.g. "engine profile default".
  std::string origin() const;
  /// e.g. "412 us (measured, calibration)", "1500 us (engine profile default)".
  std::string describe() const;
};

/// throughput.step_overhead_us[engine.engine] when the coefficients carry
/// one (a calibration that measured this engine), else the engine profile's
/// step_overhead_us.
step_overhead_choice choose_step_overhead(const throughput_coefficients& c, const engine_profile& engine);

struct step_time {
  std::vector<op_time> ops;
  double total_s = 0;
  step_overhead_choice overhead;  ///< what the "step_overhead" operator holds
};

/// Expected number of distinct experts that `tokens` tokens touch when each
/// picks `k` of `experts` uniformly: E x (1 - (1 - k/E)^T). k at T = 1, E as T grows.
double expected_distinct_experts(double experts, double k, double tokens);

/// Ring all-reduce of `bytes` over `tp` GPUs: latency + 2 (tp-1)/tp x bytes / (link x efficiency).
double allreduce_time_s(double bytes, int tp, double link_gbps, double efficiency, double latency_us);

class throughput_model {
public:
  /// `settings` gives tp, pp, dtypes and quantization (resolve_settings). With
  /// pp > 1 a step runs every pipeline stage in turn (each stage's layers on
  /// its tp GPUs) and sends the hidden states between stages over the link.
  /// `inventory`, when given, is build_inventory(m, settings.tp), reused across models of one search.
  throughput_model(const model_spec& m, const gpu_spec& gpu, const resolved_settings& settings,
                   const throughput_coefficients& c, const engine_profile& engine, const tensor_inventory* inventory = nullptr);

  /// One decode step: `batch` sequences, one token each, attending to
  /// `mean_context` tokens on average.
  step_time decode_step(double batch, double mean_context) const;
  /// Prefill of `sequences` requests of `tokens_each` tokens from an empty
  /// context, in one step.
  step_time prefill(double tokens_each, double sequences = 1) const;

  /// Per-direction bandwidth (GB/s) all-reduces use at this tp: NVLink
  /// within an NVLink domain, else PCIe.
  double link_gbps() const { return link_gbps_; }
  std::string link_name() const { return link_name_; }
  /// Kernel family of most of the linear-layer weight bytes: "bf16", "fp8",
  /// "int8", "w4a16" or "fp4" (layers a checkpoint leaves unquantized run as bf16).
  const std::string& gemm_kind() const { return gemm_kind_; }
  double gemm_peak_tflops() const { return gemm_peak_tflops_; }
  /// The per-step overhead every step adds, and its origin.
  const step_overhead_choice& step_overhead() const { return step_overhead_; }
  /// The same, in seconds: the "step_overhead" operator of every step.
  double step_overhead_s() const { return step_overhead_.overhead_us.value * 1e-6; }

private:
  struct linear_op {
    std::string op;        // operator name it adds to
    double count = 0;      // instances per step (layers, or layers x experts)
    double n = 0, k = 0;   // per-GPU output and input features
    double weight_bytes = 0;  // per instance
    std::string kind;      // GEMM family: bf16, fp8, int8, w4a16, fp4
    double peak_flops = 0;
    bool routed = false;   // routed experts: scaled by the distinct experts touched
    double experts = 0, top_k = 0, layers = 0;  // routed: experts per layer, top-k, MoE layers
    bool lm_head = false;  // runs on the sampled rows only
    gemm_curve curve;      // its kernel family's efficiency curve, resolved at construction
  };
  struct gemm_result {
    double time_s, flops, bytes;
    bound b;
  };
  gemm_result gemm(const linear_op& op, double m_rows) const;
  void add_linear_ops(step_time& s, double tokens, double sampled_rows) const;
  void add_mixers(step_time& s, double batch, double context, bool decode, double tokens_each) const;
  void add_common_ops(step_time& s, double tokens) const;
  static void add(step_time& s, const std::string& name, double t, bound b, double flops, double bytes);
  double attention_time(double flops, double bytes, bool decode, bound& b) const;

  model_spec m_;
  resolved_settings settings_;
  throughput_coefficients c_;
  step_overhead_choice step_overhead_;
  double hbm_bytes_per_s_ = 0;
  double peak16_flops_ = 0;  // dense 16-bit peak, for attention
  double act_bytes_ = 2;
  std::string gemm_kind_;
  double gemm_peak_tflops_ = 0;
  double link_gbps_ = 0;
  std::string link_name_;
  /// Pipeline parallelism: one model per stage; a step is the stages in turn
  /// plus the hidden states sent between them (stage_step).
  std::vector<throughput_model> stages_;
  step_time stage_step(bool decode, double a, double b) const;

  std::vector<linear_op> linears_;
  std::vector<std::pair<layer_cache, double>> caches_;  // distinct layer caches and how many layers have each
  double sublayers_ = 0;             // mixers and feed-forward blocks: each ends in an all-reduce at tp > 1
  double elementwise_per_token_ = 0; // elements read and written per token by norms, residuals and activations
};

}  // namespace gpucal::model
