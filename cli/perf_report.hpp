// `gpucal perf` and `gpucal plan` output: human tables and JSON.
#pragma once

#include <optional>
#include <string>

#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/planner.hpp"
#include "gpucal/model/simulator.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace gpucal::cli {

struct perf_run {
  model::memory_estimate memory;
  double batch = 1, prompt_len = 0, output_len = 0;
  model::step_time prefill;  ///< one prompt
  model::step_time decode;   ///< one step at `batch`, mean context prompt + output / 2
  std::string gemm_kind;
  std::string link;
  std::optional<model::static_batch> static_run;  ///< the batch's prompts arriving at once (when the deployment fits)
};

std::string perf_text(const perf_run& r);
std::string perf_json(const perf_run& r);

struct simulate_run {
  model::memory_estimate memory;
  std::vector<model::sim_request> requests;  ///< moved into the simulation; request_count keeps their number
  std::int64_t request_count = 0;
  std::string source;  ///< "poisson" or the trace's path
  double qps = 0;
  model::length_dist prompt, output;
  std::uint64_t seed = 0;
  std::string preemption;
  std::string step_overhead;
  model::sim_result result;
};

std::string simulate_text(const simulate_run& r);
std::string simulate_json(const simulate_run& r);

std::string plan_text(const model::plan_result& r, const model::model_spec& m, const model::workload& w, int top);
std::string plan_json(const model::plan_result& r, const model::model_spec& m, const model::workload& w, int top);

}  // namespace gpucal::cli
