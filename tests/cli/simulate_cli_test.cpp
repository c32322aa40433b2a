// `gpucal simulate` on the command line: the JSON it promises, and bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_runner.hpp"

using gpucal::test::expect_bad_input;
using gpucal::test::run_gpucal;
using json = nlohmann::json;

namespace {

class simulate_cli : public gpucal::test::scratch_test {
protected:
  simulate_cli() : scratch_test("gpucal_sim_") {}
};

TEST_F(simulate_cli, json_holds_the_latency_percentiles) {
  const std::vector<std::string> args = {"simulate", "--model", "llama-3.1-8b", "--gpu", "h100", "--qps", "5", "--prompt-len", "512",
                                         "--output-len", "uniform:32:128", "--requests", "300", "--seed", "1", "--json"};
  const auto r = run_gpucal(args);
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("schema"), "gpucal.simulate/1");
  EXPECT_EQ(j.at("requests"), 300);
  EXPECT_EQ(j.at("preemptions"), 0);
  EXPECT_GT(j.at("output_tokens_per_s").get<double>(), 0);
  for (const char* k : {"ttft_s", "tpot_s", "itl_s", "e2e_s"}) {
    const json& l = j.at(k);
    EXPECT_LE(l.at("p50").get<double>(), l.at("p90").get<double>()) << k;
    EXPECT_LE(l.at("p90").get<double>(), l.at("p99").get<double>()) << k;
    EXPECT_GT(l.at("p50").get<double>(), 0) << k;
  }
  EXPECT_EQ(j.at("workload").at("output_len").at("shape"), "uniform");
  // The same seed gives the same run.
  const auto again = run_gpucal(args);
  EXPECT_EQ(again.out, r.out);
}

TEST_F(simulate_cli, a_trace_and_bad_input) {
  const std::string good = write("good.jsonl", "{\"arrival_s\": 0, \"prompt_tokens\": 100, \"output_tokens\": 3}\n"
                                               "{\"arrival_s\": 0.5, \"prompt_tokens\": 200, \"output_tokens\": 4}\n");
  const std::string bad = write("bad.jsonl", "{\"arrival_s\": 0, \"prompt_tokens\": 100, \"output_tokens\": 3}\n{\"arrival_s\": 1}\n");
  const auto r = run_gpucal({"simulate", "--model", "llama-3.1-8b", "--gpu", "h100", "--trace", good, "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out).at("requests"), 2);
  const std::vector<std::string> base = {"simulate", "--model", "llama-3.1-8b", "--gpu", "h100"};
  const auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = base;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  expect_bad_input({
      {with({"--trace", bad}), "line 2: field 'prompt_tokens' is missing"},
      {with({"--qps", "0", "--prompt-len", "10", "--output-len", "10"}), "--qps"},
      {with({"--qps", "-1", "--prompt-len", "10", "--output-len", "10"}), "--qps"},
      {with({"--qps", "1", "--prompt-len", "0", "--output-len", "10"}), "--prompt-len"},
      {with({"--qps", "1", "--prompt-len", "10", "--output-len", "lognormal:5:9"}), "--output-len"},
      {with({"--qps", "1", "--prompt-len", "10"}), "--output-len: required"},
      {with({"--qps", "1", "--prompt-len", "10", "--output-len", "5", "--requests", "0"}), "--requests"},
      {with({"--qps", "1", "--prompt-len", "10", "--output-len", "5", "--preemption", "swap"}), "--preemption"},
      {with({"--trace", good, "--qps", "3"}), "--trace"},
      {with({"--qps", "1", "--prompt-len", "200000", "--output-len", "5"}), "exceeds"},
  });
}

}  // namespace
