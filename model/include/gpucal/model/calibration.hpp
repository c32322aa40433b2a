// Calibration files (schema gpucal.calibration/1): the device identity, the
// producer, every measured figure with its samples and unit, the fits with
// their residuals, and the coefficients the model reads. One file per GPU
// SKU, driver and CUDA version under results/<sku>/. Parsing validates every
// field and names the first bad one; writing is atomic (temp file + rename).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gpucal/model/coefficients.hpp"
#include "gpucal/model/files.hpp"
#include "gpucal/model/gpu_spec.hpp"

namespace gpucal::model {

/// One measured figure: every sample, its unit, and the parameters that identify it.
struct measurement {
  std::string name;                            ///< unique, e.g. "gemm/bf16/llama3-8b.gate_up/m=16"
  std::string unit;                            ///< "us", "bytes", "GB/s", "TFLOP/s"
  std::map<std::string, double> params;        ///< e.g. m, n, k, bytes
  std::map<std::string, std::string> labels;   ///< e.g. kind=gemm, dtype=bf16, op=read
  std::vector<double> samples;

  double median() const;
  /// Rates (GB/s, TFLOP/s) improve upward; times and sizes downward.
  bool higher_is_better() const { return unit == "GB/s" || unit == "TFLOP/s"; }
};

struct fit_result {
  std::string name;                      ///< e.g. "gemm/bf16"
  std::string model;                     ///< the fitted form, in words
  std::map<std::string, double> params;  ///< fitted parameters
  int points = 0;
  double residual_max_rel = 0;           ///< max |predicted - measured| / measured
  double residual_rms_rel = 0;
};

struct device_identity {
  std::string name;               ///< as CUDA reports it
  std::string sku;                ///< gpus.json slug
  std::string compute_capability;
  std::int64_t sm_count = 0;
  std::int64_t total_memory_bytes = 0;
  std::string driver_version;
  std::string cuda_runtime;
  std::map<std::string, double> clocks_start, clocks_end;  ///< sm_mhz, mem_mhz, temperature_c, power_limit_w
};

struct calibration_file {
  std::string tool_version;
  std::string git_commit;
  bool dirty = false;
  std::string created_utc;  ///< ISO 8601, e.g. 2026-11-24T21:00:00Z
  device_identity device;
  std::vector<measurement> measurements;
  std::vector<fit_result> fits;
  coefficients coeffs;

  const measurement* find(const std::string& name) const;
};

/// Parses and validates: the one validation every reader of calibration
/// files applies (`show`, `compare`, `export`, `history`, --calibration, the
/// newest-file lookup, and `fit` before it writes). Every field is checked,
/// and device.sku must be a GPU slug of the catalog. Throws input_error
/// naming the field (e.g. "x.json: measurements[3]: field 'samples' [2] must
/// be a finite number >= 0").
calibration_file parse_calibration(std::string_view json_text, std::string_view where);
/// parse_calibration of a file read with read_input_file; `what` names the
/// flag or argument in read errors.
calibration_file load_calibration(const std::string& path, std::string_view what = "calibration file");
/// Serializes; refuses (std::invalid_argument) a non-finite number, so no NaN becomes null.
std::string calibration_to_json(const calibration_file& c);

/// Median of the values (NaN when empty): the middle one, or the mean of the two middle ones.
double median_of(std::vector<double> values);

/// Now, as ISO 8601 UTC to the second (e.g. 2026-11-24T21:00:00Z): the created_utc stamp.
std::string utc_now_iso8601();

/// results/<sku>/<driver>_cuda<ver>_<utc-date>.json
std::string calibration_file_name(const calibration_file& c);

/// calibration_to_json(c), checked with parse_calibration's validation (what
/// `show` would say of the file named `where`). Throws input_error naming
/// the first problem: a non-finite number, a field out of range.
std::string checked_calibration_json(const calibration_file& c, std::string_view where);

/// Checks `c` with checked_calibration_json, then writes it as `folder/stem.json`, or `stem-2.json`,
/// `stem-3.json`, ... when that exists: no calibration is ever replaced.
/// Returns the path written. Throws input_error, leaving no file or folder
/// behind, when `c` is invalid or the file cannot be written.
std::string write_calibration(const calibration_file& c, const std::string& folder, const std::string& stem);

/// The newest calibration file for a GPU under `results_dir/<sku>/`: the
/// greatest created_utc (ties: the greater file name); raw benchmark JSON
/// (bench*.json) is not opened. nullopt when there is none. Every other
/// .json file there must be a valid calibration of that SKU: one that is
/// not is an input_error naming it, never passed over.
std::optional<std::string> newest_calibration(const std::string& results_dir, const std::string& sku);

/// The coefficients a command uses for one GPU, where they came from, and
/// what it must tell the user about them.
struct coefficient_choice {
  coefficients coeffs;
  std::string path;                   ///< the file read; empty for the embedded defaults
  std::vector<std::string> warnings;  ///< one line each
};

/// `flag_path` when given (a calibration file, validated as parse_calibration
/// does, or a gpucal.coefficients/1 file), else the newest calibration of
/// `gpu` under `results_dir`, else the embedded defaults. A calibration
/// measured on another GPU is refused unless `allow_other_gpu`, which applies
/// its efficiencies with a warning that says so (its measured memory total
/// belongs to the other GPU and is dropped).
coefficient_choice coefficients_for_gpu(const std::optional<std::string>& flag_path, const gpu_spec& gpu,
                                        const std::string& results_dir, bool allow_other_gpu);

}  // namespace gpucal::model
