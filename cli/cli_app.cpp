// gpucal's subcommands: estimate, models, gpus, engines. Flags follow vLLM's
// engine arguments so serving flags can be pasted as they are.
#include "cli_app.hpp"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "calibration_commands.hpp"
#include "estimate_report.hpp"
#include "perf_report.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/files.hpp"
#include "gpucal/model/planner.hpp"
#include "gpucal/model/simulator.hpp"
#include "gpucal/model/throughput_model.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::cli {

namespace {

struct estimate_flags {
  std::string model;
  std::string gpu;
  std::string engine = "vllm";
  std::string calibration;
  model::estimate_options opt;
  std::string dtype, quantization, kv_cache_dtype;
  std::int64_t group_size = 0, max_model_len = 0, max_num_seqs = 0, max_num_batched_tokens = 0, block_size = 0;
  double utilization = 0;
  bool json = false;
  bool allow_other_gpu_calibration = false;
};

// Lines a successful command prints on stderr ("gpucal: warning: ...").
using warnings = std::vector<std::string>;

// The coefficients for one GPU; its warnings join `warn`.
model::coefficients coefficients_with_warnings(const std::string& calibration, const model::gpu_spec& gpu, bool allow_other,
                                               warnings& warn) {
  model::coefficient_choice c = coefficients_for(calibration, gpu, allow_other);
  warn.insert(warn.end(), c.warnings.begin(), c.warnings.end());
  return std::move(c.coeffs);
}

// A path flag that was given must name something.
void check_path_flag(const CLI::App& cmd, const char* flag, const std::string& value) {
  if (cmd.count(flag) > 0 && value.empty()) throw input_error(fmt::format("{}: the path is empty", flag));
}

// Flags shared by the commands that describe one deployment (estimate today;
// perf and plan reuse them).
void add_deployment_flags(CLI::App& cmd, estimate_flags& f) {
  cmd.add_option("--model,-m", f.model, "Catalog name (see `gpucal models`) or path to a config.json")->required();
  cmd.add_option("--gpu,-g", f.gpu, "GPU name (see `gpucal gpus`)")->required();
  cmd.add_option("--tp,--tensor-parallel-size,-t", f.opt.tp, "Tensor-parallel GPUs per replica (default 1)");
  cmd.add_option("--pp,--pipeline-parallel-size", f.opt.pp,
                 "Pipeline stages per replica, each of --tp GPUs (default 1; vLLM's layer split)");
  cmd.add_option("--dtype", f.dtype, "auto | bfloat16 | float16 | float32 (default auto: the config's torch_dtype)");
  cmd.add_option("--quantization,-q", f.quantization,
                 fmt::format("{} (default: the config's quantization_config, else none)", model::quantization_flag_values));
  cmd.add_option("--group-size", f.group_size, "Group size of int4 weights (default: the config's, else 128)");
  cmd.add_option("--kv-cache-dtype", f.kv_cache_dtype, "auto | bfloat16 | float16 | fp8 | fp8_e4m3 | fp8_e5m2 (default auto)");
  cmd.add_option("--engine", f.engine,
                 "Engine memory profile: vllm | sglang | tgi, the newest version profiled, or NAME@VERSION (`gpucal engines`), "
                 "or a profile .json (default vllm)");
  cmd.add_option("--gpu-memory-utilization,--mem-fraction-static,--cuda-memory-fraction", f.utilization,
                 "Share of GPU memory the engine may use, in (0, 1] (default: the engine's)");
  cmd.add_option("--max-model-len", f.max_model_len, "Longest request in tokens (default: the model's)");
  cmd.add_option("--max-num-seqs", f.max_num_seqs, "Most sequences per step (default: the engine's)");
  cmd.add_option("--max-num-batched-tokens", f.max_num_batched_tokens, "Most tokens per step (default: the engine's)");
  cmd.add_option("--block-size", f.block_size, "KV block size in tokens (default: the engine's)");
  cmd.add_flag("--enforce-eager", f.opt.enforce_eager, "No CUDA graphs");
  cmd.add_option("--calibration", f.calibration,
                 "Calibration or coefficients JSON (default: the newest calibration of this GPU in results/, else embedded defaults)");
  cmd.add_flag("--allow-other-gpu-calibration", f.allow_other_gpu_calibration,
               "Apply a --calibration measured on another GPU (with a warning)");
  cmd.add_flag("--json", f.json, "Print one JSON object");
}

// Moves the flags that were given into the optional fields of the options.
void apply_flags(const CLI::App& cmd, estimate_flags& f) {
  auto given = [&cmd](const char* name) { return cmd.count(name) > 0; };
  if (given("--dtype")) f.opt.dtype = f.dtype;
  if (given("--quantization")) f.opt.quantization = f.quantization;
  if (given("--group-size")) f.opt.group_size = f.group_size;
  check_path_flag(cmd, "--calibration", f.calibration);
  if (given("--kv-cache-dtype")) f.opt.kv_cache_dtype = f.kv_cache_dtype;
  if (given("--gpu-memory-utilization")) f.opt.gpu_memory_utilization = f.utilization;
  if (given("--max-model-len")) f.opt.max_model_len = f.max_model_len;
  if (given("--max-num-seqs")) f.opt.max_num_seqs = f.max_num_seqs;
  if (given("--max-num-batched-tokens")) f.opt.max_num_batched_tokens = f.max_num_batched_tokens;
  if (given("--block-size")) f.opt.block_size = f.block_size;
}

int run_estimate(const CLI::App& cmd, estimate_flags& f, std::ostream& out, warnings& warn) {
  apply_flags(cmd, f);
  const model::model_spec m = model::resolve_model(f.model);
  const model::gpu_spec& gpu = model::resolve_gpu(f.gpu);
  const model::engine_profile engine = model::resolve_engine(f.engine);
  const model::coefficients coeffs = coefficients_with_warnings(f.calibration, gpu, f.allow_other_gpu_calibration, warn);
  model::memory_estimate e = model::estimate_memory(m, gpu, engine, coeffs, f.opt);
  e.notes.insert(e.notes.end(), warn.begin(), warn.end());
  out << (f.json ? estimate_json(e) : estimate_text(e));
  return 0;
}

struct perf_flags {
  double batch = 0, prompt_len = 0, output_len = 0;
};

// A finite number in (0, hi].
double bounded_positive(const char* flag, double v, double hi, const char* unit) {
  if (!(std::isfinite(v) && v > 0 && v <= hi))
    throw input_error(fmt::format("{}: {} is outside (0, {:g}] ({})", flag, v, hi, unit));
  return v;
}

int run_perf(const CLI::App& cmd, estimate_flags& f, const perf_flags& p, std::ostream& out, warnings& warn) {
  apply_flags(cmd, f);
  bounded_positive("--batch", p.batch, static_cast<double>(model::limits::max_num_seqs), "sequences");
  bounded_positive("--prompt-len", p.prompt_len, static_cast<double>(model::limits::context), "tokens");
  bounded_positive("--output-len", p.output_len, static_cast<double>(model::limits::context), "tokens");
  const model::model_spec m = model::resolve_model(f.model);
  const model::gpu_spec& gpu = model::resolve_gpu(f.gpu);
  const model::engine_profile engine = model::resolve_engine(f.engine);
  const model::coefficients coeffs = coefficients_with_warnings(f.calibration, gpu, f.allow_other_gpu_calibration, warn);
  // One request is prompt + output tokens: it must fit the context, as estimate and plan require.
  const auto request_tokens = static_cast<std::int64_t>(std::ceil(p.prompt_len + p.output_len));
  const std::int64_t context = f.opt.max_model_len ? *f.opt.max_model_len : m.max_model_len;
  if (request_tokens > context)
    throw input_error(fmt::format("--prompt-len + --output-len: {} tokens exceed the {} tokens of {} ({})", request_tokens,
                                  context, f.opt.max_model_len ? "--max-model-len" : m.name,
                                  f.opt.max_model_len ? "raise it or shorten the request" : "its max_model_len"));
  // Size the pool for the requests at hand unless the user set the length.
  if (!f.opt.max_model_len) f.opt.max_model_len = request_tokens;
  perf_run r;
  r.memory = model::estimate_memory(m, gpu, engine, coeffs, f.opt);
  r.memory.notes.insert(r.memory.notes.end(), warn.begin(), warn.end());
  const model::throughput_model perf(m, gpu, r.memory.settings, coeffs.throughput, engine);
  r.batch = p.batch;
  r.prompt_len = p.prompt_len;
  r.output_len = p.output_len;
  r.prefill = perf.prefill(p.prompt_len);
  r.decode = perf.decode_step(p.batch, p.prompt_len + p.output_len / 2);
  r.gemm_kind = perf.gemm_kind();
  r.link = r.memory.settings.tp > 1 ? fmt::format("{} {:g} GB/s", perf.link_name(), perf.link_gbps()) : "";
  // The batch's prompts arriving at once, in whole tokens and sequences.
  if (r.memory.fits)
    r.static_run = model::static_batch_estimate(perf, r.memory, std::max<std::int64_t>(1, std::llround(p.batch)),
                                                std::max<std::int64_t>(1, std::llround(p.prompt_len)),
                                                std::max<std::int64_t>(1, std::llround(p.output_len)));
  out << (f.json ? perf_json(r) : perf_text(r));
  return 0;
}

struct simulate_flags {
  double qps = 0;
  std::string prompt_len, output_len, trace;
  std::int64_t requests = 1000;
  std::uint64_t seed = 0;
  std::string preemption = "keep";
};

int run_simulate(const CLI::App& cmd, estimate_flags& f, const simulate_flags& sf, std::ostream& out, warnings& warn) {
  apply_flags(cmd, f);
  check_path_flag(cmd, "--trace", sf.trace);
  const bool traced = cmd.count("--trace") > 0;
  if (traced && (cmd.count("--qps") || cmd.count("--prompt-len") || cmd.count("--output-len") || cmd.count("--requests")))
    throw input_error("--trace: the trace gives arrivals and lengths; leave out --qps, --prompt-len, --output-len and --requests");
  if (sf.preemption != "keep" && sf.preemption != "drop")
    throw input_error(fmt::format("--preemption: '{}' is not a mode (allowed: keep, drop)", sf.preemption));
  simulate_run run;
  if (traced) {
    run.requests = model::parse_trace(model::read_input_file(sf.trace, "--trace"), sf.trace);
    run.source = sf.trace;
  } else {
    for (const char* flag : {"--qps", "--prompt-len", "--output-len"})
      if (cmd.count(flag) == 0) throw input_error(fmt::format("{}: required (or give --trace FILE)", flag));
    bounded_positive("--qps", sf.qps, model::limits::qps, "requests per second");
    if (sf.requests < 1 || sf.requests > model::limits::sim_requests)
      throw input_error(fmt::format("--requests: {} is outside [1, {}]", sf.requests, model::limits::sim_requests));
    run.prompt = model::parse_length_dist(sf.prompt_len, "--prompt-len");
    run.output = model::parse_length_dist(sf.output_len, "--output-len");
    run.qps = sf.qps;
    run.seed = sf.seed;
    run.requests = model::poisson_requests(sf.qps, run.prompt, run.output, sf.requests, sf.seed);
    run.source = "poisson";
  }
  const model::model_spec m = model::resolve_model(f.model);
  const model::gpu_spec& gpu = model::resolve_gpu(f.gpu);
  const model::engine_profile engine = model::resolve_engine(f.engine);
  const model::coefficients coeffs = coefficients_with_warnings(f.calibration, gpu, f.allow_other_gpu_calibration, warn);
  std::int64_t longest = 0;
  for (const auto& q : run.requests) longest = std::max(longest, q.prompt_tokens + q.output_tokens);
  const std::int64_t context = f.opt.max_model_len ? *f.opt.max_model_len : m.max_model_len;
  if (longest > context)
    throw input_error(fmt::format("{}: a request of {} tokens exceeds the {} tokens of {}", traced ? "--trace" : "--prompt-len + --output-len",
                                  longest, context, f.opt.max_model_len ? "--max-model-len" : m.name));
  // Size the pool for the longest request at hand unless the user set the length.
  if (!f.opt.max_model_len) f.opt.max_model_len = longest;
  run.memory = model::estimate_memory(m, gpu, engine, coeffs, f.opt);
  run.memory.notes.insert(run.memory.notes.end(), warn.begin(), warn.end());
  if (!run.memory.fits) throw input_error(fmt::format("--model: the deployment does not fit, nothing to simulate: {}", run.memory.failures.front()));
  const model::throughput_model perf(m, gpu, run.memory.settings, coeffs.throughput, engine);
  model::sim_options so;
  run.request_count = static_cast<std::int64_t>(run.requests.size());
  so.requests = std::move(run.requests);
  so.preemption = sf.preemption == "keep" ? model::preemption_mode::keep_generated : model::preemption_mode::drop_generated;
  run.preemption = sf.preemption;
  run.result = model::simulate(perf, run.memory, std::move(so));
  run.step_overhead = perf.step_overhead().describe();
  out << (f.json ? simulate_json(run) : simulate_text(run));
  return 0;
}

struct plan_flags {
  std::string model, engine = "vllm", calibration, prices;
  model::workload w;
  std::vector<std::string> gpus, quantizations, kv_dtypes;
  int max_gpus = 64, top = 10;
  std::string verify;
  std::string mode = "agg";
  double kv_link_gbps = 0;
  std::int64_t max_num_batched_tokens = 0;
  bool json = false;
  bool allow_other_gpu_calibration = false;
};

std::map<std::string, double> parse_prices(const std::string& text) {
  std::map<std::string, double> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const std::size_t eq = item.find('=');
    double price = -1;
    if (eq != std::string::npos) {
      try {
        std::size_t used = 0;
        price = std::stod(item.substr(eq + 1), &used);
        if (used != item.size() - eq - 1) price = -1;
      } catch (const std::exception&) {
        price = -1;
      }
    }
    if (eq == std::string::npos || !(price > 0 && price <= model::limits::price_per_gpu_hour))
      throw input_error(fmt::format("--gpu-prices: '{}' is not GPU=PRICE with a price in (0, {:g}] $/GPU-hour", item,
                                    model::limits::price_per_gpu_hour));
    const std::string& slug = model::resolve_gpu(item.substr(0, eq), "--gpu-prices").slug;
    if (!out.emplace(slug, price).second)
      throw input_error(fmt::format("--gpu-prices: {} is priced twice ('{}' repeats it)", slug, item));
    start = end + 1;
  }
  return out;
}

int run_plan(const CLI::App& cmd, const plan_flags& f, std::ostream& out, warnings& warn) {
  check_path_flag(cmd, "--calibration", f.calibration);
  if (f.top <= 0 || f.top > model::limits::top)
    throw input_error(fmt::format("--top: {} is outside [1, {}]", f.top, model::limits::top));
  const model::model_spec m = model::resolve_model(f.model);
  model::plan_options opt;
  opt.gpus = f.gpus;
  opt.max_gpus = f.max_gpus;
  if (!f.quantizations.empty()) opt.quantizations = f.quantizations;
  if (!f.kv_dtypes.empty()) {
    for (const auto& k : f.kv_dtypes)
      if (k != "auto" && k != "fp8") throw input_error(fmt::format("--kv-cache-dtype: '{}' is not a planner choice (allowed: auto, fp8)", k));
    opt.kv_cache_dtypes = f.kv_dtypes;
  }
  opt.engine = f.engine;
  if (cmd.count("--max-num-batched-tokens") > 0) opt.max_num_batched_tokens = f.max_num_batched_tokens;
  opt.price_per_gpu_hour = parse_prices(f.prices);
  if (f.mode != "agg" && f.mode != "disagg" && f.mode != "both")
    throw input_error(fmt::format("--mode: '{}' is not a mode (allowed: agg, disagg, both)", f.mode));
  opt.aggregated = f.mode != "disagg";
  opt.disaggregated = f.mode != "agg";
  if (cmd.count("--kv-link-gbps") > 0) {
    if (!(std::isfinite(f.kv_link_gbps) && f.kv_link_gbps > 0 && f.kv_link_gbps <= 1e5))
      throw input_error(fmt::format("--kv-link-gbps: {} is outside (0, 100000] GB/s", f.kv_link_gbps));
    if (f.mode == "agg") throw input_error("--kv-link-gbps: applies to --mode disagg or both");
    opt.kv_link_gbps = f.kv_link_gbps;
  }
  // Each GPU plans on its own newest calibration, or on --calibration (which
  // must be of that GPU, or a GPU-neutral coefficients file).
  const auto add = [&](const model::gpu_spec& g) {
    opt.coefficients_by_gpu.emplace(g.slug, coefficients_with_warnings(f.calibration, g, f.allow_other_gpu_calibration, warn));
  };
  if (opt.gpus.empty()) {
    for (const auto& g : model::list_gpus()) add(g);
  } else {
    for (const auto& name : opt.gpus) add(model::resolve_gpu(name, "--gpus"));
  }
  model::plan_result r = model::plan_deployment(m, f.w, opt, model::default_coefficients());
  if (cmd.count("--verify") > 0) {
    if (!f.verify.empty() && f.verify != "strict" && f.verify != "on")
      throw input_error(fmt::format("--verify: '{}' is not a mode (allowed: nothing, on, strict)", f.verify));
    model::verify_options v;
    v.strict = f.verify == "strict";
    v.top = std::min(5, f.top);
    model::verify_plans(m, f.w, opt, model::default_coefficients(), r, v);
  }
  out << (f.json ? plan_json(r, m, f.w, f.top) : plan_text(r, m, f.w, f.top));
  return 0;
}

int run_models(bool json, bool families, std::ostream& out) {
  if (families) {
    // The config.json model_type values gpucal reads, with the family mapping that reads each.
    const auto types = model::supported_families();
    if (json) {
      nlohmann::ordered_json j = nlohmann::ordered_json::array();
      for (const auto& [type, family] : types) j.push_back({{"model_type", type}, {"family", family}});
      out << j.dump(2) << "\n";
      return 0;
    }
    out << fmt::format("{:<22} {}\n", "model_type", "read as");
    for (const auto& [type, family] : types) out << fmt::format("{:<22} {}\n", type, family);
    return 0;
  }
  const auto models = model::list_models();
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& e : models) {
      const model::model_spec m = model::resolve_model(e.name);
      const auto inv = model::build_inventory(m, 1);
      j.push_back({{"name", e.name}, {"aliases", e.aliases}, {"hf_repo", e.hf_repo}, {"model_type", m.model_type},
                   {"layers", m.num_layers()}, {"params", inv.total_params()}, {"checkpoint_params", inv.checkpoint_params()},
                   {"active_params", inv.active_params()}, {"source", e.source}});
    }
    out << j.dump(2) << "\n";
    return 0;
  }
  out << fmt::format("{:<40} {:<18} {:>18} {:>16} {:>6}  {}\n", "name", "type", "params (loaded)", "active", "layers", "hf repo");
  for (const auto& e : models) {
    const model::model_spec m = model::resolve_model(e.name);
    const auto inv = model::build_inventory(m, 1);
    out << fmt::format("{:<40} {:<18} {:>18} {:>16} {:>6}  {}\n", e.name, m.model_type, group_digits(inv.total_params()),
                       group_digits(inv.active_params()), m.num_layers(), e.hf_repo);
  }
  return 0;
}

int run_gpus(bool json, const std::string& slug_for, std::ostream& out) {
  if (!slug_for.empty()) {
    // The catalog slug of a device name as CUDA reports it (scripts use it to name results/<sku>/).
    out << model::resolve_gpu(slug_for, "--slug-for").slug << "\n";
    return 0;
  }
  const auto& gpus = model::list_gpus();
  if (json) {
    nlohmann::ordered_json j = nlohmann::ordered_json::array();
    for (const auto& g : gpus)
      j.push_back({{"name", g.name}, {"slug", g.slug}, {"vendor", g.vendor}, {"aliases", g.aliases}, {"memory_bytes", g.memory_bytes},
                   {"hbm_bandwidth_gbps", g.hbm_bandwidth_gbps}, {"peak_tflops", g.peak_tflops},
                   {"compute_capability", g.compute_capability}, {"sm_count", g.sm_count}, {"sources", g.sources}});
    out << j.dump(2) << "\n";
    return 0;
  }
  out << fmt::format("{:<28} {:<26} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10} {:>5} {:>7}\n", "name", "slug", "vendor", "mem GiB",
                     "HBM GB/s", "bf16 TF/s", "fp8 TF/s", "fp4 TF/s", "SMs", "cc");
  for (const auto& g : gpus) {
    const auto peak = [&g](const char* k) { return g.supports(k) ? fmt::format("{:.0f}", g.peak_tflops.at(k)) : std::string("-"); };
    out << fmt::format("{:<28} {:<26} {:>6} {:>9.1f} {:>10.0f} {:>10} {:>10} {:>10} {:>5} {:>7}\n", g.name, g.slug, g.vendor,
                       to_gib(static_cast<double>(g.memory_bytes)), g.hbm_bandwidth_gbps, peak("bf16"), peak("fp8"), peak("fp4"),
                       g.sm_count, g.compute_capability);
  }
  return 0;
}

int run_engines(std::ostream& out) {
  // Oldest first within an engine; `--engine NAME` takes the newest, NAME@VERSION another.
  auto engines = model::list_engines();
  std::stable_sort(engines.begin(), engines.end(), [](const auto& a, const auto& b) { return a.engine < b.engine; });
  for (const auto& e : engines) {
    const bool newest = model::resolve_engine(e.engine).version == e.version;
    out << fmt::format("{:<16} {} {} (memory flag {}, default {:g}, block size {}){}\n", e.engine + "@" + e.version,
                       e.display_name, e.version, e.fraction_flag, e.fraction_default, e.block_size,
                       newest ? fmt::format("  [--engine {}]", e.engine) : "");
  }
  return 0;
}

// A message as one line of printable text: control characters (a newline in
// a config's model_type, say) are shown escaped, and a message is cut at
// 2,000 characters.
std::string one_line(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
    else out += c;
  }
  if (out.size() > 2000) out = out.substr(0, 1997) + "...";
  return out;
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CLI::App app{"gpucal: what an LLM inference engine really costs on a GPU"};
  app.name("gpucal");
  app.require_subcommand(1);

  estimate_flags ef;
  CLI::App* estimate = app.add_subcommand("estimate", "Memory breakdown, KV capacity and verdict for one deployment");
  add_deployment_flags(*estimate, ef);

  estimate_flags pf;
  perf_flags perf_args;
  CLI::App* perf = app.add_subcommand("perf", "TTFT, TPOT, tokens/s and per-operator step times for one deployment");
  add_deployment_flags(*perf, pf);
  perf->add_option("--batch,-b", perf_args.batch, "Sequences decoded per step")->required();
  perf->add_option("--prompt-len", perf_args.prompt_len, "Prompt tokens")->required();
  perf->add_option("--output-len", perf_args.output_len, "Generated tokens")->required();

  plan_flags plf;
  estimate_flags sim_f;
  simulate_flags sim_args;
  CLI::App* simulate = app.add_subcommand("simulate", "Continuous batching of one replica, step by step: TTFT, TPOT, ITL and E2E percentiles");
  add_deployment_flags(*simulate, sim_f);
  simulate->add_option("--qps", sim_args.qps, "Poisson arrival rate, requests per second");
  simulate->add_option("--prompt-len", sim_args.prompt_len, "Prompt tokens: N, uniform:LO:HI or lognormal:MEDIAN:SIGMA");
  simulate->add_option("--output-len", sim_args.output_len, "Output tokens: N, uniform:LO:HI or lognormal:MEDIAN:SIGMA");
  simulate->add_option("--requests,-n", sim_args.requests, "Requests to simulate (default 1000)");
  simulate->add_option("--seed", sim_args.seed, "Seed of the arrivals and lengths (default 0)");
  simulate->add_option("--trace", sim_args.trace, "JSONL trace instead: arrival_s, prompt_tokens, output_tokens per line");
  simulate->add_option("--preemption", sim_args.preemption,
                       "keep: a preempted request keeps its generated tokens and re-prefills them (vLLM, default); drop: it regenerates them");

  CLI::App* plan = app.add_subcommand("plan", "Fewest GPUs that carry a workload within its latency targets");
  plan->add_option("--model,-m", plf.model, "Catalog name or path to a config.json")->required();
  plan->add_option("--qps", plf.w.qps, "Requests per second")->required();
  plan->add_option("--prompt-len", plf.w.prompt_len, "Mean prompt tokens")->required();
  plan->add_option("--output-len", plf.w.output_len, "Mean generated tokens")->required();
  plan->add_option("--ttft-p99", plf.w.ttft_p99_s, "TTFT p99 target in seconds")->required();
  plan->add_option("--tpot-p99", plf.w.tpot_p99_s,
                   "TPOT p99 target in seconds, per request: (E2E - TTFT) / (output tokens - 1), as vLLM's bench serve")->required();
  plan->add_option("--itl-p99", plf.w.itl_p99_s, "ITL p99 target in seconds, between consecutive tokens (default: none)");
  plan->add_option("--gpus", plf.gpus, "GPUs to consider, comma-separated (default: the whole catalog)")->delimiter(',');
  plan->add_option("--max-gpus", plf.max_gpus, "Most GPUs in total (default 64)");
  plan->add_option("--quantization,-q", plf.quantizations, "Weight formats to consider: none, fp8, int8, int4 (default all)")
      ->delimiter(',');
  plan->add_option("--kv-cache-dtype", plf.kv_dtypes, "KV dtypes to consider: auto, fp8 (default both)")->delimiter(',');
  plan->add_option("--engine", plf.engine, "Engine profile: vllm | sglang | tgi (default vllm)");
  plan->add_option("--calibration", plf.calibration,
                   "Calibration or coefficients JSON (default: each GPU's newest calibration in results/, else embedded defaults)");
  plan->add_flag("--allow-other-gpu-calibration", plf.allow_other_gpu_calibration,
                 "Apply a --calibration measured on one GPU to every GPU planned (with a warning)");
  plan->add_option("--gpu-prices", plf.prices,
                   "$/GPU-hour, e.g. h100-sxm=2.5,a100-80gb=1.6, over the catalog's dated list prices (model/catalog/prices.json); "
                   "plans rank by cost when every GPU searched has a price");
  plan->add_option("--top", plf.top, "Plans to show (default 10)");
  plan->add_option("--max-num-batched-tokens", plf.max_num_batched_tokens,
                   "Chunked-prefill tokens per step (default: the engine's); smaller chunks lower TPOT p99");
  plan->add_option("--mode", plf.mode,
                   "agg: replicas that prefill and decode (default); disagg: separate prefill and decode pools with the KV moved "
                   "between them; both: the best of each, side by side");
  plan->add_option("--kv-link-gbps", plf.kv_link_gbps,
                   "disagg: GB/s per GPU the KV moves at between pools (default: the GPU's NVLink, i.e. one NVLink domain; "
                   "e.g. 50 for 400 Gb/s RDMA per GPU)");
  plan->add_option("--verify", plf.verify,
                   "Re-check the best 5 plans by simulation (gpucal simulate) and show analytic and simulated p99 side by side; "
                   "`--verify strict` drops plans whose simulated p99 misses a target")
      ->expected(0, 1);
  plan->add_flag("--json", plf.json, "Print one JSON object");

  std::string fit_bench, fit_gpu, fit_out = "results";
  bool fit_json = false;
  CLI::App* fit = app.add_subcommand("fit", "Build a calibration file from gpucal_bench JSON (fits with residuals)");
  fit->add_option("--bench", fit_bench, "gpucal_bench JSON with every repetition (gpu-run's bench.json)")->required();
  fit->add_option("--gpu,-g", fit_gpu, "GPU the benchmarks ran on (see `gpucal gpus`)")->required();
  fit->add_option("--out", fit_out, "Results folder; the file goes to OUT/<sku>/ (default results)");
  fit->add_flag("--json", fit_json, "Print JSON");

  fit_engine_args fea;
  CLI::App* fit_engine = app.add_subcommand("fit-engine", "Fit a vLLM profile's memory terms to vLLM startup logs; writes a profile --engine reads");
  fit_engine->add_option("--vllm-log", fea.logs, "vLLM startup logs (INFO or DEBUG level)")->required();
  fit_engine->add_option("--gpu,-g", fea.gpu, "GPU the logs ran on")->required();
  fit_engine->add_option("--out", fea.out, "Profile to write (gpucal.engine/1)")->required();
  fit_engine->add_option("--base", fea.base, "Profile to start from (default: vllm@ the logs' version)");
  fit_engine->add_option("--model-for", fea.model_for, "REPO=MODEL: the catalog model (or config.json) for a log's model");
  fit_engine->add_option("--holdout", fea.holdout, "Keep every Nth log out of the fit and report its error (default 0: none)");
  fit_engine->add_flag("--json", fea.json, "Print JSON");

  std::string merge_out;
  std::vector<std::string> merge_inputs;
  CLI::App* merge = app.add_subcommand("merge-bench",
                                       "Merge gpucal_bench JSON files (one per family) into one, keeping the complete runs of a file cut off mid-write");
  merge->add_option("inputs", merge_inputs, "gpucal_bench JSON files")->required();
  merge->add_option("--out", merge_out, "Merged JSON file")->required();

  std::string cmp_old, cmp_new;
  double cmp_threshold = 5, cmp_alpha = 0.01;
  bool cmp_json = false;
  CLI::App* compare = app.add_subcommand("compare", "Per-metric change between two calibration files; exit 1 on a significant regression");
  compare->add_option("old", cmp_old, "Older calibration file")->required();
  compare->add_option("new", cmp_new, "Newer calibration file")->required();
  compare->add_option("--threshold", cmp_threshold, "Regression threshold in percent (default 5)");
  compare->add_option("--alpha", cmp_alpha, "Significance level of the Mann-Whitney test (default 0.01)");
  compare->add_flag("--json", cmp_json, "Print JSON");

  std::string history_dir, show_path;
  CLI::App* history = app.add_subcommand("history", "One row per calibration file of a GPU folder");
  history->add_option("dir", history_dir, "e.g. results/h100-sxm-80gb")->required();
  CLI::App* show = app.add_subcommand("show", "Summary of one calibration file");
  show->add_option("file", show_path, "Calibration file")->required();

  std::string export_format, export_file, export_out = ".";
  CLI::App* exporter = app.add_subcommand("export", "Write a calibration in the formats other planners read");
  exporter->add_option("--format", export_format, "llm-analysis | csv")->required();
  exporter->add_option("file", export_file, "Calibration file")->required();
  exporter->add_option("--out", export_out, "Output folder (default .)");

  bool models_json = false, gpus_json = false, models_families = false;
  // Run by gpucal-engine (see main.cpp); reaching run_cli means it was not found.
  CLI::App* validate = app.add_subcommand("validate", "Model against gpucal's reference engine on this GPU (runs gpucal-engine)");
  CLI::App* probe_engine = app.add_subcommand("probe-engine", "Activation peaks and step times of the reference engine into a calibration file (runs gpucal-engine)");
  for (CLI::App* sub : {validate, probe_engine}) sub->allow_extras();
  CLI::App* models = app.add_subcommand("models", "List the embedded model catalog");
  models->add_flag("--json", models_json, "Print JSON");
  models->add_flag("--families", models_families, "List the config.json model_type values gpucal reads");
  CLI::App* gpus = app.add_subcommand("gpus", "List the embedded GPU catalog");
  gpus->add_flag("--json", gpus_json, "Print JSON");
  std::string gpus_slug_for;
  gpus->add_option("--slug-for", gpus_slug_for, "Print the slug of the GPU with this name or alias (e.g. as CUDA names it)");
  CLI::App* engines = app.add_subcommand("engines", "List the engine memory profiles");

  // CLI11 reports an unknown command as "A subcommand is required"; name it instead.
  if (!args.empty() && !args.front().starts_with("-")) {
    std::string known;
    bool found = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      found = found || sub->get_name() == args.front();
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!found) {
      err << "gpucal: error: unknown command '" << one_line(args.front()) << "' (allowed: " << known << ")\n";
      return 2;
    }
  }
  std::vector<const char*> argv{"gpucal"};
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::ParseError& e) {
    // A subcommand's --help arrives as CallForHelp from within that subcommand.
    if (e.get_exit_code() == 0) {
      for (CLI::App* sub : app.get_subcommands()) out << sub->help();
      return 0;
    }
    err << "gpucal: error: " << one_line(e.what()) << "\n";
    return 2;
  }

  std::ostringstream buffer;  // nothing reaches `out` unless the command succeeds
  warnings warn;
  try {
    int rc = 1;
    if (estimate->parsed()) rc = run_estimate(*estimate, ef, buffer, warn);
    else if (perf->parsed()) rc = run_perf(*perf, pf, perf_args, buffer, warn);
    else if (plan->parsed()) rc = run_plan(*plan, plf, buffer, warn);
    else if (simulate->parsed()) rc = run_simulate(*simulate, sim_f, sim_args, buffer, warn);
    else if (models->parsed()) rc = run_models(models_json, models_families, buffer);
    else if (gpus->parsed()) rc = run_gpus(gpus_json, gpus_slug_for, buffer);
    else if (engines->parsed()) rc = run_engines(buffer);
    else if (fit->parsed()) rc = run_fit(fit_bench, fit_gpu, fit_out, fit_json, buffer);
    else if (merge->parsed()) rc = run_merge_bench(merge_inputs, merge_out, buffer);
    else if (fit_engine->parsed()) rc = run_fit_engine(fea, buffer);
    else if (compare->parsed()) rc = run_compare(cmp_old, cmp_new, cmp_threshold, cmp_alpha, cmp_json, buffer);
    else if (history->parsed()) rc = run_history(history_dir, buffer);
    else if (show->parsed()) rc = run_show(show_path, buffer);
    else if (exporter->parsed()) rc = run_export(export_format, export_file, export_out, buffer);
    else if (validate->parsed() || probe_engine->parsed())
      throw input_error(fmt::format("{} needs gpucal-engine, which builds with the CUDA targets: not found beside gpucal "
                                    "(set GPUCAL_ENGINE to its path)", validate->parsed() ? "validate" : "probe-engine"));
    for (const auto& w : warn) err << "gpucal: warning: " << one_line(w) << "\n";
    out << buffer.str();
    return rc;
  } catch (const input_error& e) {
    err << "gpucal: error: " << one_line(e.what()) << "\n";
    return 2;
  } catch (const std::exception& e) {
    err << "gpucal: internal error: " << one_line(e.what()) << "\n";
    return 1;
  }
}

}  // namespace gpucal::cli
