// Deployment search and the steady state of one replica (see planner.hpp).
#include "gpucal/model/planner.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <type_traits>

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

// A count of mean `mean` and variance `var`: Poisson when var <= mean, else
// negative binomial, its probabilities computed in log space (lgamma) so that
// large means do not underflow.
struct count_dist {
  double mean, var;
  bool poisson() const { return var <= mean * 1.0001; }
  double log_pmf(double n) const {
    if (poisson()) return n * std::log(mean) - mean - std::lgamma(n + 1);
    const double p = mean / var, r = mean * mean / (var - mean);  // NB(r, p)
    return std::lgamma(n + r) - std::lgamma(r) - std::lgamma(n + 1) + r * std::log(p) + n * std::log1p(-p);
  }
  /// Past every count that holds any probability: mean + 12 sd + 20.
  double upper() const { return std::ceil(mean + 12 * std::sqrt(std::max(var, mean)) + 20); }
};

// The smallest n with P(N <= n) >= q (q = 0.99 here: the normal approximation,
// continuity-corrected, above a mean of 10^5).
double count_quantile(double mean, double var, double q) {
  if (!(mean > 0)) return 0;
  if (mean > 1e5) return std::ceil(mean + 2.326 * std::sqrt(std::max(var, mean)) - 0.5);
  const count_dist c{mean, var};
  double sum = 0;
  const double top = c.upper();
  for (double n = 0; n <= top; n += 1) {
    sum += std::exp(c.log_pmf(n));
    if (sum >= q) return n;
  }
  return top;
}

// Probabilities of 0..n of the count, up to where they stop mattering (at most 2 x 10^5 terms).
std::vector<double> count_pmf(double mean, double var) {
  if (!(mean > 0)) return {1.0};
  const count_dist c{mean, var};
  std::vector<double> pmf;
  double sum = 0;
  const double top = std::min(c.upper(), 2e5);
  for (double n = 0; n <= top && sum < 1 - 1e-9; n += 1) {
    pmf.push_back(std::exp(c.log_pmf(n)));
    sum += pmf.back();
  }
  return pmf;
}

// The p99 batch at concurrency c (a Poisson-like count), at most cap requests.
double batch_p99_at(double c, double cap) { return std::min(cap, c + 2.326 * std::sqrt(c)); }

// The p99 of the batch averaged over a request's life at concurrency c (variance
// about 2c/3), at most cap requests.
double burst_batch_p99_at(double c, double cap) { return std::min(cap, c + 2.326 * std::sqrt(2 * c / 3)); }

// f(r) computed once per replica count r: the bisection below asks some counts twice.
template <class F>
class by_replica_count {
 public:
  explicit by_replica_count(F f) : f_(std::move(f)) {}
  const std::invoke_result_t<F&, int>& operator()(int r) {
    auto it = memo_.find(r);
    if (it == memo_.end()) it = memo_.emplace(r, f_(r)).first;
    return it->second;
  }

 private:
  F f_;
  std::map<int, std::invoke_result_t<F&, int>> memo_;
};

// The fewest replicas r in [1, max_r] with ok(r), given ok(max_r): feasibility only
// improves with more replicas, so the boundary is bisected.
template <class Ok>
int fewest_replicas(int max_r, Ok ok) {
  int lo = 0, hi = max_r;  // ok(lo) fails (or lo = 0), ok(hi) holds
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    (ok(mid) ? hi : lo) = mid;
  }
  return hi;
}

// The failure closest to a plan (the latest stage; the last of equals) names the
// family; its reason is prefixed with `prefix`.
void name_family(rejection& family, std::string_view prefix) {
  const candidate_failure* closest = &family.by_tp.front();
  for (const auto& f : family.by_tp)
    if (f.stage >= closest->stage) closest = &f;
  family.tp = closest->tp;
  family.kind = closest->kind;
  family.reason = std::string(prefix) + closest->reason;
}

// Little's law as a fixed point: the smallest C with rhs(C) <= C, rhs(C) the requests
// in flight when C are (rhs grows with C through the step time). False, with the
// throughput failure recorded, when more than max_num_seqs would be in flight.
template <class F>
bool littles_law(replica_state& r, double cap, F rhs) {
  // rhs(C) - C is positive at 0 and may turn positive again at large C (attention
  // grows with the batch), so the first root is bracketed on a doubling grid.
  double lo = 0, hi = std::min(1.0, cap);
  while (rhs(hi) > hi) {
    if (hi >= cap) {
      r.failure_kind = "throughput";
      r.failure_stage = 3;
      r.failure = fmt::format("decode cannot keep up: more than max_num_seqs {} requests would be in flight", cap);
      return false;
    }
    lo = hi;
    hi = std::min(2 * hi, cap);
  }
  for (int i = 0; i < 60 && hi - lo > 1e-4 * std::max(1.0, hi); ++i) {
    const double mid = (lo + hi) / 2;
    (rhs(mid) > mid ? lo : hi) = mid;
  }
  r.converged = true;
  r.concurrency = hi;
  return true;
}

// The KV the p99 batch needs, then the first target the state misses (TTFT only when asked).
void check_targets(replica_state& r, const memory_estimate& mem, const workload& w, bool ttft) {
  r.kv_needed_bytes = static_cast<std::int64_t>(std::ceil(r.batch_p99)) * request_kv_bytes(mem, w.prompt_len + w.output_len);
  if (r.kv_needed_bytes > r.kv_pool_bytes) {
    r.failure_kind = "memory";
    r.failure_stage = 4;
    r.failure = fmt::format("KV cache: {:.0f} requests of {} tokens need {:.1f} GiB, the pool holds {:.1f} GiB",
                            std::ceil(r.batch_p99), w.prompt_len + w.output_len, to_gib(r.kv_needed_bytes),
                            to_gib(r.kv_pool_bytes));
  } else if (ttft && r.ttft_p99_s > w.ttft_p99_s) {
    r.failure_kind = "ttft";
    r.failure_stage = 5;
    r.failure = fmt::format("TTFT p99 {} exceeds the {} target", fmt_ms(r.ttft_p99_s), fmt_ms(w.ttft_p99_s));
  } else if (r.tpot_p99_s > w.tpot_p99_s) {
    r.failure_kind = "tpot";
    r.failure_stage = 6;
    r.failure = fmt::format("TPOT p99 {} exceeds the {} target", fmt_ms(r.tpot_p99_s), fmt_ms(w.tpot_p99_s));
  } else if (w.itl_p99_s > 0 && r.itl_p99_s > w.itl_p99_s) {
    r.failure_kind = "itl";
    r.failure_stage = 7;
    r.failure = fmt::format("ITL p99 {} exceeds the {} target", fmt_ms(r.itl_p99_s), fmt_ms(w.itl_p99_s));
  }
}

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
  // Prompt chunks ride on decode steps: a step carrying k chunks lasts d + k x chunk.
  const double budget = static_cast<double>(mem.settings.max_num_batched_tokens);
  // A prompt longer than the budget runs in full chunks and a shorter last one;
  // `chunk` is their mean time (each less the step overhead counted once per step).
  const double full_chunks = std::floor(w.prompt_len / budget), last_chunk = w.prompt_len - full_chunks * budget;
  const double chunks_per_prompt = full_chunks + (last_chunk > 0 ? 1 : 0);
  const auto chunk_s = [&](double tokens) { return std::max(perf.prefill(tokens).total_s - perf.step_overhead_s(), 1e-12); };
  const double chunk = r.prefill_chunk_s =
      ((full_chunks > 0 ? full_chunks * chunk_s(budget) : 0) + (last_chunk > 0 ? chunk_s(last_chunk) : 0)) / chunks_per_prompt;
  // Chunks queued at a step's start are those that arrived during the previous step:
  // K' ~ Poisson(lambda_u (d + K chunk)), a branching process with immigration whose
  // offspring mean is a = lambda_u x chunk: mean K = lambda_u d / (1 - a), variance
  // mean / (1 - a^2), successive steps correlated by a.
  const double lambda_u = arrival_qps * chunks_per_prompt;
  const double a = lambda_u * chunk;
  // Mean and variance of the chunks queued at a step whose decode part lasts d.
  const auto queued_chunks = [&](double d) {
    const double mean = lambda_u * d / (1 - a);
    return std::pair{mean, mean / (1 - a * a)};
  };
  if (a >= 1) {
    r.failure_kind = "throughput";
    r.failure_stage = 3;
    r.failure = fmt::format("prompt chunks alone need {:.0f}% of the GPU time ({:.2f} req/s x {:g} chunk(s) of {} per prompt)",
                            100 * a, arrival_qps, chunks_per_prompt, fmt_ms(chunk));
    return r;
  }
  // Mean TTFT at decode step d: the rest of a length-biased step (E[T^2] / 2E[T]),
  // then the prompt's chunks with the J prompts of its arrival step (E[J] = arrival E_lb[T]).
  const auto ttft_mean_at = [&](double d) {
    const auto [m1, v1] = queued_chunks(d);
    const double et = d + chunk * m1, et2 = et * et + chunk * chunk * v1;
    const double lb = et2 / et;
    return chunks_per_prompt * (d + chunk) + lb / 2 + arrival_qps * lb * chunk;
  };

  // Little's law: C = arrival x (TTFT + O x TPOT(C)), TPOT growing with C. f(C) = rhs - C
  // is positive at 0; the first root is the steady state, if it lies below max_num_seqs.
  const double cap = static_cast<double>(mem.settings.max_num_seqs);
  const auto rhs = [&](double c) {
    const double step = perf.decode_step(std::max(c, 1.0), mean_context).total_s;
    return arrival_qps * (ttft_mean_at(step) + w.output_len * step / slack);
  };
  if (!littles_law(r, cap, rhs)) return r;
  const double c = r.concurrency;
  r.decode_step_s = perf.decode_step(std::max(c, 1.0), mean_context).total_s;
  r.tpot_mean_s = r.decode_step_s / slack;
  r.itl_mean_s = r.tpot_mean_s;
  r.batch_p99 = batch_p99_at(c, cap);
  const double d = r.decode_step_s;
  const auto [k_mean, k_var] = queued_chunks(d);
  // ITL: one step's duration, the decode part at the p99 batch.
  const double d99 = perf.decode_step(std::max(r.batch_p99, 1.0), mean_context).total_s;
  r.itl_p99_s = std::max(r.itl_mean_s, d99 + count_quantile(k_mean, k_var, 0.99) * chunk);
  // TPOT per request: O - 1 steps carrying N chunks in all.
  const double gaps = std::max(w.output_len - 1, 1.0);
  r.chunks_per_request_p99 = count_quantile(gaps * k_mean, gaps * k_var * (1 + a) / (1 - a), 0.99);
  // Bursts that bring a request more chunks also bring more requests: its decode steps
  // run at a batch above C (the batch averaged over a request's life, Poisson-like
  // count: variance about 2C/3), taken at the same percentile.
  const double d_burst = perf.decode_step(std::max(burst_batch_p99_at(c, cap), 1.0), mean_context).total_s;
  r.tpot_p99_s = std::max(r.tpot_mean_s, d_burst + r.chunks_per_request_p99 * chunk / gaps);
  // TTFT: a prompt arrives within a step (length-biased: T_k = d + k chunk with weight
  // pi_k T_k), waits out the rest of it (uniform), then its chunks run, each step also
  // carrying the J ~ Poisson(lambda T_k) prompts that arrived in the same step.
  const std::vector<double> pi = count_pmf(k_mean, k_var);
  std::vector<double> weight(pi.size()), len(pi.size());
  double norm = 0;
  for (std::size_t k = 0; k < pi.size(); ++k) {
    len[k] = d + static_cast<double>(k) * chunk;
    weight[k] = pi[k] * len[k];
    norm += weight[k];
  }
  const double base = chunks_per_prompt * (d + chunk);
  const double ttft_mean = ttft_mean_at(d);
  std::vector<std::vector<double>> others(pi.size());  // J's distribution in a step of length T_k
  for (std::size_t k = 0; k < pi.size(); ++k)
    if (weight[k] / norm >= 1e-12) others[k] = count_pmf(arrival_qps * len[k], arrival_qps * len[k]);
  const auto exceed = [&](double x) {  // P(TTFT > x)
    double p = 0;
    for (std::size_t k = 0; k < pi.size(); ++k) {
      double pk = 0;
      for (std::size_t j = 0; j < others[k].size(); ++j) {
        const double rest = (x - base - static_cast<double>(j) * chunk) / len[k];
        if (rest < 1) pk += others[k][j] * (1 - std::max(rest, 0.0));
      }
      p += weight[k] / norm * pk;
    }
    return p;
  };
  double lo_x = base, hi_x = base + len.back() + chunk * (10 + 10 * arrival_qps * len.back());
  for (int i = 0; i < 40 && hi_x - lo_x > 1e-4 * lo_x; ++i) {  // to 0.01 %
    const double mid = (lo_x + hi_x) / 2;
    (exceed(mid) > 0.01 ? lo_x : hi_x) = mid;
  }
  r.ttft_mean_s = ttft_mean;
  r.ttft_p99_s = std::max(ttft_mean, hi_x);
  r.output_tokens_per_s = arrival_qps * w.output_len;
  check_targets(r, mem, w, true);
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
  if (w.itl_p99_s != 0) positive("--itl-p99", w.itl_p99_s, limits::latency_s, "seconds");
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
    if (!(price > 0 && price <= limits::price_per_gpu_hour))
      throw input_error(fmt::format("--gpu-prices: price {} for {} is outside (0, {:g}] $/GPU-hour", price, slug,
                                    limits::price_per_gpu_hour));
}

}  // namespace

namespace {

// A decode-only replica at `arrival_qps`: O decode steps per request, no prompt chunks.
replica_state solve_decode_replica(const throughput_model& perf, const memory_estimate& mem, const workload& w, double arrival_qps) {
  replica_state r;
  r.arrival_qps = arrival_qps;
  r.kv_pool_bytes = mem.kv_pool_bytes;
  const double mean_context = w.prompt_len + w.output_len / 2;
  const double cap = static_cast<double>(mem.settings.max_num_seqs);
  const auto step = [&](double b) { return perf.decode_step(std::max(b, 1.0), mean_context).total_s; };
  const auto rhs = [&](double c) { return arrival_qps * w.output_len * step(c); };
  if (!littles_law(r, cap, rhs)) return r;
  const double c = r.concurrency;
  r.decode_step_s = step(c);
  r.tpot_mean_s = r.itl_mean_s = r.decode_step_s;
  r.batch_p99 = batch_p99_at(c, cap);
  r.itl_p99_s = std::max(r.itl_mean_s, step(r.batch_p99));
  r.tpot_p99_s = std::max(r.tpot_mean_s, step(burst_batch_p99_at(c, cap)));
  r.output_tokens_per_s = arrival_qps * w.output_len;
  check_targets(r, mem, w, false);
  return r;
}

// p99 wait of an M/D/1 queue (service s, load rho): P(W > t) ~ rho exp(-theta t), theta s
// the positive root of rho (e^x - 1) = x (the Cramer-Lundberg exponent of deterministic service).
double md1_wait_p99(double rho, double s) {
  if (rho <= 0.01) return 0;
  double lo = 1e-9, hi = 1;
  while (rho * (std::exp(hi) - 1) < hi) hi *= 2;  // f(x) = rho (e^x - 1) - x: negative just above 0, positive far out
  for (int i = 0; i < 60; ++i) {
    const double mid = (lo + hi) / 2;
    (rho * (std::exp(mid) - 1) < mid ? lo : hi) = mid;
  }
  return s * std::log(rho / 0.01) / hi;
}

// One tensor inventory per tp, shared by every GPU, format, KV dtype and mode.
class inventory_cache {
 public:
  explicit inventory_cache(const model_spec& m) : m_(m) {}
  // build_inventory(m, tp), or nullptr where it fails (estimate_memory reports why).
  const tensor_inventory* at(int tp) {
    auto it = by_tp_.find(tp);
    if (it == by_tp_.end()) {
      try {
        it = by_tp_.emplace(tp, build_inventory(m_, tp)).first;
      } catch (const input_error&) {
        return nullptr;
      }
    }
    return &it->second;
  }

 private:
  const model_spec& m_;
  std::map<int, tensor_inventory> by_tp_;
};

void plan_disaggregated(const model_spec& m, const gpu_spec& gpu, const engine_profile& engine, const coefficients& gc,
                        const workload& w, const plan_options& opt, const std::map<std::string, double>& prices,
                        inventory_cache& inventories, plan_result& out) {
  const double link = opt.kv_link_gbps ? *opt.kv_link_gbps : gpu.nvlink_gbps ? *gpu.nvlink_gbps : gpu.pcie_gbps.value_or(0);
  const auto price = prices.find(gpu.slug);
  for (const auto& kv : opt.kv_cache_dtypes) {
    if (kv == "fp8" && !gpu.supports("fp8")) continue;
    struct side {
      int tp;
      std::string quant;
      memory_estimate mem;
      std::optional<throughput_model> perf;
      double kv_bytes = 0;   // one prompt's KV on one GPU of this side
      double prefill_s = 0;  // one prompt's prefill on this side, seconds
    };
    std::vector<side> sides;  // every tp x weight format that holds the model and a prompt's KV
    rejection family{gpu.name, "disagg", kv, 0, "", "", {}};
    for (const auto& quant : opt.quantizations) {
      if (quant == "fp8" && !gpu.supports("fp8")) continue;
      for (int tp : {1, 2, 4, 8}) {
        if (tp > opt.max_gpus) continue;
        ++out.candidates;
        estimate_options eo;
        eo.tp = tp;
        eo.quantization = quant;
        eo.kv_cache_dtype = kv;
        eo.max_model_len = static_cast<std::int64_t>(std::ceil(w.prompt_len + w.output_len));
        eo.max_num_batched_tokens = opt.max_num_batched_tokens;
        side sd{tp, quant, {}, std::nullopt, 0, 0};
        try {
          const tensor_inventory* inv = inventories.at(tp);
          sd.mem = estimate_memory(m, gpu, engine, gc, eo, inv);
          if (!sd.mem.fits) {
            family.by_tp.push_back({tp, 1, "memory", fmt::format("{} weights: a replica cannot hold one prompt's KV or the weights: {}",
                                                                 quant, sd.mem.failures.front()), 1});
            continue;
          }
          sd.perf.emplace(m, gpu, sd.mem.settings, gc.throughput, engine, inv);
        } catch (const input_error& e) {
          family.by_tp.push_back({tp, 1, "unsupported", e.what(), 0});
          continue;
        }
        sd.kv_bytes = static_cast<double>(sd.mem.kv.bytes_per_token) * w.prompt_len;
        sd.prefill_s = sd.perf->prefill(w.prompt_len).total_s;
        sides.push_back(std::move(sd));
      }
    }
    // Decode pools: the fewest replicas of each side that carry the load.
    struct decode_choice {
      const side* d;
      int replicas;
      replica_state state;
    };
    std::vector<decode_choice> decodes;
    for (const side& d : sides) {
      const int max_r = opt.max_gpus / d.tp;
      if (max_r < 1) continue;
      by_replica_count at([&](int r) { return solve_decode_replica(*d.perf, d.mem, w, w.qps / r); });
      const replica_state& top = at(max_r);
      if (!top.failure.empty()) {
        family.by_tp.push_back({d.tp, 1, top.failure_kind, fmt::format("decode pool ({} weights), even with {} replicas: {}", d.quant, max_r,
                                                                        top.failure), top.failure_stage});
        continue;
      }
      const int hi = fewest_replicas(max_r, [&](int r) { return at(r).failure.empty(); });
      decodes.push_back({&d, hi, at(hi)});
    }
    // Prefill pools for each decode pool: the fewest replicas whose TTFT p99 (queue +
    // prefill + KV transfer + the first decode step) meets the target.
    std::optional<plan> best;
    const auto better = [&](const plan& a, const plan& b) {
      if (a.cost_per_hour && b.cost_per_hour && *a.cost_per_hour != *b.cost_per_hour) return *a.cost_per_hour < *b.cost_per_hour;
      return a.total_gpus < b.total_gpus;
    };
    for (const decode_choice& dc : decodes) {
      for (const side& p : sides) {
        const double s = p.prefill_s;
        const double transfer = link > 0 ? std::max(p.kv_bytes, dc.d->kv_bytes) / (link * 1e9) : 0;
        const int budget_gpus = opt.max_gpus - dc.replicas * dc.d->tp;
        const int max_r = budget_gpus / p.tp;
        // The p99 wait in the prefill queue, seconds, by prefill replica count.
        by_replica_count wait_p99([&](int r) { return md1_wait_p99(w.qps / r * s, s); });
        const auto ttft = [&](int r) {
          const double rho = w.qps / r * s;
          return rho >= 1 ? INFINITY : wait_p99(r) + s + transfer + dc.state.decode_step_s;
        };
        if (max_r < 1 || ttft(max_r) > w.ttft_p99_s) continue;
        const int hi = fewest_replicas(max_r, [&](int r) { return ttft(r) <= w.ttft_p99_s; });
        plan x;
        x.mode = "disagg";
        x.gpu = gpu.name;
        x.gpu_slug = gpu.slug;
        x.coefficients_source = gc.source;
        x.tp = dc.d->tp;
        x.replicas = dc.replicas;
        x.total_gpus = hi * p.tp + dc.replicas * dc.d->tp;
        x.quantization = dc.d->quant;
        x.kv_cache_dtype = kv;
        x.gemm_kind = dc.d->perf->gemm_kind();
        x.settings = dc.d->mem.settings;
        x.state = dc.state;
        const double rho = w.qps / hi * s;
        x.state.prefill_s = s;
        x.state.prefill_share = rho;
        x.state.ttft_p99_s = ttft(hi);
        x.state.ttft_mean_s = s + rho * s / (2 * (1 - rho)) + transfer + dc.state.decode_step_s;
        disagg_plan dp;
        dp.prefill_tp = p.tp;
        dp.decode_tp = dc.d->tp;
        dp.prefill_quantization = p.quant;
        dp.decode_quantization = dc.d->quant;
        dp.prefill_replicas = hi;
        dp.decode_replicas = dc.replicas;
        dp.prefill_s = s;
        dp.prefill_share = rho;
        dp.prefill_wait_p99_s = wait_p99(hi);
        dp.kv_bytes = std::max(p.kv_bytes, dc.d->kv_bytes);
        dp.kv_link_gbps = link;
        dp.kv_transfer_s = transfer;
        dp.decode = dc.state;
        dp.prefill_settings = p.mem.settings;
        dp.decode_settings = dc.d->mem.settings;
        x.disagg = dp;
        if (price != prices.end()) x.cost_per_hour = price->second * x.total_gpus;
        if (!best || better(x, *best)) best = std::move(x);
      }
    }
    if (best) {
      out.plans.push_back(std::move(*best));
    } else {
      if (!decodes.empty())  // decode pools carry the load; no prefill pool beside them meets TTFT
        family.by_tp.push_back({decodes.front().d->tp, 1, "ttft",
                                fmt::format("no prefill pool of at most {} GPUs meets the TTFT p99 target beside a decode pool",
                                            opt.max_gpus),
                                5});
      if (family.by_tp.empty())
        family.by_tp.push_back({0, 1, "unsupported", "no tp and weight format holds the model", 0});
      name_family(family, "disagg: ");
      out.rejected.push_back(std::move(family));
    }
  }
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

  // Prices: --gpu-prices over the catalog's defaults.
  std::map<std::string, double> prices;
  for (const gpu_spec* gpu : gpus) {
    price_used u{gpu->name, gpu->slug, 0, ""};
    if (const auto it = opt.price_per_gpu_hour.find(gpu->slug); it != opt.price_per_gpu_hour.end()) {
      u.usd_per_gpu_hour = it->second;
      u.source = "--gpu-prices";
    } else if (const gpu_price* d = opt.default_prices ? find_gpu_price(gpu->slug) : nullptr) {
      u.usd_per_gpu_hour = d->usd_per_gpu_hour;
      u.source = fmt::format("{}, {} ({})", d->offering, d->date, d->source);
    } else {
      out.unpriced.push_back(gpu->name);
      continue;
    }
    prices[gpu->slug] = u.usd_per_gpu_hour;
    out.prices.push_back(std::move(u));
  }
  out.ranked_by_cost = out.unpriced.empty() && !gpus.empty();

  std::set<std::string> sources;
  inventory_cache inventories(m);
  for (const gpu_spec* gpu : gpus) {
    const auto own = opt.coefficients_by_gpu.find(gpu->slug);
    const coefficients& gc = own != opt.coefficients_by_gpu.end() ? own->second : c;
    sources.insert(gc.source);
    if (opt.disaggregated) plan_disaggregated(m, *gpu, engine, gc, w, opt, prices, inventories, out);
    for (const auto& quant : opt.aggregated ? opt.quantizations : std::vector<std::string>{}) {
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
            const tensor_inventory* inv = pp == 1 ? inventories.at(tp) : nullptr;
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
          by_replica_count at([&](int r) { return solve_replica(*perf, mem, w, w.qps / r); });
          const replica_state& at_max = at(max_r);
          if (!at_max.failure.empty()) {
            reject(at_max.failure_kind,
                   fmt::format("even with {} replicas ({} GPUs): {}", max_r, max_r * tp * pp, at_max.failure),
                   at_max.failure_stage);
            continue;
          }
          const int hi = fewest_replicas(max_r, [&](int r) { return at(r).failure.empty(); });
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
          p.settings = mem.settings;
          if (const auto it = prices.find(gpu->slug); it != prices.end()) p.cost_per_hour = it->second * p.total_gpus;
          out.plans.push_back(std::move(p));
          planned = true;
        }
        if (!planned && !family.by_tp.empty()) {
          name_family(family, "");
          out.rejected.push_back(std::move(family));
        }
      }
    }
  }
  if (sources.size() == 1) out.coefficients_source = *sources.begin();
  else if (sources.size() > 1) out.coefficients_source = "per GPU (see each plan)";
  const bool by_cost = out.ranked_by_cost;
  std::stable_sort(out.plans.begin(), out.plans.end(), [by_cost](const plan& a, const plan& b) {
    const double ca = a.cost_per_hour.value_or(INFINITY), cb = b.cost_per_hour.value_or(INFINITY);
    if (by_cost && ca != cb) return ca < cb;
    if (a.total_gpus != b.total_gpus) return a.total_gpus < b.total_gpus;
    if (ca != cb) return ca < cb;
    return a.state.tpot_p99_s < b.state.tpot_p99_s;
  });
  return out;
}

std::string serve_command::text() const {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"$\\;&|<>()*?[]{}`!#~") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (const char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
      out += '\'';
    }
  }
  return out;
}

namespace {

// One replica's command: role "" (aggregated), "prefill" or "decode".
serve_command command_for(const model_spec& m, int tp, int pp, const std::string& quantization, bool fp8_kv,
                          const resolved_settings& s, int replicas, std::string_view engine, std::string_view role) {
  // The model: its Hugging Face repository for a catalog model, else the config's folder.
  std::string model = m.name;
  bool found = false;
  for (const auto& e : list_models())
    if (e.name == m.name && !e.hf_repo.empty()) {
      model = e.hf_repo;
      found = true;
    }
  if (!found && m.name.ends_with("config.json")) {
    const auto slash = m.name.find_last_of('/');
    model = slash == std::string::npos ? "." : slash == 0 ? "/" : m.name.substr(0, slash);
  }
  const auto fraction = fmt::format("{:g}", s.memory_fraction);
  serve_command c;
  if (quantization == "int8")
    c.notes.push_back({"int8 weights: serve a W8A8 (INT8) checkpoint of the model, e.g. an llm-compressor export; the engine reads its format "
                       "from the checkpoint's quantization_config"});
  if (quantization == "int4")
    c.notes.push_back({"int4 weights: serve an AWQ or GPTQ (W4A16) checkpoint of the model; the engine reads its format from the "
                       "checkpoint's quantization_config"});
  if (engine == "vllm") {
    c.args = {"vllm", "serve", model, "--tensor-parallel-size", std::to_string(tp)};
    if (pp > 1) c.args.insert(c.args.end(), {"--pipeline-parallel-size", std::to_string(pp)});
    if (quantization == "fp8") c.args.insert(c.args.end(), {"--quantization", "fp8"});
    if (fp8_kv) c.args.insert(c.args.end(), {"--kv-cache-dtype", "fp8"});
    c.args.insert(c.args.end(), {"--max-model-len", std::to_string(s.max_model_len), "--max-num-seqs", std::to_string(s.max_num_seqs),
                                 "--max-num-batched-tokens", std::to_string(s.max_num_batched_tokens),
                                 "--gpu-memory-utilization", fraction});
    if (!role.empty()) {
      c.args.insert(c.args.end(), {"--kv-transfer-config", R"({"kv_connector":"NixlConnector","kv_role":"kv_both"})"});
      c.notes.push_back({fmt::format("{} pool: vLLM's NixlConnector moves the KV; a P/D proxy (vLLM's disaggregated examples, llm-d) "
                                     "routes each request to a prefill then a decode instance", role),
                         role == "decode"});
    }
  } else if (engine == "sglang") {
    c.args = {"python3", "-m", "sglang.launch_server", "--model-path", model, "--tp-size", std::to_string(tp)};
    if (pp > 1) c.args.insert(c.args.end(), {"--pp-size", std::to_string(pp)});
    if (quantization == "fp8") c.args.insert(c.args.end(), {"--quantization", "fp8"});
    if (fp8_kv) c.args.insert(c.args.end(), {"--kv-cache-dtype", "fp8_e4m3"});
    c.args.insert(c.args.end(), {"--context-length", std::to_string(s.max_model_len), "--max-running-requests",
                                 std::to_string(s.max_num_seqs), "--chunked-prefill-size", std::to_string(s.max_num_batched_tokens),
                                 "--mem-fraction-static", fraction});
    if (!role.empty()) {
      c.args.insert(c.args.end(), {"--disaggregation-mode", std::string(role), "--disaggregation-transfer-backend", "nixl"});
      c.notes.push_back({fmt::format("{} pool: SGLang's router in PD mode pairs the prefill and decode instances", role), role == "decode"});
    }
  } else {
    throw input_error(fmt::format("--engine: no serve command for '{}' (allowed: vllm, sglang)", engine));
  }
  if (replicas > 1)
    c.notes.push_back({fmt::format("{} replicas of this command, each on its own {} GPU(s), behind a load balancer", replicas, tp * pp), true});
  if (pp > 1 && tp * pp > 8)
    c.notes.push_back({fmt::format("{} GPUs per replica span {} nodes: start the engine's multi-node runtime (Ray for vLLM) first",
                                   tp * pp, (tp * pp + 7) / 8)});
  return c;
}

}  // namespace

serve_command serve_command_for(const model_spec& m, const plan& p, std::string_view engine) {
  const bool fp8_kv = p.kv_cache_dtype == "fp8";
  if (p.disagg)
    return command_for(m, p.disagg->prefill_tp, 1, p.disagg->prefill_quantization, fp8_kv, p.disagg->prefill_settings,
                       p.disagg->prefill_replicas, engine, "prefill");
  return command_for(m, p.tp, p.pp, p.quantization, fp8_kv, p.settings, p.replicas, engine, "");
}

serve_command decode_serve_command_for(const model_spec& m, const plan& p, std::string_view engine) {
  if (!p.disagg) throw std::logic_error("decode_serve_command_for: not a disaggregated plan");
  return command_for(m, p.disagg->decode_tp, 1, p.disagg->decode_quantization, p.kv_cache_dtype == "fp8", p.disagg->decode_settings,
                     p.disagg->decode_replicas, engine, "decode");
}

void verify_plans(const model_spec& m, const workload& w, const plan_options& opt, const coefficients& c, plan_result& r,
                  const verify_options& v) {
  const engine_profile engine = resolve_engine(opt.engine);
  int checked = 0, simulated = 0;
  for (std::size_t i = 0; i < r.plans.size() && checked < v.top && simulated < 4 * v.top; ++simulated) {
    plan& p = r.plans[i];
    if (p.disagg) {  // the simulator runs one aggregated replica: disaggregated plans are not re-checked
      ++i;
      --simulated;
      continue;
    }
    const gpu_spec& gpu = resolve_gpu(p.gpu_slug);
    const auto own = opt.coefficients_by_gpu.find(p.gpu_slug);
    const coefficients& gc = own != opt.coefficients_by_gpu.end() ? own->second : c;
    estimate_options eo;
    eo.tp = p.tp;
    eo.pp = p.pp;
    eo.quantization = p.quantization;
    eo.kv_cache_dtype = p.kv_cache_dtype;
    length_dist prompt, output;  // the workload's mean lengths in whole tokens
    prompt.a = std::max(1.0, std::round(w.prompt_len));
    output.a = std::max(1.0, std::round(w.output_len));
    eo.max_model_len = static_cast<std::int64_t>(std::max(std::ceil(w.prompt_len + w.output_len), prompt.a + output.a));
    eo.max_num_batched_tokens = opt.max_num_batched_tokens;
    const memory_estimate mem = estimate_memory(m, gpu, engine, gc, eo);
    const throughput_model perf(m, gpu, mem.settings, gc.throughput, engine);
    sim_options so;
    so.requests = poisson_requests(w.qps / p.replicas, prompt, output, v.requests, v.seed);
    plan_verification pv;
    pv.requests = v.requests;
    pv.sim = simulate(perf, mem, std::move(so));
    if (pv.sim.ttft_s.p99 > w.ttft_p99_s) pv.misses.push_back("TTFT");
    if (pv.sim.tpot_s.p99 > w.tpot_p99_s) pv.misses.push_back("TPOT");
    if (w.itl_p99_s > 0 && pv.sim.itl_s.p99 > w.itl_p99_s) pv.misses.push_back("ITL");
    const bool missed = !pv.misses.empty();
    p.verified = std::move(pv);
    if (missed && v.strict) {
      r.plans.erase(r.plans.begin() + static_cast<std::ptrdiff_t>(i));
      ++r.dropped_by_verify;
      continue;
    }
    ++checked;
    ++i;
  }
}

}  // namespace gpucal::model
