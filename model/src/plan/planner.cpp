// Deployment search and the steady state of one replica (see planner.hpp).
#include "gpucal/model/planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "gpucal/model/catalog.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"
#include "gpucal/model/units.hpp"

namespace gpucal::model {

namespace {

// Whole blocks of every layer group (windows capped, states one slot set per request).
std::int64_t request_kv_bytes(const memory_estimate& mem, double tokens) {
  return mem.kv.bytes_for(static_cast<std::int64_t>(std::ceil(tokens)));
}

std::string fmt_ms(double s) { return fmt::format("{:.1f} ms", s * 1e3); }

}  // namespace

replica_state solve_replica(const throughput_model& perf, const memory_estimate& mem, const workload& w,
                            double arrival_qps) {
  replica_state r;
  r.arrival_qps = arrival_qps;
  const double mean_context = w.prompt_len + w.output_len / 2;
  r.prefill_s = perf.prefill(w.prompt_len).total_s;
  r.prefill_share = arrival_qps * r.prefill_s;
  r.kv_pool_bytes = mem.kv_pool_bytes;
  if (r.prefill_share >= 1) {
    r.failure_kind = "throughput";
    r.failure_stage = 3;
    r.failure = fmt::format("prefill alone needs {:.0f}% of the GPU time ({:.2f} req/s x {} per prompt)",
                            100 * r.prefill_share, arrival_qps, fmt_ms(r.prefill_s));
    return r;
  }
  const double rho = r.prefill_share;
  const double slack = 1 - rho;
  // M/M/1 waiting time of the prefill queue: mean rho s / (1 - rho); P(W > t) = rho exp(-(1 - rho) t / s).
  const double wait_mean = rho * r.prefill_s / slack;
  const double wait_p99 = rho > 0.01 ? r.prefill_s * std::log(rho / 0.01) / slack : 0;

  // Little's law: C = arrival x (TTFT + O x TPOT(C)), TPOT growing with C. f(C) = rhs - C
  // is positive at 0; the first root is the steady state, if it lies below max_num_seqs.
  const double cap = static_cast<double>(mem.settings.max_num_seqs);
  const auto rhs = [&](double c) {
    const double step = perf.decode_step(std::max(c, 1.0), mean_context).total_s;
    return arrival_qps * (r.prefill_s + wait_mean + step + w.output_len * step / slack);
  };
  if (rhs(cap) > cap) {
    r.failure_kind = "throughput";
    r.failure_stage = 3;
    r.failure = fmt::format("decode cannot keep up: more than max_num_seqs {} requests would be in flight", cap);
    return r;
  }
  double lo = 0, hi = cap;
  for (int i = 0; i < 60 && hi - lo > 1e-6 * std::max(1.0, hi); ++i) {
    const double mid = (lo + hi) / 2;
    (rhs(mid) > mid ? lo : hi) = mid;
  }
  r.converged = true;
  r.concurrency = hi;
  const double c = r.concurrency;
  r.decode_step_s = perf.decode_step(std::max(c, 1.0), mean_context).total_s;
  r.tpot_mean_s = r.decode_step_s / slack;
  r.ttft_mean_s = r.prefill_s + wait_mean + r.decode_step_s;
  r.ttft_p99_s = r.prefill_s + wait_p99 + r.decode_step_s;
  r.batch_p99 = std::min(cap, c + 2.326 * std::sqrt(c));
  double tpot_p99 = perf.decode_step(std::max(r.batch_p99, 1.0), mean_context).total_s;
  // Share of decode steps that also carry a prefill chunk: arrivals per step.
  if (arrival_qps * r.tpot_mean_s > 0.01) {
    const double chunk = std::min(w.prompt_len, static_cast<double>(mem.settings.max_num_batched_tokens));
    const step_time pf = perf.prefill(chunk);
    double overhead = 0;
    for (const auto& op : pf.ops)
      if (op.name == "step_overhead") overhead = op.time_s;
    tpot_p99 += pf.total_s - overhead;  // one step, so its overhead is counted once
  }
  r.tpot_p99_s = tpot_p99;
  r.output_tokens_per_s = arrival_qps * w.output_len;
  r.kv_needed_bytes = static_cast<std::int64_t>(std::ceil(r.batch_p99)) * request_kv_bytes(mem, w.prompt_len + w.output_len);

  if (r.kv_needed_bytes > r.kv_pool_bytes) {
    r.failure_kind = "memory";
    r.failure_stage = 4;
    r.failure = fmt::format("KV cache: {:.0f} requests of {} tokens need {:.1f} GiB, the pool holds {:.1f} GiB",
                            std::ceil(r.batch_p99), w.prompt_len + w.output_len, to_gib(r.kv_needed_bytes),
                            to_gib(r.kv_pool_bytes));
  } else if (r.ttft_p99_s > w.ttft_p99_s) {
    r.failure_kind = "ttft";
    r.failure_stage = 5;
    r.failure = fmt::format("TTFT p99 {} exceeds the {} target", fmt_ms(r.ttft_p99_s), fmt_ms(w.ttft_p99_s));
  } else if (r.tpot_p99_s > w.tpot_p99_s) {
    r.failure_kind = "tpot";
    r.failure_stage = 6;
    r.failure = fmt::format("TPOT p99 {} exceeds the {} target", fmt_ms(r.tpot_p99_s), fmt_ms(w.tpot_p99_s));
  }
  return r;
}

namespace {

void validate(const model_spec& m, const workload& w, const plan_options& opt) {
  const auto positive = [](const char* flag, double v, double hi, const char* unit) {
    if (!(std::isfinite(v) && v > 0 && v <= hi))
      throw input_error(fmt::format("{}: {} is outside (0, {:g}] ({})", flag, v, hi, unit));
  };
  positive("--qps", w.qps, limits::qps, "requests per second");
  positive("--prompt-len", w.prompt_len, static_cast<double>(limits::context), "tokens");
  positive("--output-len", w.output_len, static_cast<double>(limits::context), "tokens");
  positive("--ttft-p99", w.ttft_p99_s, limits::latency_s, "seconds");
  positive("--tpot-p99", w.tpot_p99_s, limits::latency_s, "seconds");
  if (opt.max_gpus <= 0 || opt.max_gpus > limits::max_gpus)
    throw input_error(fmt::format("--max-gpus: {} is outside [1, {}]", opt.max_gpus, limits::max_gpus));
  if (opt.max_num_batched_tokens &&
      (*opt.max_num_batched_tokens <= 0 || *opt.max_num_batched_tokens > limits::max_num_batched_tokens))
    throw input_error(fmt::format("--max-num-batched-tokens: {} is outside [1, {}]", *opt.max_num_batched_tokens,
                                  limits::max_num_batched_tokens));
  if (w.prompt_len + w.output_len > static_cast<double>(m.max_model_len))
    throw input_error(fmt::format("--prompt-len + --output-len: {} tokens exceed the {} tokens {} supports",
                                  w.prompt_len + w.output_len, m.max_model_len, m.name));
  for (const auto& q : opt.quantizations)
    if (q != "none" && q != "fp8" && q != "int8" && q != "int4")
      throw input_error(fmt::format("--quantization: '{}' is not a planner choice (allowed: none, fp8, int8, int4)", q));
  for (const auto& [slug, price] : opt.price_per_gpu_hour)
    if (!(price >= 0 && price <= limits::price_per_gpu_hour))
      throw input_error(fmt::format("--gpu-prices: price {} for {} is outside [0, {:g}] $/GPU-hour", price, slug,
                                    limits::price_per_gpu_hour));
}

}  // namespace

plan_result plan_deployment(const model_spec& m, const workload& w, const plan_options& opt, const coefficients& c) {
  validate(m, w, opt);
  plan_result out;
  const engine_profile engine = resolve_engine(opt.engine);
  out.engine = engine.engine;

  std::vector<const gpu_spec*> gpus;
  if (opt.gpus.empty()) {
    for (const auto& g : list_gpus()) gpus.push_back(&g);
  } else {
    for (const auto& name : opt.gpus) gpus.push_back(&resolve_gpu(name, "--gpus"));
  }

  std::set<std::string> sources;
  // One tensor inventory per tp, shared by every GPU, format and KV dtype.
  std::map<int, tensor_inventory> inventories;
  const auto inventory_at = [&](int tp) -> const tensor_inventory* {
    auto it = inventories.find(tp);
    if (it == inventories.end()) {
      try {
        it = inventories.emplace(tp, build_inventory(m, tp)).first;
      } catch (const input_error&) {
        return nullptr;  // estimate_memory reports why
      }
    }
    return &it->second;
  };
  for (const gpu_spec* gpu : gpus) {
    const auto own = opt.coefficients_by_gpu.find(gpu->slug);
    const coefficients& gc = own != opt.coefficients_by_gpu.end() ? own->second : c;
    sources.insert(gc.source);
    for (const auto& quant : opt.quantizations) {
      for (const auto& kv : opt.kv_cache_dtypes) {
        if ((quant == "fp8" || kv == "fp8") && !gpu->supports("fp8")) continue;  // not a choice on this GPU
        rejection family{gpu->name, quant, kv, 0, "", "", {}};
        bool planned = false;
        bool node_holds_it = false;  // some tp <= 8 held the weights: no pipeline stages needed
        // tp within a node first; pipeline stages of 8 GPUs only where one node is not enough.
        for (const auto& [tp, pp] : {std::pair{1, 1}, std::pair{2, 1}, std::pair{4, 1}, std::pair{8, 1}, std::pair{8, 2}, std::pair{8, 4}}) {
          if (tp * pp > opt.max_gpus || (pp > 1 && node_holds_it)) continue;
          const auto reject = [&, tp = tp, pp = pp](std::string kind, std::string reason, int stage) {
            family.by_tp.push_back({tp, pp, std::move(kind), std::move(reason), stage});
          };
          ++out.candidates;
          estimate_options eo;
          eo.tp = tp;
          eo.pp = pp;
          eo.quantization = quant;
          eo.kv_cache_dtype = kv;
          eo.max_model_len = static_cast<std::int64_t>(std::ceil(w.prompt_len + w.output_len));
          eo.max_num_batched_tokens = opt.max_num_batched_tokens;
          memory_estimate mem;
          std::optional<throughput_model> perf;
          try {
            const tensor_inventory* inv = pp == 1 ? inventory_at(tp) : nullptr;
            mem = estimate_memory(m, *gpu, engine, gc, eo, inv);
            if (pp == 1 && mem.charged_bytes <= mem.budget_bytes) node_holds_it = true;
            if (!mem.fits) {
              reject("memory", mem.failures.front(), 1);
              continue;
            }
            perf.emplace(m, *gpu, mem.settings, gc.throughput, engine, inv);
          } catch (const input_error& e) {
            reject("unsupported", e.what(), 0);
            continue;
          }
          // The TPOT floor: one decode step at batch 1 (weights over bandwidth + overhead).
          const double floor_s = perf->decode_step(1, w.prompt_len + w.output_len / 2).total_s;
          if (floor_s > w.tpot_p99_s) {
            reject("tpot", fmt::format("target {} is below the {} floor of a decode step at batch 1", fmt_ms(w.tpot_p99_s),
                                       fmt_ms(floor_s)),
                   2);
            continue;
          }
          // Fewest replicas that carry the load: feasibility only improves with more.
          const int max_r = opt.max_gpus / (tp * pp);
          const auto at = [&](int r) { return solve_replica(*perf, mem, w, w.qps / r); };
          const replica_state at_max = at(max_r);
          if (!at_max.failure.empty()) {
            reject(at_max.failure_kind,
                   fmt::format("even with {} replicas ({} GPUs): {}", max_r, max_r * tp * pp, at_max.failure),
                   at_max.failure_stage);
            continue;
          }
          int lo = 0, hi = max_r;  // at(lo) fails (or lo = 0), at(hi) carries the load
          while (hi - lo > 1) {
            const int mid = (lo + hi) / 2;
            (at(mid).failure.empty() ? hi : lo) = mid;
          }
          plan p;
          p.gpu = gpu->name;
          p.gpu_slug = gpu->slug;
          p.coefficients_source = gc.source;
          p.tp = tp;
          p.pp = pp;
          p.replicas = hi;
          p.total_gpus = hi * tp * pp;
          p.quantization = quant;
          p.kv_cache_dtype = kv;
          p.gemm_kind = perf->gemm_kind();
          p.state = at(hi);
          if (const auto it = opt.price_per_gpu_hour.find(gpu->slug); it != opt.price_per_gpu_hour.end())
            p.cost_per_hour = it->second * p.total_gpus;
          out.plans.push_back(std::move(p));
          planned = true;
        }
        if (!planned && !family.by_tp.empty()) {
          const candidate_failure* closest = &family.by_tp.front();
          for (const auto& f : family.by_tp)
            if (f.stage >= closest->stage) closest = &f;
          family.tp = closest->tp;
          family.kind = closest->kind;
          family.reason = closest->reason;
          out.rejected.push_back(std::move(family));
        }
      }
    }
  }
  if (sources.size() == 1) out.coefficients_source = *sources.begin();
  else if (sources.size() > 1) out.coefficients_source = "per GPU (see each plan)";
  std::sort(out.plans.begin(), out.plans.end(), [](const plan& a, const plan& b) {
    if (a.total_gpus != b.total_gpus) return a.total_gpus < b.total_gpus;
    const double ca = a.cost_per_hour.value_or(INFINITY), cb = b.cost_per_hour.value_or(INFINITY);
    if (ca != cb) return ca < cb;
    return a.state.tpot_p99_s < b.state.tpot_p99_s;
  });
  return out;
}

}  // namespace gpucal::model
