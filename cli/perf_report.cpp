// Renderings of `gpucal perf` (per-operator step times) and `gpucal plan`
// (ranked deployments and the first reason each rejected family failed).
#include "perf_report.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "estimate_report.hpp"
#include "report_json.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::cli {

using nlohmann::ordered_json;

namespace {

double ttft_s(const perf_run& r) { return r.prefill.total_s; }
double tpot_s(const perf_run& r) { return r.decode.total_s; }

std::string op_table(const model::step_time& s) {
  std::string o = fmt::format("  {:<16} {:>11} {:>8} {:>7} {:>12} {:>12}\n", "operator", "time", "bound", "share",
                              "GFLOP", "MB moved");
  for (const auto& op : s.ops)
    o += fmt::format("  {:<16} {:>8.3f} ms {:>8} {:>6.1f}% {:>12.2f} {:>12.1f}\n", op.name, op.time_s * 1e3,
                     model::bound_name(op.bound_by), 100 * op.time_s / s.total_s, op.flops / 1e9, op.bytes / 1e6);
  o += fmt::format("  {:<16} {:>8.3f} ms\n", "total", s.total_s * 1e3);
  return o;
}

ordered_json op_json(const model::step_time& s) {
  ordered_json a = ordered_json::array();
  for (const auto& op : s.ops)
    a.push_back({{"name", op.name}, {"time_s", op.time_s}, {"bound", model::bound_name(op.bound_by)},
                 {"share", op.time_s / s.total_s}, {"flops", op.flops}, {"bytes", op.bytes}});
  return a;
}

}  // namespace

std::string perf_text(const perf_run& r) {
  const auto& e = r.memory;
  std::string o;
  o += fmt::format("gpucal perf: {} on {} x{} (tp={}{}), {} linear layers ({}), KV {}, {} {}\n", e.model.name, e.gpu.name,
                   e.settings.tp * e.settings.pp, e.settings.tp,
                   e.settings.pp > 1 ? fmt::format(", pp={}: the stages in turn, no overlap counted", e.settings.pp) : "",
                   r.gemm_kind, e.settings.quant.describe(),
                   model::dtype_name(e.settings.kv_dtype), e.engine.display_name, e.engine.version);
  o += fmt::format("coefficients: {}; all-reduce over {}\n", e.coefficients_source, r.link.empty() ? "-" : r.link);
  o += fmt::format("step overhead: {}\n", r.decode.overhead.describe());
  o += fmt::format("workload: batch {:g}, prompt {:g} tokens, output {:g} tokens (mean context {:g})\n\n", r.batch,
                   r.prompt_len, r.output_len, r.prompt_len + r.output_len / 2);
  o += fmt::format("TTFT (prefill of one prompt): {:.1f} ms\n", ttft_s(r) * 1e3);
  o += fmt::format("TPOT (decode step at batch {:g}): {:.2f} ms\n", r.batch, tpot_s(r) * 1e3);
  o += fmt::format("output tokens/s: {:.0f} per replica ({:.0f} per GPU)\n", r.batch / tpot_s(r),
                   r.batch / tpot_s(r) / (e.settings.tp * e.settings.pp));
  const std::int64_t need = static_cast<std::int64_t>(r.batch) * e.kv.bytes_for(static_cast<std::int64_t>(r.prompt_len + r.output_len));
  o += fmt::format("KV for the batch at prompt + output: {:.2f} GiB of a {:.2f} GiB pool ({})\n\n", to_gib(need),
                   to_gib(e.kv_pool_bytes), need <= e.kv_pool_bytes ? "fits" : "DOES NOT FIT");
  if (const auto& b = r.static_run) {
    o += fmt::format("Static batch ({} prompts arriving at once; rule: their {} x {} prompt tokens in {} prefill step(s) of up to "
                     "max_num_batched_tokens {}, then {} decode steps at batch {} over contexts {} to {}):\n",
                     b->batch, b->batch, b->prompt_tokens, b->prefill_steps, e.settings.max_num_batched_tokens,
                     b->output_tokens - 1, b->batch, b->prompt_tokens + 1, b->prompt_tokens + b->output_tokens - 1);
    o += fmt::format("  prefill {:.3f} s + decode {:.3f} s = batch E2E {:.3f} s, {:.0f} output tokens/s", b->prefill_s, b->decode_s,
                     b->e2e_s, b->output_tokens_per_s);
    if (std::isfinite(b->simulated_e2e_s))
      o += fmt::format("; simulated {:.3f} s ({:+.1f}%{})", b->simulated_e2e_s, 100 * (b->simulated_e2e_s / b->e2e_s - 1),
                       b->simulated_preemptions > 0 ? fmt::format(", {} preemptions", b->simulated_preemptions) : "");
    o += "\n\n";
  }
  o += "Decode step\n" + op_table(r.decode);
  o += "\nPrefill step\n" + op_table(r.prefill);
  return o;
}

std::string perf_json(const perf_run& r) {
  const auto& e = r.memory;
  ordered_json j = deployment_json(e, "gpucal.perf/1");
  j["gemm_kind"] = r.gemm_kind;
  j["batch"] = r.batch;
  j["prompt_len"] = r.prompt_len;
  j["output_len"] = r.output_len;
  j["ttft_s"] = ttft_s(r);
  j["tpot_s"] = tpot_s(r);
  j["output_tokens_per_s"] = r.batch / tpot_s(r);
  j["prefill_s"] = r.prefill.total_s;
  j["decode_step_s"] = r.decode.total_s;
  j["step_overhead_us"] = r.decode.overhead.overhead_us.value;
  j["step_overhead_source"] = r.decode.overhead.origin();
  j["operators"] = op_json(r.decode);
  j["prefill_operators"] = op_json(r.prefill);
  j["kv_pool_bytes"] = e.kv_pool_bytes;
  j["kv_needed_bytes"] = static_cast<std::int64_t>(r.batch) * e.kv.bytes_for(static_cast<std::int64_t>(r.prompt_len + r.output_len));
  j["coefficients_source"] = e.coefficients_source;
  if (const auto& b = r.static_run) {
    j["static_batch"] = {{"batch", b->batch}, {"prompt_tokens", b->prompt_tokens}, {"output_tokens", b->output_tokens},
                         {"prefill_steps", b->prefill_steps}, {"prefill_s", b->prefill_s}, {"decode_s", b->decode_s},
                         {"batch_e2e_s", b->e2e_s}, {"output_tokens_per_s", b->output_tokens_per_s},
                         {"simulated_batch_e2e_s", std::isfinite(b->simulated_e2e_s) ? ordered_json(b->simulated_e2e_s) : ordered_json(nullptr)},
                         {"simulated_preemptions", b->simulated_preemptions}};
  }
  return j.dump(2) + "\n";
}

namespace {

std::string describe(const model::length_dist& d) {
  switch (d.shape) {
    case model::length_dist::kind::fixed: return fmt::format("{:g}", d.a);
    case model::length_dist::kind::uniform: return fmt::format("uniform {:g}..{:g}", d.a, d.b);
    case model::length_dist::kind::lognormal: return fmt::format("lognormal median {:g} sigma {:g}", d.a, d.b);
  }
  return "?";
}

ordered_json dist_json(const model::length_dist& d) {
  ordered_json j = {{"shape", d.name()}};
  if (d.shape == model::length_dist::kind::fixed) j["tokens"] = d.a;
  else if (d.shape == model::length_dist::kind::uniform) j.update({{"low", d.a}, {"high", d.b}});
  else j.update({{"median", d.a}, {"sigma", d.b}});
  return j;
}

ordered_json latency_json(const model::latency_summary& l) {
  return {{"mean", l.mean}, {"p50", l.p50}, {"p90", l.p90}, {"p99", l.p99}, {"max", l.max}, {"samples", l.samples},
          {"cdf_percent_0_to_100", l.cdf}};
}

// Every note of a serve command, restated ones included, in order.
std::vector<std::string> note_texts(const model::serve_command& c) {
  std::vector<std::string> out;
  for (const auto& n : c.notes) out.push_back(n.text);
  return out;
}

}  // namespace

std::string simulate_text(const simulate_run& run) {
  const auto& e = run.memory;
  const auto& r = run.result;
  std::string o;
  o += fmt::format("gpucal simulate: {} on {} x{} (tp={}{}), {} {}, KV pool {:.2f} GiB ({} blocks of {} tokens)\n", e.model.name,
                   e.gpu.name, e.settings.tp * e.settings.pp, e.settings.tp,
                   e.settings.pp > 1 ? fmt::format(", pp={}", e.settings.pp) : "", e.engine.display_name, e.engine.version,
                   to_gib(e.kv_pool_bytes), group_digits(e.num_blocks), e.kv.block_size);
  o += fmt::format("coefficients: {}; step overhead {}\n", e.coefficients_source, run.step_overhead);
  if (run.source == "poisson")
    o += fmt::format("workload: {} requests, Poisson arrivals at {:g} req/s (seed {}), prompt {} tokens, output {} tokens\n",
                     run.request_count, run.qps, run.seed, describe(run.prompt), describe(run.output));
  else
    o += fmt::format("workload: {} requests from {}\n", run.request_count, run.source);
  o += fmt::format("policy: vLLM V1 (decode first, chunked prefill within max_num_batched_tokens {}, max_num_seqs {}, "
                   "recompute preemption {} generated tokens)\n\n",
                   e.settings.max_num_batched_tokens, e.settings.max_num_seqs,
                   run.preemption == "keep" ? "keeping" : "dropping");
  o += fmt::format("{:<32} {:>10} {:>10} {:>10} {:>10}\n", "latency (ms)", "mean", "p50", "p90", "p99");
  const auto row = [&](const char* name, const model::latency_summary& l) {
    o += fmt::format("{:<32} {:>10.1f} {:>10.1f} {:>10.1f} {:>10.1f}\n", name, l.mean * 1e3, l.p50 * 1e3, l.p90 * 1e3, l.p99 * 1e3);
  };
  row("TTFT (arrival to first token)", r.ttft_s);
  row("TPOT ((E2E - TTFT) / (O - 1))", r.tpot_s);
  row("ITL (between tokens)", r.itl_s);
  row("E2E (arrival to last token)", r.e2e_s);
  o += fmt::format("\nfinished {} requests in {:.2f} s: {:.2f} req/s, {:.0f} output tokens/s, {} engine steps\n", r.requests,
                   r.duration_s, r.requests_per_s, r.output_tokens_per_s, group_digits(r.steps));
  o += fmt::format("mean tokens per step {:.1f}; mean running {:.1f}; mean in system {:.1f} (Little: qps x mean E2E = {:.1f})\n",
                   r.mean_batch_tokens, r.mean_running, r.mean_in_system, r.requests_per_s * r.e2e_s.mean);
  o += fmt::format("KV pool used: mean {:.1f}%, max {:.1f}%; preemptions {}\n", 100 * r.mean_kv_used_fraction,
                   100 * r.max_kv_used_fraction, r.preemptions);
  return o;
}

std::string simulate_json(const simulate_run& run) {
  const auto& e = run.memory;
  const auto& r = run.result;
  ordered_json j = deployment_json(e, "gpucal.simulate/1");
  ordered_json w = {{"source", run.source}, {"requests", run.request_count}};
  if (run.source == "poisson") w.update({{"qps", run.qps}, {"seed", run.seed}, {"prompt_len", dist_json(run.prompt)}, {"output_len", dist_json(run.output)}});
  j["workload"] = w;
  j["preemption_mode"] = run.preemption;
  j["step_overhead"] = run.step_overhead;
  j["requests"] = r.requests;
  j["preemptions"] = r.preemptions;
  j["steps"] = r.steps;
  j["duration_s"] = r.duration_s;
  j["requests_per_s"] = r.requests_per_s;
  j["output_tokens_per_s"] = r.output_tokens_per_s;
  j["ttft_s"] = latency_json(r.ttft_s);
  j["tpot_s"] = latency_json(r.tpot_s);
  j["itl_s"] = latency_json(r.itl_s);
  j["e2e_s"] = latency_json(r.e2e_s);
  j["mean_batch_tokens"] = r.mean_batch_tokens;
  j["mean_running"] = r.mean_running;
  j["mean_in_system"] = r.mean_in_system;
  j["kv_used_fraction"] = {{"mean", r.mean_kv_used_fraction}, {"max", r.max_kv_used_fraction}};
  j["kv_pool_bytes"] = e.kv_pool_bytes;
  j["num_blocks"] = e.num_blocks;
  ordered_json tl = ordered_json::array();
  for (const auto& p : r.timeline)
    tl.push_back({{"time_s", p.time_s}, {"running", p.running}, {"waiting", p.waiting}, {"batch_tokens", p.batch_tokens},
                  {"kv_used_fraction", p.kv_used_fraction}});
  j["timeline"] = tl;
  return j.dump(2) + "\n";
}

std::string plan_text(const model::plan_result& r, const model::model_spec& m, const model::workload& w, int top) {
  std::string o;
  o += fmt::format("gpucal plan: {} at {:g} req/s, {:g} prompt + {:g} output tokens, TTFT p99 <= {:g} ms, TPOT p99 <= {:g} ms{}\n",
                   m.name, w.qps, w.prompt_len, w.output_len, w.ttft_p99_s * 1e3, w.tpot_p99_s * 1e3,
                   w.itl_p99_s > 0 ? fmt::format(", ITL p99 <= {:g} ms", w.itl_p99_s * 1e3) : "");
  o += fmt::format("engine {}; coefficients: {}; {} candidates (GPU x tp x weights x KV) searched\n", r.engine,
                   r.coefficients_source,
                   r.candidates);
  o += fmt::format("rules: {}\n       {}\n       {}\n       Little's law C = qps/replica x (TTFT + O x TPOT), TPOT mean = step(C) / (1 - prefill share)\n",
                   model::ttft_p99_rule, model::tpot_p99_rule, model::itl_p99_rule);
  bool any_disagg = false;
  for (const auto& p : r.plans) any_disagg = any_disagg || p.disagg.has_value();
  if (any_disagg) o += fmt::format("       {}\n", model::disagg_rule);
  o += "\n";
  if (r.ranked_by_cost) {
    o += "ranked by cost per hour; prices ($/GPU-hour):\n";
  } else {
    o += fmt::format("ranked by GPU count (no price for {}: give them with --gpu-prices GPU=PRICE to rank by cost){}\n",
                     fmt::join(r.unpriced, ", "), r.prices.empty() ? "" : "; prices ($/GPU-hour):");
  }
  for (const auto& p : r.prices) o += fmt::format("  {:<10} {:>7.3f}  {}\n", p.gpu, p.usd_per_gpu_hour, p.source);
  o += "\n";
  if (r.plans.empty()) {
    o += "No plan meets the workload.\n";
  } else {
    o += fmt::format("{:>3} {:<6} {:<10} {:>5} {:>4} {:>5} {:<5} {:<5} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}\n", "#", "mode",
                     "gpu", "tp", "rep", "GPUs", "quant", "kv", "batch", "TTFT p99", "TPOT", "TPOT p99", "ITL p99", "KV need", "KV pool",
                     "prefill", "$/h");
    const int n = std::min<int>(top, static_cast<int>(r.plans.size()));
    for (int i = 0; i < n; ++i) {
      const auto& p = r.plans[static_cast<std::size_t>(i)];
      const auto& s = p.state;
      o += fmt::format("{:>3} {:<6} {:<10} {:>5} {:>4} {:>5} {:<5} {:<5} {:>7.1f} {:>6.0f} ms {:>6.1f} ms {:>6.1f} ms {:>6.1f} ms {:>5.1f} GiB {:>5.1f} GiB {:>7.0f}% {:>8}\n",
                       i + 1, p.mode, p.gpu, p.pp > 1 ? fmt::format("{}x{}", p.tp, p.pp) : std::to_string(p.tp), p.replicas, p.total_gpus, p.quantization, p.kv_cache_dtype, s.concurrency,
                       s.ttft_p99_s * 1e3, s.tpot_mean_s * 1e3, s.tpot_p99_s * 1e3, s.itl_p99_s * 1e3, to_gib(s.kv_needed_bytes), to_gib(s.kv_pool_bytes),
                       100 * s.prefill_share, p.cost_per_hour ? fmt::format("{:.2f}", *p.cost_per_hour) : "-");
    }
    for (int i = 0; i < n; ++i) {
      const auto& p = r.plans[static_cast<std::size_t>(i)];
      if (!p.disagg) continue;
      const auto& d = *p.disagg;
      o += fmt::format("{:>3} disagg: prefill {} x tp{} {} (prefill {:.1f} ms, {:.0f}% busy, wait p99 {:.1f} ms) + decode {} x tp{} {} "
                       "(tp, rep and quant above); KV {:.1f} MB per GPU per prompt at {:g} GB/s: {:.2f} ms\n",
                       i + 1, d.prefill_replicas, d.prefill_tp, d.prefill_quantization, d.prefill_s * 1e3, 100 * d.prefill_share,
                       d.prefill_wait_p99_s * 1e3, d.decode_replicas, d.decode_tp, d.decode_quantization, d.kv_bytes / 1e6,
                       d.kv_link_gbps, d.kv_transfer_s * 1e3);
    }
    {  // --mode both: the best of each mode at the same load
      const model::plan *agg = nullptr, *dis = nullptr;
      for (const auto& p : r.plans) {
        if (!p.disagg && !agg) agg = &p;
        if (p.disagg && !dis) dis = &p;
      }
      if (agg && dis)
        o += fmt::format("\nBest of each mode: agg {} x {} ({}{}), disagg {} x {} ({}{})\n", agg->total_gpus, agg->gpu,
                         agg->cost_per_hour ? fmt::format("${:.2f}/h, ", *agg->cost_per_hour) : "",
                         fmt::format("TTFT p99 {:.0f} ms, TPOT p99 {:.1f} ms", agg->state.ttft_p99_s * 1e3, agg->state.tpot_p99_s * 1e3),
                         dis->total_gpus, dis->gpu, dis->cost_per_hour ? fmt::format("${:.2f}/h, ", *dis->cost_per_hour) : "",
                         fmt::format("TTFT p99 {:.0f} ms, TPOT p99 {:.1f} ms", dis->state.ttft_p99_s * 1e3, dis->state.tpot_p99_s * 1e3));
    }
    bool any_verified = false;
    for (const auto& p : r.plans) any_verified = any_verified || p.verified.has_value();
    if (any_verified) {
      o += fmt::format("\nVerified by simulation (one replica at qps / replicas, Poisson arrivals, {} requests each{}):\n",
                       r.plans.front().verified ? r.plans.front().verified->requests : 0,
                       r.dropped_by_verify > 0 ? fmt::format("; {} plan(s) dropped by --verify strict", r.dropped_by_verify) : "");
      o += fmt::format("{:>3} {:>21} {:>21} {:>21}  {}\n", "#", "TTFT p99 rule / sim", "TPOT p99 rule / sim", "ITL p99 rule / sim",
                       "verdict");
      for (int i = 0; i < n; ++i) {
        const auto& p = r.plans[static_cast<std::size_t>(i)];
        if (!p.verified) continue;
        const auto& v = *p.verified;
        const auto pair = [](double a, double b) { return fmt::format("{:.1f} / {:.1f} ms", a * 1e3, b * 1e3); };
        std::string verdict = "meets the targets";
        if (!v.misses.empty()) {
          verdict = "MISSES";
          for (const auto& x : v.misses) verdict += " " + x;
        }
        o += fmt::format("{:>3} {:>21} {:>21} {:>21}  {}\n", i + 1, pair(p.state.ttft_p99_s, v.sim.ttft_s.p99),
                         pair(p.state.tpot_p99_s, v.sim.tpot_s.p99), pair(p.state.itl_p99_s, v.sim.itl_s.p99), verdict);
      }
    }
    if (r.engine == "vllm" || r.engine == "sglang") {
      o += "\nServe commands (one replica each):\n";
      for (int i = 0; i < n; ++i) {
        const auto& p = r.plans[static_cast<std::size_t>(i)];
        const model::serve_command c = model::serve_command_for(m, p, r.engine);
        const int reps = p.disagg ? p.disagg->prefill_replicas : p.replicas;
        o += fmt::format("{:>3} {}{}\n", i + 1, c.text(), reps > 1 ? fmt::format("   # x {} replicas", reps) : "");
        for (const auto& note : c.notes)
          if (!note.restated) o += fmt::format("      # {}\n", note.text);
        if (p.disagg) {
          const model::serve_command d = model::decode_serve_command_for(m, p, r.engine);
          o += fmt::format("    {}{}\n", d.text(), p.disagg->decode_replicas > 1 ? fmt::format("   # x {} replicas", p.disagg->decode_replicas) : "");
          for (const auto& note : d.notes)
            if (!note.restated) o += fmt::format("      # {}\n", note.text);
        }
      }
    }
    const auto& b = r.plans.front();
    if (b.disagg) {
      const auto& d = *b.disagg;
      o += fmt::format("\nBest: {} x {}, disaggregated: prefill {} x tp{} ({} weights, {:.0f}% busy) and decode {} x tp{} ({} weights, "
                       "{:.1f} requests in flight each, decode step {:.1f} ms), {} KV moved in {:.2f} ms per prompt.\n",
                       b.total_gpus, b.gpu, d.prefill_replicas, d.prefill_tp, d.prefill_quantization, 100 * d.prefill_share,
                       d.decode_replicas, d.decode_tp, d.decode_quantization, d.decode.concurrency, d.decode.decode_step_s * 1e3,
                       b.kv_cache_dtype, d.kv_transfer_s * 1e3);
    } else
    o += fmt::format("\nBest: {} x {} ({} replicas of tp={}, {} weights, {} KV). Per replica: {:.2f} req/s, "
                     "{:.1f} requests in flight, prefill {:.1f} ms ({:.0f}% of GPU time), decode step {:.1f} ms, "
                     "{:.0f} output tokens/s.\n",
                     b.total_gpus, b.gpu, b.replicas, b.tp, b.quantization, b.kv_cache_dtype, b.state.arrival_qps,
                     b.state.concurrency, b.state.prefill_s * 1e3, 100 * b.state.prefill_share,
                     b.state.decode_step_s * 1e3, b.state.output_tokens_per_s);
  }
  if (!r.rejected.empty()) {
    o += "\nRejected families (GPU x weights x KV; first reason of the tp that came closest):\n";
    for (const auto& x : r.rejected)
      o += fmt::format("  {:<10} {:<5} kv {:<5} {:<11} tp={}: {}\n", x.gpu, x.quantization, x.kv_cache_dtype, x.kind,
                       x.tp, x.reason);
  }
  return o;
}

std::string plan_json(const model::plan_result& r, const model::model_spec& m, const model::workload& w, int top) {
  ordered_json j;
  j["schema"] = "gpucal.plan/1";
  j["model"] = m.name;
  j["workload"] = {{"qps", w.qps}, {"prompt_len", w.prompt_len}, {"output_len", w.output_len},
                   {"ttft_p99_s", w.ttft_p99_s}, {"tpot_p99_s", w.tpot_p99_s}};
  j["workload"]["itl_p99_s"] = w.itl_p99_s > 0 ? ordered_json(w.itl_p99_s) : ordered_json(nullptr);
  j["engine"] = r.engine;
  j["coefficients_source"] = r.coefficients_source;
  j["rules"] = {{"ttft_p99", model::ttft_p99_rule}, {"tpot_p99", model::tpot_p99_rule}, {"itl_p99", model::itl_p99_rule},
                {"disagg", model::disagg_rule}};
  j["candidates"] = r.candidates;
  j["ranked_by"] = r.ranked_by_cost ? "cost" : "gpus";
  ordered_json prices = ordered_json::array();
  for (const auto& p : r.prices)
    prices.push_back({{"gpu", p.gpu}, {"gpu_slug", p.gpu_slug}, {"usd_per_gpu_hour", p.usd_per_gpu_hour}, {"source", p.source}});
  j["prices"] = prices;
  j["unpriced_gpus"] = r.unpriced;
  j["dropped_by_verify"] = r.dropped_by_verify;
  ordered_json plans = ordered_json::array();
  const int n = std::min<int>(top, static_cast<int>(r.plans.size()));
  for (int i = 0; i < n; ++i) {
    const auto& p = r.plans[static_cast<std::size_t>(i)];
    const auto& s = p.state;
    ordered_json x = {{"mode", p.mode}, {"gpu", p.gpu}, {"gpu_slug", p.gpu_slug}, {"tp", p.tp}, {"pp", p.pp}, {"replicas", p.replicas},
                      {"total_gpus", p.total_gpus}, {"quantization", p.quantization},
                      {"kv_cache_dtype", p.kv_cache_dtype}, {"gemm_kind", p.gemm_kind}, {"batch", s.concurrency},
                      {"batch_p99", s.batch_p99}, {"qps_per_replica", s.arrival_qps}, {"ttft_s", s.ttft_mean_s},
                      {"ttft_p99_s", s.ttft_p99_s}, {"tpot_s", s.tpot_mean_s}, {"tpot_p99_s", s.tpot_p99_s},
                      {"itl_s", s.itl_mean_s}, {"itl_p99_s", s.itl_p99_s}, {"prefill_chunk_s", s.prefill_chunk_s},
                      {"prefill_s", s.prefill_s}, {"prefill_share", s.prefill_share}, {"decode_step_s", s.decode_step_s},
                      {"output_tokens_per_s", s.output_tokens_per_s}, {"kv_needed_bytes", s.kv_needed_bytes},
                      {"kv_pool_bytes", s.kv_pool_bytes}, {"coefficients_source", p.coefficients_source},
                      {"max_model_len", p.settings.max_model_len}, {"max_num_seqs", p.settings.max_num_seqs},
                      {"max_num_batched_tokens", p.settings.max_num_batched_tokens}, {"memory_fraction", p.settings.memory_fraction}};
    x["cost_per_hour"] = p.cost_per_hour ? ordered_json(*p.cost_per_hour) : ordered_json(nullptr);
    if (r.engine == "vllm" || r.engine == "sglang") {
      const model::serve_command c = model::serve_command_for(m, p, r.engine);
      x["serve_command"] = c.args;
      x["serve_notes"] = note_texts(c);
      if (p.disagg) {
        const model::serve_command d = model::decode_serve_command_for(m, p, r.engine);
        x["decode_serve_command"] = d.args;
        x["decode_serve_notes"] = note_texts(d);
      }
    }
    if (p.disagg) {
      const auto& d = *p.disagg;
      x["prefill"] = {{"tp", d.prefill_tp}, {"quantization", d.prefill_quantization}, {"replicas", d.prefill_replicas},
                      {"prefill_s", d.prefill_s}, {"prefill_share", d.prefill_share}, {"wait_p99_s", d.prefill_wait_p99_s},
                      {"max_model_len", d.prefill_settings.max_model_len}, {"memory_fraction", d.prefill_settings.memory_fraction}};
      x["decode"] = {{"tp", d.decode_tp}, {"quantization", d.decode_quantization}, {"replicas", d.decode_replicas},
                     {"batch", d.decode.concurrency}, {"decode_step_s", d.decode.decode_step_s}};
      x["kv_transfer"] = {{"bytes_per_gpu", d.kv_bytes}, {"link_gbps", d.kv_link_gbps}, {"seconds", d.kv_transfer_s}};
    }
    if (p.verified) {
      const auto& v = *p.verified;
      x["verified"] = {{"requests", v.requests}, {"ttft_p99_s", v.sim.ttft_s.p99}, {"tpot_p99_s", v.sim.tpot_s.p99},
                       {"itl_p99_s", v.sim.itl_s.p99}, {"tpot_s", v.sim.tpot_s.mean}, {"preemptions", v.sim.preemptions},
                       {"misses", v.misses}};
    }
    plans.push_back(x);
  }
  j["plans"] = plans;
  ordered_json rej = ordered_json::array();
  for (const auto& x : r.rejected) {
    ordered_json by_tp = ordered_json::array();
    for (const auto& f : x.by_tp) by_tp.push_back({{"tp", f.tp}, {"pp", f.pp}, {"reason_kind", f.kind}, {"reason", f.reason}});
    rej.push_back({{"gpu", x.gpu}, {"quantization", x.quantization}, {"kv_cache_dtype", x.kv_cache_dtype}, {"tp", x.tp},
                   {"reason_kind", x.kind}, {"reason", x.reason}, {"by_tp", by_tp}});
  }
  j["rejected"] = rej;
  return j.dump(2) + "\n";
}

}  // namespace gpucal::cli
