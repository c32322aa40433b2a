// `gpucal fit`, `compare`, `history` and `show`: calibration files on any
// machine; and the rule that picks the coefficients a planning command uses.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "gpucal/model/calibration.hpp"
#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/gpu_spec.hpp"

namespace gpucal::cli {

/// --calibration FILE if given; else the newest calibration for this GPU in
/// the results folder ($GPUCAL_RESULTS_DIR, default the source tree's
/// results/); else the embedded defaults (model::coefficients_for_gpu).
/// `coeffs.source` says which; warnings are for stderr.
model::coefficient_choice coefficients_for(const std::string& calibration_flag, const model::gpu_spec& gpu,
                                           bool allow_other_gpu);

/// Builds a calibration file from gpucal_bench JSON; writes it under
/// out_dir/<sku>/ atomically and prints its path (and a summary of the fits).
int run_fit(const std::string& bench_path, const std::string& gpu, const std::string& out_dir, bool json, std::ostream& out);
/// Merges gpucal_bench JSON files into `out` (written atomically), salvaging
/// files cut off mid-write; prints one line per input and the total.
int run_merge_bench(const std::vector<std::string>& inputs, const std::string& out_path, std::ostream& out);
struct fit_engine_args {
  std::vector<std::string> logs;
  std::string gpu, base, out;
  std::vector<std::string> model_for;  ///< "REPO=NAME": the catalog model or config of a log's model
  int holdout = 0;
  bool json = false;
};
/// Fits an engine profile's memory terms to vLLM startup logs and writes it
/// (`--engine OUT` reads it); prints the fit and every log's error.
int run_fit_engine(const fit_engine_args& a, std::ostream& out);
/// Exit 1 when a significant regression exceeds threshold_pct.
int run_compare(const std::string& old_path, const std::string& new_path, double threshold_pct, double alpha, bool json,
                std::ostream& out);
int run_history(const std::string& dir, std::ostream& out);
/// Writes what other planners read: `llm-analysis` (its GPU config JSON, whose
/// keys it loads as they are, and a sidecar with the efficiencies to pass as
/// its --flops_efficiency / --hbm_memory_efficiency / --intra_node_memory_efficiency
/// flags) or `csv` (the GEMM table). Files go to out_dir; their paths are printed.
int run_export(const std::string& format, const std::string& path, const std::string& out_dir, std::ostream& out);
int run_show(const std::string& path, std::ostream& out);

}  // namespace gpucal::cli
