// Fits of measured figures into the coefficients the model reads, by
// least squares (Eigen), each with its residuals.
//
// GEMM, per kernel family: t = latency + bytes / (HBM x e_mem) +
// flops / (peak x e_comp(M)), with one e_comp per measured M. The model is
// linear in (latency, 1/e_mem, 1/e_comp(M)); rows are weighted by 1/t so
// the fit minimizes relative error. Ratios (bandwidth, attention): the
// median of achieved / datasheet, with the residuals of that constant.
// Reference engine: the activation peak as scale x max(forward, sampler) +
// fixed over the model's own estimate, and the per-step overhead as the
// median gap between a measured step and the model's sum of kernels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gpucal/model/calibration.hpp"
#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/gpu_spec.hpp"

namespace gpucal::model {

struct gemm_point {
  double m = 0, n = 0, k = 0;
  double time_us = 0;  ///< median measured time
};

struct gemm_fit {
  gemm_curve curve;    ///< compute efficiency per measured M, memory efficiency
  double latency_us = 0;
  fit_result result;
};

/// `in_bytes`/`out_bytes`: bytes per element of X and W, and of D.
gemm_fit fit_gemm(const std::string& kind, const std::vector<gemm_point>& points, double peak_tflops, double hbm_gbps,
                  double in_bytes, double out_bytes);

/// efficiency = median(achieved / peak); residuals relative to that constant.
fit_result fit_ratio(const std::string& name, const std::vector<double>& achieved, double peak, double* efficiency);

/// One measured activation peak of the reference engine: a forward over
/// `tokens` tokens and a sampler pass over `rows` rows, beside the model's
/// estimate_activation figures for the same pass (computed with
/// activation_scale 1 and activation_fixed_bytes 0).
struct activation_point {
  std::int64_t tokens = 0;
  std::int64_t rows = 0;
  double model_forward_bytes = 0;  ///< activation_estimate::forward_bytes
  double model_sampler_bytes = 0;  ///< activation_estimate::sampler_bytes
  double measured_peak_bytes = 0;  ///< allocator high-water mark of the pass, above what was live before it
};

struct activation_fit {
  coefficient scale;        ///< activation_scale, in [0.1, 10]
  coefficient fixed_bytes;  ///< activation_fixed_bytes, >= 0
  fit_result result;
};

/// Least squares of measured = scale x max(forward, sampler) + fixed, rows
/// weighted by 1 / measured (relative error). fixed is kept >= 0: when the
/// free fit gives a negative one, scale is refitted alone with fixed = 0 and
/// the note says so. `what` names the fitted case (e.g. the model) in the
/// fit's name, notes and errors. Throws std::invalid_argument with fewer
/// than 2 distinct max(forward, sampler) or a non-positive / non-finite
/// figure, std::runtime_error when a fitted value falls outside what the
/// coefficients parser accepts.
activation_fit fit_activation(const std::vector<activation_point>& points, const std::string& what);

/// One measured step of the reference engine beside the model's sum of
/// kernel times for the same step (its throughput model without the overhead).
struct step_point {
  std::string kind;        ///< "decode" or "prefill"
  double batch = 0;        ///< sequences in the step
  double context = 0;      ///< mean context per sequence (decode) or 0
  double tokens = 0;       ///< tokens processed in the step
  double measured_us = 0;  ///< median measured step time
  double kernels_us = 0;   ///< the model's sum of kernel times for the step
};

struct step_overhead_fit {
  coefficient overhead_us;  ///< per-step overhead, in [0, 1e6] us
  fit_result result;
};

/// overhead = median(measured - kernels), clamped at >= 0; residuals of
/// kernels + overhead against measured, relative. `engine` is the engine
/// profile's name (the key in throughput.step_overhead_us). Throws
/// std::invalid_argument without points or on a bad point (kind, a
/// non-positive or non-finite time), std::runtime_error when the overhead
/// exceeds 1e6 us.
step_overhead_fit fit_step_overhead(const std::vector<step_point>& points, const std::string& engine);

/// Turns a gpucal_bench JSON (Google Benchmark format, every repetition kept)
/// into a calibration file for `gpu`: measurements with their samples, fits,
/// and the default coefficients with the fitted ones replacing them
/// (marked "measured"). `created_utc`, `tool_version`, `git_commit` fill the producer.
calibration_file calibration_from_benchmarks(std::string_view bench_json, std::string_view where, const gpu_spec& gpu,
                                             const std::string& created_utc, const std::string& tool_version,
                                             const std::string& git_commit);

}  // namespace gpucal::model
