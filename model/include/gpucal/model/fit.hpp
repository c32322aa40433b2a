// Fits of measured figures into the coefficients the model reads, by
// least squares (Eigen), each with its residuals.
//
// GEMM, per kernel family: t = latency + bytes / (HBM x e_mem) +
// flops / (peak x e_comp(M)), with one e_comp per measured M. The model is
// linear in (latency, 1/e_mem, 1/e_comp(M)); rows are weighted by 1/t so
// the fit minimizes relative error. Ratios (bandwidth, attention): the
// median of achieved / datasheet, with the residuals of that constant.
#pragma once

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

/// Turns a gpucal_bench JSON (Google Benchmark format, every repetition kept)
/// into a calibration file for `gpu`: measurements with their samples, fits,
/// and the default coefficients with the fitted ones replacing them
/// (marked "measured"). `created_utc`, `tool_version`, `git_commit` fill the producer.
calibration_file calibration_from_benchmarks(std::string_view bench_json, std::string_view where, const gpu_spec& gpu,
                                             const std::string& created_utc, const std::string& tool_version,
                                             const std::string& git_commit);

}  // namespace gpucal::model
