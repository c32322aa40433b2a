// Discrete-event simulation of one replica (see simulator.hpp).
#include "gpucal/model/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <unordered_map>

#include "detail/json_fields.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/limits.hpp"

namespace gpucal::model {

std::string_view length_dist::name() const {
  switch (shape) {
    case kind::fixed: return "fixed";
    case kind::uniform: return "uniform";
    case kind::lognormal: return "lognormal";
  }
  return "?";
}

length_dist parse_length_dist(std::string_view text, const char* flag) {
  const auto number = [&](std::string_view s) {
    std::string t(s);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || end != t.c_str() + t.size() || errno != 0 || !std::isfinite(v))
      throw input_error(fmt::format("{}: '{}' is not a number (allowed: N, uniform:LO:HI, lognormal:MEDIAN:SIGMA)", flag,
                                    detail::shown(detail::json(std::string(text)))));
    return v;
  };
  const double most = static_cast<double>(limits::context);
  length_dist d;
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    d.a = number(text);
    if (!(d.a >= 1 && d.a <= most && d.a == std::floor(d.a)))
      throw input_error(fmt::format("{}: {} is outside [1, {}] whole tokens", flag, d.a, limits::context));
    return d;
  }
  const std::string_view kind = text.substr(0, colon);
  const std::string_view rest = text.substr(colon + 1);
  const auto colon2 = rest.find(':');
  if (colon2 == std::string_view::npos || (kind != "uniform" && kind != "lognormal"))
    throw input_error(fmt::format("{}: '{}' is not a length (allowed: N, uniform:LO:HI, lognormal:MEDIAN:SIGMA)", flag,
                                  detail::shown(detail::json(std::string(text)))));
  d.a = number(rest.substr(0, colon2));
  d.b = number(rest.substr(colon2 + 1));
  if (kind == "uniform") {
    d.shape = length_dist::kind::uniform;
    if (!(d.a >= 1 && d.b >= d.a && d.b <= most && d.a == std::floor(d.a) && d.b == std::floor(d.b)))
      throw input_error(fmt::format("{}: uniform:{}:{} needs whole tokens 1 <= LO <= HI <= {}", flag, d.a, d.b, limits::context));
  } else {
    d.shape = length_dist::kind::lognormal;
    if (!(d.a >= 1 && d.a <= most && d.b > 0 && d.b <= 3))
      throw input_error(fmt::format("{}: lognormal:{}:{} needs a median in [1, {}] tokens and a sigma in (0, 3]", flag, d.a,
                                    d.b, limits::context));
  }
  return d;
}

namespace {

std::int64_t draw(const length_dist& d, std::mt19937_64& rng) {
  const double most = static_cast<double>(limits::context);
  switch (d.shape) {
    case length_dist::kind::fixed: return static_cast<std::int64_t>(d.a);
    case length_dist::kind::uniform:
      return std::uniform_int_distribution<std::int64_t>(static_cast<std::int64_t>(d.a), static_cast<std::int64_t>(d.b))(rng);
    case length_dist::kind::lognormal: {
      const double v = std::exp(std::log(d.a) + d.b * std::normal_distribution<double>(0, 1)(rng));
      return static_cast<std::int64_t>(std::clamp(std::round(v), 1.0, most));
    }
  }
  return 1;
}

latency_summary summarize(std::vector<double>& v) {
  latency_summary s;
  s.samples = static_cast<std::int64_t>(v.size());
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  // Linear interpolation between ranks (numpy.percentile's default, which vLLM's benchmark uses).
  const auto pct = [&](double q) {
    const double pos = q * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
    const double a = v[lo];
    if (lo + 1 >= v.size()) return a;
    const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
    return a + (b - a) * (pos - static_cast<double>(lo));
  };
  s.max = *std::max_element(v.begin(), v.end());
  {
    const std::size_t stride = std::max<std::size_t>(1, v.size() / 100000);
    std::vector<double> sub;
    for (std::size_t i = 0; i < v.size(); i += stride) sub.push_back(v[i]);
    std::sort(sub.begin(), sub.end());
    for (int q = 0; q <= 100; ++q) {
      const double pos = q / 100.0 * static_cast<double>(sub.size() - 1);
      const auto lo = static_cast<std::size_t>(std::floor(pos));
      const std::size_t hi = std::min(lo + 1, sub.size() - 1);
      s.cdf.push_back(sub[lo] + (sub[hi] - sub[lo]) * (pos - static_cast<double>(lo)));
    }
  }
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  return s;
}

// The KV pool as counts: mem.num_blocks blocks, each request holding blocks_for(its tokens).
class counting_pool final : public kv_pool {
public:
  explicit counting_pool(const memory_estimate& mem) : plan_(mem.kv), capacity_(mem.num_blocks) {}
  void add_sequence(std::int64_t id) override { seqs_[id] = {0, 0}; }
  bool append(std::int64_t id, std::int64_t tokens) override {
    seq& s = seqs_.at(id);
    const std::int64_t blocks = plan_.blocks_for(s.tokens + tokens);
    if (used_ + blocks - s.blocks > capacity_) return false;
    used_ += blocks - s.blocks;
    s = {s.tokens + tokens, blocks};
    return true;
  }
  void free_sequence(std::int64_t id) override {
    const auto it = seqs_.find(id);
    if (it == seqs_.end()) return;
    used_ -= it->second.blocks;
    seqs_.erase(it);
  }
  std::string never_fits(std::int64_t tokens) const override {
    const std::int64_t need = plan_.blocks_for(tokens);
    if (need <= capacity_) return "";
    return fmt::format("need {} KV blocks (allowed: <= the pool's {})", need, capacity_);
  }
  double used_fraction() const { return capacity_ > 0 ? static_cast<double>(used_) / static_cast<double>(capacity_) : 0; }

private:
  struct seq {
    std::int64_t tokens, blocks;
  };
  const kv_plan& plan_;
  std::int64_t capacity_;
  std::int64_t used_ = 0;
  std::unordered_map<std::int64_t, seq> seqs_;
};

// Step times, memoized: decode by (batch, context bucket), prefill by (tokens, sequences).
class step_timer {
public:
  step_timer(const throughput_model& perf, std::int64_t max_model_len) : perf_(perf) {
    // Decode is timed at contexts on a grid of 1/16 doublings and interpolated linearly between them.
    for (double c = 1; c < static_cast<double>(max_model_len) * 1.07; c *= std::pow(2.0, 1.0 / 16)) grid_.push_back(c);
    grid_.push_back(static_cast<double>(max_model_len) * 1.07);
  }
  double decode(std::int64_t batch, double mean_context) {
    const auto hi = std::upper_bound(grid_.begin(), grid_.end(), mean_context);
    const std::size_t j = std::clamp<std::size_t>(static_cast<std::size_t>(hi - grid_.begin()), 1, grid_.size() - 1);
    const double c0 = grid_[j - 1], c1 = grid_[j];
    const double t0 = decode_at(batch, j - 1), t1 = decode_at(batch, j);
    return t0 + (t1 - t0) * (std::clamp(mean_context, c0, c1) - c0) / (c1 - c0);
  }
  // Prompt chunks of `tokens` in all over `sequences` requests: exact up to 64 tokens and
  // 16 requests, else interpolated between token counts 1/32 of a doubling apart and
  // timed at a request count rounded to 1/8 of a doubling.
  double prefill(std::int64_t tokens, std::int64_t sequences) {
    const double n = sequences <= 16 ? static_cast<double>(sequences)
                                     : std::round(std::exp2(std::round(std::log2(static_cast<double>(sequences)) * 8) / 8));
    if (tokens <= 64) return prefill_at(static_cast<double>(tokens), std::min(n, static_cast<double>(tokens)));
    const double x = std::log2(static_cast<double>(tokens)) * 32;
    const double x0 = std::floor(x), x1 = x0 + 1;
    const double t0 = std::floor(std::exp2(x0 / 32)), t1 = std::ceil(std::exp2(x1 / 32));
    const double p0 = prefill_at(t0, std::min(n, t0)), p1 = prefill_at(t1, std::min(n, t1));
    return p0 + (p1 - p0) * (static_cast<double>(tokens) - t0) / (t1 - t0);
  }

private:
  double prefill_at(double tokens, double sequences) {
    const std::uint64_t key = (static_cast<std::uint64_t>(tokens) << 24) ^ static_cast<std::uint64_t>(sequences);
    const auto it = prefill_.find(key);
    if (it != prefill_.end()) return it->second;
    const double t = perf_.prefill(tokens / sequences, sequences).total_s;
    prefill_.emplace(key, t);
    return t;
  }
  double decode_at(std::int64_t batch, std::size_t ctx) {
    const std::uint64_t key = (static_cast<std::uint64_t>(batch) << 16) | ctx;
    const auto it = decode_.find(key);
    if (it != decode_.end()) return it->second;
    const double t = perf_.decode_step(static_cast<double>(batch), grid_[ctx]).total_s;
    decode_.emplace(key, t);
    return t;
  }
  const throughput_model& perf_;
  std::vector<double> grid_;
  std::unordered_map<std::uint64_t, double> decode_, prefill_;
};

}  // namespace

std::vector<sim_request> poisson_requests(double qps, const length_dist& prompt, const length_dist& output,
                                          std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(qps);
  std::vector<sim_request> out;
  out.reserve(static_cast<std::size_t>(count));
  double t = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    t += gap(rng);
    const std::int64_t p = draw(prompt, rng);
    const std::int64_t o = draw(output, rng);
    out.push_back({t, p, o});
  }
  return out;
}

std::vector<sim_request> parse_trace(std::string_view text, const std::string& path) {
  std::vector<sim_request> out;
  std::size_t line_no = 0, pos = 0;
  while (pos <= text.size()) {
    const std::size_t end = std::min(text.find('\n', pos), text.size());
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) {
      if (end == text.size()) break;
      continue;
    }
    const std::string where = fmt::format("--trace: {} line {}", path, line_no);
    detail::json j;
    try {
      j = detail::parse_json_text(line, where);
    } catch (const input_error&) {
      throw input_error(fmt::format("{}: not a JSON object (each line holds one request: arrival_s, prompt_tokens, output_tokens)", where));
    }
    if (!j.is_object()) throw input_error(fmt::format("{}: not a JSON object (each line holds one request)", where));
    const auto field = [&](const char* name, const char* alt) -> const detail::json& {
      if (j.contains(name)) return j.at(name);
      if (j.contains(alt)) return j.at(alt);
      throw input_error(fmt::format("{}: field '{}' is missing", where, name));
    };
    const detail::json& a = field("arrival_s", "timestamp");
    if (!a.is_number() || !std::isfinite(a.get<double>()) || a.get<double>() < 0 || a.get<double>() > limits::latency_s * 1e3)
      throw input_error(fmt::format("{}: arrival_s is {} (allowed: seconds from 0 to {:g})", where, detail::shown(a), limits::latency_s * 1e3));
    sim_request r;
    r.arrival_s = a.get<double>();
    const auto tokens = [&](const char* name, const char* alt) {
      const detail::json& v = field(name, alt);
      if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > limits::context)
        throw input_error(fmt::format("{}: {} is {} (allowed: whole tokens from 1 to {})", where, name, detail::shown(v), limits::context));
      return v.get<std::int64_t>();
    };
    r.prompt_tokens = tokens("prompt_tokens", "input_length");
    r.output_tokens = tokens("output_tokens", "output_length");
    out.push_back(r);
    if (static_cast<std::int64_t>(out.size()) > limits::sim_requests)
      throw input_error(fmt::format("--trace: {} holds more than {} requests", path, limits::sim_requests));
    if (end == text.size()) break;
  }
  if (out.empty()) throw input_error(fmt::format("--trace: {} holds no request", path));
  return out;
}

sim_result simulate(const throughput_model& perf, const memory_estimate& mem, sim_options opt) {
  std::vector<sim_request>& reqs = opt.requests;
  std::stable_sort(reqs.begin(), reqs.end(), [](const sim_request& a, const sim_request& b) { return a.arrival_s < b.arrival_s; });
  const resolved_settings& s = mem.settings;
  counting_pool pool(mem);
  // The policy's limits travel as int32 token counts, as the engine's do.
  const auto policy_limits_of = [&]() -> policy_limits {
    for (const auto& [flag, v] : {std::pair{"--max-num-seqs", s.max_num_seqs}, std::pair{"--max-num-batched-tokens", s.max_num_batched_tokens},
                                  std::pair{"--max-model-len", s.max_model_len}})
      if (v > std::numeric_limits<std::int32_t>::max())
        throw input_error(fmt::format("{}: {} is above the simulator's 2,147,483,647", flag, v));
    return {s.max_num_seqs, s.max_num_batched_tokens, s.max_model_len};
  };
  step_policy policy(pool, policy_limits_of(), opt.preemption);
  step_timer timer(perf, s.max_model_len);

  struct track {
    double first_token = -1, last_token = -1;
    std::int64_t emitted = 0;
  };
  std::vector<track> tracks(reqs.size());
  std::vector<double> ttft, tpot, itl, e2e;
  constexpr std::size_t itl_cap = 4'000'000;
  std::mt19937_64 reservoir(0x5eed);
  std::uint64_t itl_seen = 0;
  double itl_sum = 0;
  ttft.reserve(reqs.size());
  tpot.reserve(reqs.size());
  e2e.reserve(reqs.size());

  sim_result r;
  struct raw_point {
    double t, running, waiting, tokens, kv;
  };
  std::vector<raw_point> raw;
  double t = reqs.empty() ? 0 : reqs.front().arrival_s;
  const double start = t;
  std::size_t next = 0;
  double area_running = 0, area_system = 0, area_kv = 0, tokens_total = 0;
  std::int64_t finished = 0, output_tokens = 0;
  std::int64_t arrived_unfinished = 0;
  double next_mark = t, interval = 0;
  while (next < reqs.size() || !policy.idle()) {
    while (next < reqs.size() && reqs[next].arrival_s <= t) {
      const sim_request& q = reqs[next];
      try {
        policy.add(static_cast<std::int64_t>(next), q.prompt_tokens, q.output_tokens);
      } catch (const std::invalid_argument& e) {
        throw input_error(fmt::format("request {} ({} + {} tokens) cannot run on this replica: {}", next, q.prompt_tokens,
                                      q.output_tokens, e.what()));
      }
      area_system += t - q.arrival_s;  // in the system since its arrival, within the step just run
      ++next;
      ++arrived_unfinished;
    }
    const policy_step step = policy.schedule();
    if (step.empty()) {
      if (next >= reqs.size()) throw std::logic_error("simulate: the step policy holds requests but schedules nothing");
      const double idle_to = reqs[next].arrival_s;
      area_system += static_cast<double>(arrived_unfinished) * (idle_to - t);
      t = idle_to;
      continue;
    }
    // The step's time. A decode chunk is one token, so the step decodes
    // decode_tokens sequences; every other chunk is a prefill chunk.
    const std::int64_t decodes = step.decode_tokens;
    const std::int64_t prefill_seqs = static_cast<std::int64_t>(step.chunks.size()) - decodes;
    double context = 0;  // tokens, summed over the decoding sequences
    for (const policy_chunk& c : step.chunks)
      if (c.decode) context += static_cast<double>(c.start + 1);
    double dt = 0;
    if (decodes > 0) dt += timer.decode(decodes, context / static_cast<double>(decodes));
    if (prefill_seqs > 0) dt += timer.prefill(step.prefill_tokens, prefill_seqs) - (decodes > 0 ? perf.step_overhead_s() : 0);
    const double running = static_cast<double>(policy.running());
    const double kv = pool.used_fraction();
    if (t >= next_mark) {  // a point per interval; the interval doubles whenever 1000 points pile up
      raw.push_back({t, running, static_cast<double>(policy.waiting()), static_cast<double>(step.prefill_tokens + step.decode_tokens), kv});
      next_mark = t + interval;
      if (raw.size() >= 1000) {
        std::vector<raw_point> half;
        for (std::size_t i = 0; i < raw.size(); i += 2) half.push_back(raw[i]);
        raw.swap(half);
        interval = std::max(2 * interval, (t - start) / 500);
      }
    }
    area_running += running * dt;
    area_system += static_cast<double>(arrived_unfinished) * dt;
    area_kv += kv * dt;
    r.max_kv_used_fraction = std::max(r.max_kv_used_fraction, kv);
    tokens_total += static_cast<double>(step.prefill_tokens + step.decode_tokens);
    t += dt;
    if (++r.steps > limits::sim_steps)
      throw input_error(fmt::format("simulate: more than {} engine steps; simulate fewer requests (--requests) or shorter ones",
                                    limits::sim_steps));

    // Tokens sampled at the end of the step; with keep-generated preemption every
    // sample is a new token the user sees.
    for (const policy_chunk& c : step.chunks) {
      if (!c.samples) continue;
      track& k = tracks[static_cast<std::size_t>(c.id)];
      const std::int64_t new_index = policy.generated_tokens(c.id);  // before complete(): tokens so far
      if (new_index < k.emitted) continue;  // drop-generated mode: regenerating a token already seen
      if (k.first_token < 0) {
        k.first_token = t;
        ttft.push_back(t - reqs[static_cast<std::size_t>(c.id)].arrival_s);
      } else {
        // Every gap counts in the mean; the percentiles read a uniform sample of at most 4 x 10^6 of them.
        const double gap = t - k.last_token;
        itl_sum += gap;
        if (itl.size() < itl_cap) {
          itl.push_back(gap);
        } else if (const std::uint64_t j = reservoir() % (itl_seen + 1); j < itl_cap) {
          itl[static_cast<std::size_t>(j)] = gap;
        }
        ++itl_seen;
      }
      k.last_token = t;
      ++k.emitted;
      ++output_tokens;
    }
    for (const std::int64_t id : policy.complete(step)) {
      const sim_request& q = reqs[static_cast<std::size_t>(id)];
      const track& k = tracks[static_cast<std::size_t>(id)];
      e2e.push_back(t - q.arrival_s);
      if (q.output_tokens > 1) tpot.push_back((k.last_token - k.first_token) / static_cast<double>(q.output_tokens - 1));
      ++finished;
      --arrived_unfinished;
    }
  }
  r.preemptions = policy.preemptions();
  r.requests = finished;
  r.duration_s = t - start;
  if (r.duration_s > 0) {
    r.output_tokens_per_s = static_cast<double>(output_tokens) / r.duration_s;
    r.requests_per_s = static_cast<double>(finished) / r.duration_s;
    r.mean_running = area_running / r.duration_s;
    r.mean_in_system = area_system / r.duration_s;
    r.mean_kv_used_fraction = area_kv / r.duration_s;
  }
  if (r.steps > 0) r.mean_batch_tokens = tokens_total / static_cast<double>(r.steps);
  r.ttft_s = summarize(ttft);
  r.tpot_s = summarize(tpot);
  r.itl_s = summarize(itl);
  r.itl_s.samples = static_cast<std::int64_t>(itl_seen);
  if (itl_seen > 0) r.itl_s.mean = itl_sum / static_cast<double>(itl_seen);
  r.e2e_s = summarize(e2e);
  // Evenly spaced in time: for each of 500 marks, the last recorded point at or before it.
  if (!raw.empty()) {
    std::size_t j = 0;
    for (int k = 0; k < 500; ++k) {
      const double mark = start + r.duration_s * k / 499.0;
      while (j + 1 < raw.size() && raw[j + 1].t <= mark) ++j;
      const raw_point& p = raw[j];
      if (!r.timeline.empty() && r.timeline.back().time_s == p.t - start) continue;
      r.timeline.push_back({p.t - start, p.running, p.waiting, p.tokens, p.kv});
    }
  }
  return r;
}

static_batch static_batch_estimate(const throughput_model& perf, const memory_estimate& mem, std::int64_t batch,
                                   std::int64_t prompt_tokens, std::int64_t output_tokens) {
  static_batch b;
  b.batch = batch;
  b.prompt_tokens = prompt_tokens;
  b.output_tokens = output_tokens;
  const std::int64_t budget = mem.settings.max_num_batched_tokens;
  if (prompt_tokens <= budget) {
    // Whole prompts per step: floor(budget / P) of them (at most max_num_seqs), the last step the rest.
    const std::int64_t per_step = std::min(budget / prompt_tokens, mem.settings.max_num_seqs);
    const std::int64_t full = batch / per_step, rest = batch % per_step;
    if (full > 0) b.prefill_s += static_cast<double>(full) * perf.prefill(static_cast<double>(prompt_tokens), static_cast<double>(per_step)).total_s;
    if (rest > 0) b.prefill_s += perf.prefill(static_cast<double>(prompt_tokens), static_cast<double>(rest)).total_s;
    b.prefill_steps = full + (rest > 0 ? 1 : 0);
  } else {
    // Chunks of one prompt: ceil(P / budget) steps each, the last one shorter.
    const std::int64_t full = prompt_tokens / budget, rest = prompt_tokens % budget;
    double one = static_cast<double>(full) * perf.prefill(static_cast<double>(budget)).total_s;
    if (rest > 0) one += perf.prefill(static_cast<double>(rest)).total_s;
    b.prefill_s = static_cast<double>(batch) * one;
    b.prefill_steps = batch * (full + (rest > 0 ? 1 : 0));
  }
  // O - 1 steps; beyond 4096 of them, every stride-th step stands for the stride around it.
  const std::int64_t steps = output_tokens - 1;
  const std::int64_t stride = std::max<std::int64_t>(1, steps / 4096);
  for (std::int64_t k = 1; k <= steps; k += stride) {
    const std::int64_t n = std::min(stride, steps - k + 1);
    const double mid = static_cast<double>(prompt_tokens) + static_cast<double>(k) + static_cast<double>(n - 1) / 2;
    b.decode_s += static_cast<double>(n) * perf.decode_step(static_cast<double>(batch), mid).total_s;
  }
  b.e2e_s = b.prefill_s + b.decode_s;
  b.output_tokens_per_s = static_cast<double>(batch * output_tokens) / b.e2e_s;
  b.simulated_e2e_s = std::nan("");
  if (static_cast<double>(batch) * static_cast<double>(output_tokens) > 2e7) return b;  // too long to simulate here
  sim_options so;
  so.requests.assign(static_cast<std::size_t>(batch), sim_request{0.0, prompt_tokens, output_tokens});
  const sim_result r = simulate(perf, mem, std::move(so));
  b.simulated_e2e_s = r.duration_s;
  b.simulated_preemptions = r.preemptions;
  return b;
}

}  // namespace gpucal::model
