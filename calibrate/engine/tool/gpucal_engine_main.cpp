// gpucal-engine: the reference engine's GPU commands (`gpucal probe-engine`
// and `gpucal validate` run this binary, so the planning CLI never needs
// CUDA libraries).
//
//   probe    --calibration IN.json [--model M] [--quick] [--out-dir DIR] [--prefill-attention kernel|decode]
//            the device's state at start and end (power, temperature,
//            clocks, ECC), the framework overheads (CUDA context, cuBLASLt,
//            allocation granularity, NCCL; overhead.hpp), activation peak
//            versus max_num_batched_tokens, decode and prefill step times,
//            decode steps replayed from CUDA graphs and the graphs' memory;
//            fits the activation coefficients and the engine's per-step
//            overhead; writes IN's content plus these as a new calibration
//            file (never replacing one).
//   validate --calibration FILE [--models a,b,c] [--quick] [--out FILE.md] [--prefill-attention kernel|decode]
//            predicted against measured memory and step times per model.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "../../nvml.hpp"
#include "gpucal/engine/engine.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "overhead.hpp"
#include "probe_step.hpp"
#include "gpucal/engine/probes.hpp"
#include "gpucal/engine/validation.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/model/calibration.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/fit.hpp"
#include "gpucal/model/memory_model.hpp"
#include "gpucal/model/throughput_model.hpp"

namespace {

namespace fs = std::filesystem;
namespace eng = gpucal::engine;
namespace model = gpucal::model;

constexpr double gib = 1024.0 * 1024.0 * 1024.0;

void progress(const std::string& line) { std::cerr << "gpucal-engine: " << line << std::endl; }

// The first device and its catalog entry (matched by name or alias).
std::pair<gpucal::kernels::device_info, model::gpu_spec> device_and_gpu() {
  std::string reason;
  const auto d = gpucal::kernels::first_device(&reason);
  if (!d) throw std::runtime_error(reason);
  try {
    return {*d, model::resolve_gpu(d->name)};
  } catch (const gpucal::input_error&) {
    throw gpucal::input_error(fmt::format("GPU '{}' is not in model/catalog/gpus.json; add it with an alias matching that name",
                                         d->name));
  }
}

// The deployment the engine runs, as the model resolves it for the gpucal profile.
struct deployment {
  model::model_spec spec;
  eng::engine_model m;
  eng::engine_options o;
  model::estimate_options est;
};

deployment make_deployment(const std::string& name, std::int64_t max_model_len, bool prefill_kernel) {
  deployment d;
  d.o.prefill_kernel = prefill_kernel;
  d.spec = model::resolve_model(name);
  d.m = eng::engine_model_from(d.spec, eng::linear_format::bf16, std::nullopt);
  const model::engine_profile p = model::resolve_engine("gpucal");
  d.o.gpu_memory_utilization = p.fraction_default;
  d.o.max_num_seqs = static_cast<std::int64_t>(p.max_num_seqs.front().value);
  d.o.max_num_batched_tokens = static_cast<std::int64_t>(p.max_num_batched_tokens.front().value);
  d.o.block_size = p.block_size;
  d.o.max_model_len = std::min(max_model_len, d.spec.max_model_len);
  d.est.gpu_memory_utilization = d.o.gpu_memory_utilization;
  d.est.max_num_seqs = d.o.max_num_seqs;
  d.est.max_num_batched_tokens = d.o.max_num_batched_tokens;
  d.est.max_model_len = d.o.max_model_len;
  d.est.block_size = d.o.block_size;
  d.est.enforce_eager = true;
  return d;
}

double kernels_us(const model::step_time& s) {
  double t = 0;
  for (const auto& op : s.ops)
    if (op.name != "step_overhead") t += op.time_s;
  return t * 1e6;
}

// Prefill lengths the deployment admits: below max_model_len (4096 here) and
// within max_num_batched_tokens, as measure_prefill requires.
std::vector<std::int64_t> prefill_lengths(bool quick) {
  return quick ? std::vector<std::int64_t>{2048} : std::vector<std::int64_t>{512, 2048, 4000};
}

// One probe, reported and passed over when it cannot run (probe_step.hpp).
template <typename Probe>
bool try_probe(const std::string& what, std::vector<std::string>& skipped, Probe&& probe) {
  return gpucal::engine_tool::try_probe(what, skipped, progress, std::forward<Probe>(probe));
}

model::measurement sampled(const std::string& name, const std::string& unit, std::map<std::string, double> params,
                           std::vector<double> samples) {
  model::measurement m;
  m.name = name;
  m.unit = unit;
  m.params = std::move(params);
  m.labels = {{"kind", "engine"}};
  m.samples = std::move(samples);
  return m;
}

// Power, temperature, SM clock and uncorrected ECC errors, as one line and as the calibration's device readings.
std::map<std::string, double> device_state(const gpucal::calibrate::nvml& n, const char* when) {
  std::map<std::string, double> out;
  if (!n.available()) {
    progress(fmt::format("device state at {}: NVML unavailable ({})", when, n.why()));
    return out;
  }
  const auto c = n.read();
  if (c.sm_mhz) out["sm_mhz"] = *c.sm_mhz;
  if (c.mem_mhz) out["mem_mhz"] = *c.mem_mhz;
  if (c.temperature_c) out["temperature_c"] = *c.temperature_c;
  if (const auto w = n.power_w()) out["power_w"] = *w;
  if (const auto e = n.uncorrected_ecc_errors()) out["ecc_uncorrected_errors"] = static_cast<double>(*e);
  std::string line;
  for (const auto& [k, v] : out) line += fmt::format(" {}={:g}", k, v);
  progress(fmt::format("device state at {}:{}{}", when, line, c.throttled() ? " (throttled)" : ""));
  return out;
}

// How prompt steps run attention, as the flag names it and as a sentence.
const char* prefill_path(bool prefill_kernel) {
  return prefill_kernel ? "prompt attention on the prefill kernel" : "prompt attention on the decode kernel, once per query token";
}

int run_probe(const std::string& in_path, const std::string& model_name, bool quick, const std::string& out_dir, bool prefill_kernel) {
  model::calibration_file c = model::load_calibration(in_path);
  // 0. Framework overheads, the CUDA context first: NVML's reading comes before any CUDA call that could make one.
  char bus[32] = {};
  GPUCAL_CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof bus, 0));
  const gpucal::calibrate::nvml nv(bus);
  const auto used_before = gpucal::engine_tool::memory_used_before_cuda(nv);
  c.device.clocks_start = device_state(nv, "start");
  const gpucal::engine_tool::overhead_result oh = gpucal::engine_tool::measure_overheads(nv, used_before, quick, progress);
  const auto device = device_and_gpu();  // not a structured binding: the probes' lambdas capture these
  const auto& dev = device.first;
  const auto& gpu = device.second;
  if (c.device.sku != gpu.slug)
    throw gpucal::input_error(fmt::format("--calibration: {} is for {}, this device is {}", in_path, c.device.sku, gpu.slug));
  const model::engine_profile profile = model::resolve_engine("gpucal");
  deployment d = make_deployment(model_name, 4096, prefill_kernel);
  progress(fmt::format("engine: {}", prefill_path(prefill_kernel)));
  const auto settings = model::resolve_settings(d.spec, gpu, profile, d.est, dev.total_memory_bytes);
  c.measurements.insert(c.measurements.end(), oh.measurements.begin(), oh.measurements.end());
  std::vector<std::string> skipped = oh.skipped;
  if (oh.context_bytes)
    c.coeffs.memory.cuda_context_bytes = {*oh.context_bytes, "measured",
                                          "NVML device memory in use before and after the first CUDA call of gpucal-engine"};
  if (oh.nccl_per_gpu_bytes)
    c.coeffs.memory.nccl_bytes_per_gpu = {*oh.nccl_per_gpu_bytes, "measured",
                                          "cudaMemGetInfo delta per GPU of one NCCL communicator over every GPU of the machine"};
  if (oh.allreduce_latency_us)
    c.coeffs.throughput.allreduce_latency_us = {*oh.allreduce_latency_us, "measured",
                                                "median NCCL all-reduce of 64 KiB (bf16) over every GPU of the machine"};
  if (oh.allreduce_bus_gbps && gpu.nvlink_gbps)
    c.coeffs.throughput.allreduce_efficiency = {std::min(1.0, *oh.allreduce_bus_gbps / *gpu.nvlink_gbps), "measured",
                                                "median NCCL all-reduce bus bandwidth at >= 64 MiB over the datasheet NVLink "
                                                "bandwidth per direction"};

  // 1. Activation peak versus max_num_batched_tokens (a small fixed pool: the pool does not change the peak).
  const std::vector<std::int64_t> token_counts = quick ? std::vector<std::int64_t>{1024, 4096}
                                                       : std::vector<std::int64_t>{512, 1024, 2048, 4096, 8192};
  std::vector<model::activation_point> act_points;
  model::memory_coefficients unit = c.coeffs.memory;
  unit.activation_scale.value = 1;
  unit.activation_fixed_bytes.value = 0;
  std::int64_t non_allocator = 0;
  for (const std::int64_t T : token_counts) try_probe(fmt::format("activation peak at {} tokens", T), skipped, [&] {
    eng::engine_options o = d.o;
    o.max_num_batched_tokens = T;
    o.num_blocks = 64;
    eng::reference_engine e(d.m, o);
    const std::int64_t rows = std::min(T, o.max_num_seqs);
    const auto a = model::estimate_activation(d.spec, settings, profile, unit, T, rows);
    act_points.push_back({T, rows, a.forward_bytes, a.sampler_bytes, static_cast<double>(e.memory().activation_peak_bytes)});
    non_allocator = e.memory().non_allocator_bytes;
    c.measurements.push_back(sampled(fmt::format("engine/activation_peak/{}/tokens={}", d.m.name, T), "bytes",
                                     {{"tokens", static_cast<double>(T)}, {"rows", static_cast<double>(rows)}},
                                     {static_cast<double>(e.memory().activation_peak_bytes)}));
    progress(fmt::format("activation peak {} at {} tokens: {:.3f} GiB (model before the fit: {:.3f} GiB)", d.m.name, T,
                         static_cast<double>(e.memory().activation_peak_bytes) / gib,
                         std::max(a.forward_bytes, a.sampler_bytes) / gib));
  });
  std::string summary;
  const bool activation_fitted = try_probe("activation fit", skipped, [&] {
    const model::activation_fit af = model::fit_activation(act_points, d.m.name);
    c.coeffs.memory.activation_scale = af.scale;
    c.coeffs.memory.activation_fixed_bytes = af.fixed_bytes;
    c.fits.push_back(af.result);
    summary += fmt::format("activation scale {:.4f}, fixed {:.3f} GiB, max residual {:.2f} %", af.scale.value,
                           af.fixed_bytes.value / gib, af.result.residual_max_rel * 100);
  });
  if (!act_points.empty()) {
    c.measurements.push_back(sampled("engine/non_allocator_bytes", "bytes", {}, {static_cast<double>(non_allocator)}));
    c.coeffs.memory.non_torch_bytes = {static_cast<double>(non_allocator), "measured",
                                       "cuBLASLt handle and 64 MiB workspace of gpucal's reference engine, as a cudaMemGetInfo "
                                       "free-memory delta"};
  }

  // 2. Step times against the model's kernels (with this calibration's curves).
  std::vector<model::step_point> decode_points;
  try_probe("step times", skipped, [&] {
    eng::reference_engine e(d.m, d.o);
    progress(fmt::format("{}: {} KV blocks, weights {:.2f} GiB", d.m.name, e.memory().num_blocks,
                         static_cast<double>(e.memory().weights_bytes) / gib));
    const model::throughput_model tm(d.spec, gpu, settings, c.coeffs.throughput, profile);
    const int steps = quick ? 8 : 16;
    for (const std::int64_t B : quick ? std::vector<std::int64_t>{1, 32} : std::vector<std::int64_t>{1, 8, 32, 128})
      for (const std::int64_t L : quick ? std::vector<std::int64_t>{512} : std::vector<std::int64_t>{512, 2048})
        try_probe(fmt::format("decode B={} L={}", B, L), skipped, [&] {
          const eng::step_samples s = eng::measure_decode(e, B, L, steps);
          const double k = kernels_us(tm.decode_step(static_cast<double>(B), static_cast<double>(L) + steps / 2.0 + 1));
          decode_points.push_back({"decode", static_cast<double>(B), static_cast<double>(L), static_cast<double>(B), s.median_us(), k});
          c.measurements.push_back(sampled(fmt::format("engine/decode_step/{}/B={}/L={}", d.m.name, B, L), "us",
                                           {{"batch", static_cast<double>(B)}, {"context", static_cast<double>(L)}}, s.step_us));
          progress(fmt::format("decode B={} L={}: {:.1f} us median, model kernels {:.1f} us", B, L, s.median_us(), k));
        });
    // Prefill steps are measured and kept beside the model's kernels (prompt
    // attention runs the prefill kernel, priced by prefill_attention_efficiency),
    // but stay out of the overhead fit, which reads decode steps only.
    for (const std::int64_t T : prefill_lengths(quick))
      try_probe(fmt::format("prefill T={}", T), skipped, [&] {
        const eng::step_samples s = eng::measure_prefill(e, T, quick ? 3 : 5);
        const double k = kernels_us(tm.prefill(static_cast<double>(T)));
        c.measurements.push_back(sampled(fmt::format("engine/prefill/{}/T={}", d.m.name, T), "us",
                                         {{"tokens", static_cast<double>(T)}, {"prefill_kernel", prefill_kernel ? 1.0 : 0.0}},
                                         s.step_us));
        progress(fmt::format("prefill T={}: {:.1f} us median, model kernels {:.1f} us (not in the overhead fit)", T,
                             s.median_us(), k));
      });
  });
  // 3. The same decode steps captured in CUDA graphs (one per batch size, as
  // vLLM's decode graphs): the step time without per-kernel launches, and the
  // device memory the captured graphs hold. Kept as measurements; the
  // overhead fit stays on the eager steps above.
  try_probe("decode with CUDA graphs", skipped, [&] {
    eng::engine_options og = d.o;
    og.cuda_graphs = true;
    eng::reference_engine e(d.m, og);
    const int steps = quick ? 8 : 16;
    for (const std::int64_t B : quick ? std::vector<std::int64_t>{1, 32} : std::vector<std::int64_t>{1, 8, 32, 128})
      try_probe(fmt::format("decode with CUDA graphs B={} L=512", B), skipped, [&] {
        const eng::step_samples s = eng::measure_decode(e, B, 512, steps);
        c.measurements.push_back(sampled(fmt::format("engine/decode_step_cuda_graphs/{}/B={}/L=512", d.m.name, B), "us",
                                         {{"batch", static_cast<double>(B)}, {"context", 512.0}}, s.step_us));
        progress(fmt::format("decode with CUDA graphs B={} L=512: {:.1f} us median", B, s.median_us()));
      });
    const eng::engine_memory& mm = e.memory();
    c.measurements.push_back(sampled(fmt::format("engine/cuda_graph_bytes/{}", d.m.name), "bytes",
                                     {{"graphs", static_cast<double>(mm.cuda_graphs_captured)}},
                                     {static_cast<double>(mm.cuda_graph_bytes)}));
    progress(fmt::format("CUDA graphs: {} captured, {:.1f} MiB of device memory", mm.cuda_graphs_captured,
                         static_cast<double>(mm.cuda_graph_bytes) / (1 << 20)));
  });
  try_probe("step-overhead fit", skipped, [&] {
    const model::step_overhead_fit so = model::fit_step_overhead(decode_points, "gpucal");
    c.coeffs.throughput.step_overhead_us["gpucal"] = so.overhead_us;
    c.fits.push_back(so.result);
    summary += fmt::format("{}step overhead {:.0f} us over {} decode steps, max residual {:.2f} %", summary.empty() ? "" : "; ",
                           so.overhead_us.value, decode_points.size(), so.result.residual_max_rel * 100);
  });
  if (!activation_fitted && decode_points.empty())
    throw std::runtime_error(fmt::format("probe: nothing could be measured ({})", skipped.empty() ? "" : skipped.front()));

  c.device.clocks_end = device_state(nv, "end");
  c.created_utc = model::utc_now_iso8601();
  const fs::path in(in_path);
  const std::string folder = !out_dir.empty() ? out_dir : in.has_parent_path() ? in.parent_path().string() : ".";
  const std::string out = model::write_calibration(c, folder, in.stem().string() + "_engine");
  std::cout << fmt::format("wrote {} ({})\n", out, summary);
  for (const auto& s : skipped) std::cout << "skipped: " << s << "\n";
  return 0;
}

int run_validate(const std::string& cal_path, const std::vector<std::string>& models, bool quick, const std::string& out_md,
                 bool prefill_kernel) {
  // The validation every reader applies, and the device it was measured on.
  const model::calibration_file cal = model::load_calibration(cal_path, "--calibration");
  const model::coefficients& coeffs = cal.coeffs;
  const auto device = device_and_gpu();  // not a structured binding: the probes' lambdas capture these
  const auto& dev = device.first;
  const auto& gpu = device.second;
  if (cal.device.sku != gpu.slug)
    throw gpucal::input_error(fmt::format("--calibration: {} is for {}, this device is {}", cal_path, cal.device.sku, gpu.slug));
  const model::engine_profile profile = model::resolve_engine("gpucal");
  std::vector<std::string> skipped;
  eng::validation_report r;
  r.header_lines = {fmt::format("device: {} ({}), {:.2f} GiB, driver {}, CUDA runtime {}", dev.name, gpu.slug,
                                static_cast<double>(dev.total_memory_bytes) / gib, dev.driver_version, dev.runtime_version),
                    fmt::format("calibration: {}", cal_path), fmt::format("generated {} by gpucal validate{}", model::utc_now_iso8601(),
                                                                          quick ? " --quick" : ""),
                    fmt::format("engine: gpucal reference engine, bf16 weights and KV, gpu_memory_utilization 0.9, "
                                "max_num_seqs 256, max_num_batched_tokens 8192, max_model_len 4096, block size 16, {}",
                                prefill_path(prefill_kernel))};
  for (const std::string& name : models) try_probe(name, skipped, [&] {
    deployment d = make_deployment(name, 4096, prefill_kernel);
    progress(fmt::format("{}: starting the engine", d.spec.name));
    eng::reference_engine e(d.m, d.o);
    const eng::engine_memory& mm = e.memory();
    const model::memory_estimate est = model::estimate_memory(d.spec, gpu, profile, coeffs, d.est);
    const std::string n = d.spec.name;
    r.rows.push_back({n, "weights", "GiB", static_cast<double>(est.weights_bytes) / gib, static_cast<double>(mm.weights_bytes) / gib,
                      eng::memory_target_pct});
    r.rows.push_back({n, "activation peak", "GiB", static_cast<double>(est.activation.peak_bytes) / gib,
                      static_cast<double>(mm.activation_peak_bytes) / gib, eng::memory_target_pct});
    r.rows.push_back({n, "KV blocks", "blocks", static_cast<double>(est.num_blocks), static_cast<double>(mm.num_blocks),
                      eng::memory_target_pct});
    const double predicted_used = static_cast<double>(est.cuda_context_bytes + est.weights_bytes + est.activation.peak_bytes +
                                                      est.non_torch_bytes + est.kv_pool_bytes);
    r.rows.push_back({n, "peak device memory", "GiB", predicted_used / gib, static_cast<double>(mm.device_used_bytes) / gib,
                      eng::memory_target_pct});
    const auto settings = model::resolve_settings(d.spec, gpu, profile, d.est, dev.total_memory_bytes);
    const model::throughput_model tm(d.spec, gpu, settings, coeffs.throughput, profile);
    const int steps = quick ? 8 : 16;
    for (const std::int64_t B : quick ? std::vector<std::int64_t>{1, 16} : std::vector<std::int64_t>{1, 16, 64})
      for (const std::int64_t L : quick ? std::vector<std::int64_t>{512} : std::vector<std::int64_t>{512, 2048})
        try_probe(fmt::format("{} decode B={} L={}", n, B, L), skipped, [&] {
          const eng::step_samples s = eng::measure_decode(e, B, L, steps);
          const double predicted = tm.decode_step(static_cast<double>(B), static_cast<double>(L) + steps / 2.0 + 1).total_s * 1e3;
          r.rows.push_back({n, fmt::format("decode step B={} L={}", B, L), "ms", predicted, s.median_us() / 1e3, eng::time_target_pct});
          progress(fmt::format("{} decode B={} L={}: measured {:.3f} ms, model {:.3f} ms", n, B, L, s.median_us() / 1e3, predicted));
        });
    for (const std::int64_t T : prefill_lengths(quick))
      try_probe(fmt::format("{} prefill T={}", n, T), skipped, [&] {
        const eng::step_samples s = eng::measure_prefill(e, T, quick ? 3 : 5);
        const double predicted = tm.prefill(static_cast<double>(T)).total_s * 1e3;
        r.rows.push_back({n, fmt::format("prefill T={}", T), "ms", predicted, s.median_us() / 1e3, eng::time_target_pct});
        progress(fmt::format("{} prefill T={}: measured {:.3f} ms, model {:.3f} ms", n, T, s.median_us() / 1e3, predicted));
      });
  });
  for (const auto& s : skipped) r.notes.push_back("Not measured: " + s + ".");
  if (r.rows.empty())
    throw std::runtime_error(fmt::format("validate: nothing could be measured ({})", skipped.empty() ? "no model given" : skipped.front()));
  r.notes.push_back("Step times are host-clock medians from scheduling to the sampled tokens on the host; the model adds the "
                    "calibration's step overhead for the gpucal engine, or the profile's default when it has none (" +
                    model::choose_step_overhead(coeffs.throughput, profile).describe() + ").");
  r.notes.push_back("Peak device memory measured = cudaMemGetInfo total - free once the engine is set up (CUDA context "
                    "included); predicted = CUDA context + weights + activation peak + non-allocator memory + KV pool.");
  const std::string md = eng::render_markdown(r);
  if (!out_md.empty()) model::write_file_atomic(out_md, md);
  std::cout << eng::render_text(r);
  if (!out_md.empty()) std::cout << "wrote " << out_md << "\n";
  return r.misses().empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gpucal-engine: gpucal's reference decoder engine on the GPU (probe, validate)"};
  app.require_subcommand(1);
  std::string cal, model_name = "llama-3-8b", out_dir, out_md;
  std::vector<std::string> models{"llama-3-8b", "qwen2.5-7b", "llama-2-7b"};
  bool quick = false;
  std::string prefill_attention = "kernel";
  CLI::App* probe = app.add_subcommand("probe", "Measure activation peaks and step times; fit them into a new calibration file");
  probe->add_option("--calibration", cal, "Calibration file from `gpucal fit` for this GPU")->required();
  probe->add_option("--model", model_name, "Catalog model the probes run (llama, qwen2 or mistral family)");
  probe->add_option("--out-dir", out_dir, "Folder of the new file (default: the input's)");
  probe->add_flag("--quick", quick, "Fewer points and repeats (about a minute)");
  probe->add_option("--prefill-attention", prefill_attention, "How prompt steps run attention: kernel (prefill kernel) or decode (the decode kernel per query token)")
      ->check(CLI::IsMember({"kernel", "decode"}));
  CLI::App* validate = app.add_subcommand("validate", "Model predictions against the engine's measurements, per model");
  validate->add_option("--calibration", cal, "Calibration file whose coefficients the model uses")->required();
  validate->add_option("--models", models, "Catalog models")->delimiter(',');
  validate->add_option("--out", out_md, "Write the table as Markdown here (atomically)");
  validate->add_flag("--quick", quick, "Fewer points and repeats");
  validate->add_option("--prefill-attention", prefill_attention, "How prompt steps run attention: kernel or decode")
      ->check(CLI::IsMember({"kernel", "decode"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::cerr << "gpucal-engine: error: " << e.what() << "\n";  // one line, as gpucal's own errors
    return 2;
  }
  try {
    const bool prefill_kernel = prefill_attention == "kernel";
    if (probe->parsed()) return run_probe(cal, model_name, quick, out_dir, prefill_kernel);
    return run_validate(cal, models, quick, out_md, prefill_kernel);
  } catch (const gpucal::input_error& e) {
    std::cerr << "gpucal-engine: error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "gpucal-engine: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "gpucal-engine: " << e.what() << "\n";
    return 3;
  }
}
