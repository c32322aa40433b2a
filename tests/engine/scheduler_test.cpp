// The continuous-batching scheduler on the CPU: chunked prefill then decode of one
// request, decode-before-prefill ordering, recompute preemption, the step limits over
// a randomized run, and rejection of bad limits, requests and completions. Expected
// values come from the policy worked by hand, or from the test's own bookkeeping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gpucal/engine/scheduler.hpp"
#include "gpucal/kernels/block_allocator.hpp"

namespace ge = gpucal::engine;
namespace gk = gpucal::kernels;

namespace {

constexpr std::int32_t vocab = 32000;
constexpr std::uint64_t seed = 1234;

// The documented prompt-id formula, written out again here (splitmix64 from Vigna's
// reference splitmix64.c) so the engine's ids are checked against an independent copy.
std::uint64_t ref_splitmix64(std::uint64_t x) {
  std::uint64_t z = x + 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
std::int32_t ref_prompt_token(std::int64_t id, std::int64_t position) {
  const std::uint64_t h = ref_splitmix64(ref_splitmix64(ref_splitmix64(seed) ^ static_cast<std::uint64_t>(id)) ^
                                         static_cast<std::uint64_t>(position));
  return static_cast<std::int32_t>(h % vocab);
}

// Expects `f` to throw E with a message containing every one of `needles`.
template <typename E, typename F>
void expect_throw_with(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << needles.front();
  } catch (const E& e) {
    const std::string what = e.what();
    for (const std::string& n : needles) EXPECT_NE(what.find(n), std::string::npos) << "'" << what << "' lacks '" << n << "'";
  }
}

TEST(scheduler, synthetic_prompt_ids_follow_the_documented_formula) {
  // First output of splitmix64 seeded with 0 (Vigna's splitmix64.c): 0xe220a8397b1dcdaf.
  EXPECT_EQ(ref_splitmix64(0), 0xe220a8397b1dcdafULL);
  for (std::int64_t id : {0LL, 7LL, -3LL, 1LL << 40})
    for (std::int64_t p : {0LL, 1LL, 15LL, 4095LL}) {
      const std::int32_t t = ge::synthetic_prompt_token(seed, id, p, vocab);
      EXPECT_EQ(t, ref_prompt_token(id, p));
      EXPECT_GE(t, 0);
      EXPECT_LT(t, vocab);
    }
  EXPECT_EQ(ge::synthetic_prompt_token(seed, 5, 9, 1), 0);  // a vocabulary of one has one id
}

// Prompt 100, output 3, budget 64: chunks of 64 and 36 (the second samples), then two
// decodes of 1; the third sampled token ends it and its 7 blocks go back to the pool.
TEST(scheduler, single_request_chunked_prefill_then_decode) {
  gk::block_allocator blocks(16, 16);
  ge::scheduler s(blocks, {4, 64, 256}, vocab, seed);
  s.add({7, 100, 3});
  EXPECT_EQ(s.waiting(), 1u);

  // Step 1: positions 0..63. A fresh pool hands out blocks 0, 1, 2, 3 in order, so slot == position.
  ge::step_plan p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 7);
  EXPECT_EQ(p.seqs[0].start_position, 0);
  EXPECT_EQ(p.seqs[0].tokens, 64);
  EXPECT_FALSE(p.seqs[0].samples);
  EXPECT_EQ(p.seqs[0].sample_row, -1);
  EXPECT_TRUE(p.sample_rows.empty());
  EXPECT_EQ(p.total_tokens(), 64);
  EXPECT_EQ(p.prefill_tokens, 64);
  EXPECT_EQ(p.decode_tokens, 0);
  ASSERT_EQ(p.input_ids.size(), 64u);
  ASSERT_EQ(p.positions.size(), 64u);
  ASSERT_EQ(p.slot_mapping.size(), 64u);
  ASSERT_EQ(p.token_seq.size(), 64u);
  ASSERT_EQ(p.context_lens_per_token.size(), 64u);
  for (std::int32_t i = 0; i < 64; ++i) {
    EXPECT_EQ(p.input_ids[i], ref_prompt_token(7, i)) << i;
    EXPECT_EQ(p.positions[i], i);
    EXPECT_EQ(p.slot_mapping[i], i);
    EXPECT_EQ(p.slot_mapping[i], blocks.slot(7, i));
    EXPECT_EQ(p.token_seq[i], 0);
    EXPECT_EQ(p.context_lens_per_token[i], i + 1);
  }
  EXPECT_EQ(p.block_tables, (std::vector<std::vector<std::int32_t>>{{0, 1, 2, 3}}));
  EXPECT_EQ(blocks.free_blocks(), 12);
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.waiting(), 0u);
  s.complete(p, {});

  // Step 2: positions 64..99, ceil(100 / 16) = 7 blocks; the last token (row 35) samples.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].start_position, 64);
  EXPECT_EQ(p.seqs[0].tokens, 36);
  EXPECT_TRUE(p.seqs[0].samples);
  EXPECT_EQ(p.seqs[0].sample_row, 35);
  EXPECT_EQ(p.sample_rows, std::vector<std::int32_t>{35});
  EXPECT_EQ(p.prefill_tokens, 36);
  ASSERT_EQ(p.input_ids.size(), 36u);
  for (std::int32_t i = 0; i < 36; ++i) {
    EXPECT_EQ(p.input_ids[i], ref_prompt_token(7, 64 + i)) << i;
    EXPECT_EQ(p.positions[i], 64 + i);
    EXPECT_EQ(p.slot_mapping[i], 64 + i);
    EXPECT_EQ(p.slot_mapping[i], blocks.slot(7, 64 + i));
    EXPECT_EQ(p.context_lens_per_token[i], 65 + i);
  }
  EXPECT_EQ(p.block_tables[0], (std::vector<std::int32_t>{0, 1, 2, 3, 4, 5, 6}));
  s.complete(p, {11});
  EXPECT_EQ(s.generated(7), std::vector<std::int32_t>{11});

  // Steps 3 and 4: one decode each, feeding back the last sampled token.
  // Position 100 is offset 4 of the 7th block (block 6): slot 6 * 16 + 4 = 100.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].start_position, 100);
  EXPECT_EQ(p.seqs[0].tokens, 1);
  EXPECT_TRUE(p.seqs[0].samples);
  EXPECT_EQ(p.seqs[0].sample_row, 0);
  EXPECT_EQ(p.input_ids, std::vector<std::int32_t>{11});
  EXPECT_EQ(p.positions, std::vector<std::int32_t>{100});
  EXPECT_EQ(p.slot_mapping, std::vector<std::int64_t>{100});
  EXPECT_EQ(p.slot_mapping[0], blocks.slot(7, 100));
  EXPECT_EQ(p.context_lens_per_token, std::vector<std::int32_t>{101});
  EXPECT_EQ(p.prefill_tokens, 0);
  EXPECT_EQ(p.decode_tokens, 1);
  s.complete(p, {22});
  EXPECT_TRUE(s.finished().empty());

  p = s.schedule();
  EXPECT_EQ(p.input_ids, std::vector<std::int32_t>{22});
  EXPECT_EQ(p.positions, std::vector<std::int32_t>{101});
  EXPECT_EQ(p.slot_mapping, std::vector<std::int64_t>{101});
  s.complete(p, {33});

  EXPECT_EQ(s.finished(), std::vector<std::int64_t>{7});
  EXPECT_EQ(s.generated(7), (std::vector<std::int32_t>{11, 22, 33}));
  EXPECT_TRUE(s.idle());
  EXPECT_EQ(s.running(), 0u);
  EXPECT_EQ(blocks.free_blocks(), 16);
  EXPECT_EQ(s.preemptions(), 0);
  EXPECT_EQ(s.schedule().total_tokens(), 0);  // nothing left to run
}

// A decoding request goes first in the flat arrays; the new prompt fills the rest of the budget.
TEST(scheduler, decode_comes_before_new_prefill) {
  gk::block_allocator blocks(64, 16);
  ge::scheduler s(blocks, {4, 64, 512}, vocab, seed);
  s.add({1, 10, 5});
  ge::step_plan p = s.schedule();
  ASSERT_EQ(p.total_tokens(), 10);
  s.complete(p, {5});

  s.add({2, 100, 2});
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_EQ(p.seqs[0].start_position, 10);
  EXPECT_EQ(p.seqs[0].tokens, 1);
  EXPECT_TRUE(p.seqs[0].samples);
  EXPECT_EQ(p.seqs[0].sample_row, 0);
  EXPECT_EQ(p.seqs[1].request_id, 2);
  EXPECT_EQ(p.seqs[1].start_position, 0);
  EXPECT_EQ(p.seqs[1].tokens, 63);  // 64 - 1 decode token
  EXPECT_FALSE(p.seqs[1].samples);
  EXPECT_EQ(p.seqs[1].sample_row, -1);
  EXPECT_EQ(p.sample_rows, std::vector<std::int32_t>{0});
  EXPECT_EQ(p.total_tokens(), 64);
  EXPECT_EQ(p.decode_tokens, 1);
  EXPECT_EQ(p.prefill_tokens, 63);
  ASSERT_EQ(p.input_ids.size(), 64u);
  EXPECT_EQ(p.input_ids[0], 5);
  EXPECT_EQ(p.positions[0], 10);
  EXPECT_EQ(p.context_lens_per_token[0], 11);
  EXPECT_EQ(p.token_seq[0], 0);
  EXPECT_EQ(p.slot_mapping[0], blocks.slot(1, 10));
  for (std::int32_t i = 1; i < 64; ++i) {
    EXPECT_EQ(p.input_ids[i], ref_prompt_token(2, i - 1)) << i;
    EXPECT_EQ(p.positions[i], i - 1);
    EXPECT_EQ(p.token_seq[i], 1);
    EXPECT_EQ(p.context_lens_per_token[i], i);
    EXPECT_EQ(p.slot_mapping[i], blocks.slot(2, i - 1));
  }
  // Request 1 holds block 0 (11 tokens); request 2's 63 tokens take blocks 1..4.
  EXPECT_EQ(p.block_tables, (std::vector<std::vector<std::int32_t>>{{0}, {1, 2, 3, 4}}));
  s.complete(p, {6});
  EXPECT_EQ(s.generated(1), (std::vector<std::int32_t>{5, 6}));
  EXPECT_TRUE(s.generated(2).empty());
}

// A running request that cannot grow preempts the most recently admitted one, which restarts
// from its prompt with its generated tokens dropped; no admission happens in that step.
TEST(scheduler, preempts_the_latest_admitted_by_recompute) {
  gk::block_allocator blocks(2, 4);  // 8 token slots
  ge::scheduler s(blocks, {4, 64, 64}, vocab, seed);
  s.add({1, 4, 3});  // KV peaks at 4 + 3 - 1 = 6 tokens: 2 blocks
  s.add({2, 2, 2});  // 3 tokens: 1 block

  ge::step_plan p = s.schedule();  // both prompts: block 0 for request 1, block 1 for request 2
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(blocks.free_blocks(), 0);
  s.complete(p, {100, 200});

  // Request 1's token at position 4 needs a new block: request 2 (admitted last) is preempted.
  p = s.schedule();
  EXPECT_EQ(s.preemptions(), 1);
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_EQ(p.seqs[0].start_position, 4);
  EXPECT_EQ(p.slot_mapping, std::vector<std::int64_t>{4});  // block 1, freed by request 2 (1 * 4 + 0)
  EXPECT_EQ(s.running(), 1u);
  EXPECT_EQ(s.waiting(), 1u);
  EXPECT_TRUE(s.generated(2).empty());
  s.complete(p, {101});

  // Position 5 fits in block 1; request 2's 2-token prompt needs a block and none is free.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_EQ(s.waiting(), 1u);
  s.complete(p, {102});
  EXPECT_EQ(s.finished(), std::vector<std::int64_t>{1});
  EXPECT_EQ(blocks.free_blocks(), 2);

  // Request 2 starts over at position 0 and regenerates both tokens.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 2);
  EXPECT_EQ(p.seqs[0].start_position, 0);
  EXPECT_EQ(p.seqs[0].tokens, 2);
  EXPECT_TRUE(p.seqs[0].samples);
  EXPECT_EQ(p.input_ids, (std::vector<std::int32_t>{ref_prompt_token(2, 0), ref_prompt_token(2, 1)}));
  s.complete(p, {300});
  p = s.schedule();
  EXPECT_EQ(p.input_ids, std::vector<std::int32_t>{300});
  EXPECT_EQ(p.positions, std::vector<std::int32_t>{2});
  s.complete(p, {301});

  EXPECT_EQ(s.finished(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(s.generated(1), (std::vector<std::int32_t>{100, 101, 102}));
  EXPECT_EQ(s.generated(2), (std::vector<std::int32_t>{300, 301}));
  EXPECT_EQ(s.preemptions(), 1);
  EXPECT_EQ(blocks.free_blocks(), 2);
}

// When the request that cannot grow is itself the latest admitted, it preempts itself; its block
// back in the pool, it is re-admitted next step and thrashes until the older request ends.
TEST(scheduler, latest_request_preempts_itself) {
  gk::block_allocator blocks(4, 4);  // 16 token slots
  ge::scheduler s(blocks, {4, 64, 64}, vocab, seed);
  s.add({1, 8, 5});  // KV peaks at 12 tokens: 3 blocks
  s.add({2, 4, 4});  // 7 tokens: 2 blocks
  ge::step_plan p = s.schedule();  // blocks 0, 1 for request 1, block 2 for request 2
  ASSERT_EQ(p.total_tokens(), 12);
  s.complete(p, {10, 20});

  // Request 1's position 8 takes block 3; request 2's position 4 needs a 5th block.
  p = s.schedule();
  EXPECT_EQ(s.preemptions(), 1);
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_EQ(s.waiting(), 1u);
  EXPECT_EQ(blocks.free_blocks(), 1);  // request 2's block is back
  s.complete(p, {11});

  // Its block is free again, so request 2 is re-admitted from position 0 beside request 1's decode.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_EQ(p.seqs[0].start_position, 9);
  EXPECT_EQ(p.seqs[1].request_id, 2);
  EXPECT_EQ(p.seqs[1].start_position, 0);
  EXPECT_EQ(p.seqs[1].tokens, 4);
  EXPECT_TRUE(p.seqs[1].samples);
  s.complete(p, {12, 40});

  // Position 10 fits in request 1's block 3; request 2 needs its 2nd block again: preempted again.
  p = s.schedule();
  EXPECT_EQ(s.preemptions(), 2);
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].request_id, 1);
  EXPECT_TRUE(s.generated(2).empty());
  s.complete(p, {13});

  // Position 11 is request 1's last; request 2 restarts once more and, after request 1 ends, runs out.
  p = s.schedule();
  ASSERT_EQ(p.seqs.size(), 2u);
  EXPECT_EQ(p.seqs[1].start_position, 0);
  s.complete(p, {14, 50});
  EXPECT_EQ(s.finished(), std::vector<std::int64_t>{1});
  EXPECT_EQ(s.generated(1), (std::vector<std::int32_t>{10, 11, 12, 13, 14}));
  for (std::int32_t t = 51; t <= 53; ++t) {
    p = s.schedule();
    ASSERT_EQ(p.seqs.size(), 1u);
    EXPECT_EQ(p.positions, std::vector<std::int32_t>{t - 51 + 4});  // positions 4, 5, 6
    s.complete(p, {t});
  }
  EXPECT_EQ(s.finished(), (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(s.generated(2), (std::vector<std::int32_t>{50, 51, 52, 53}));
  EXPECT_EQ(s.preemptions(), 2);
  EXPECT_EQ(blocks.free_blocks(), 4);
  EXPECT_TRUE(s.idle());
}

// Drives 200 random requests (a few arriving each step) to completion, checking every step
// against the limits and against the test's own record of each request's KV length and tokens.
// Returns the preemptions the test observed (restarts at position 0).
std::int64_t run_random_workload(std::int64_t num_blocks) {
  constexpr std::int64_t block_size = 16;
  const ge::scheduler_limits limits{16, 256, 512};
  gk::block_allocator blocks(num_blocks, block_size);
  ge::scheduler s(blocks, limits, vocab, seed);

  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<std::int64_t> prompt_len(1, 300), output_len(1, 40);
  std::vector<ge::request> requests;
  for (std::int64_t id = 0; id < 200; ++id) requests.push_back({1000 + id, prompt_len(rng), output_len(rng)});

  struct record {
    std::int64_t kv_tokens = 0;          // computed tokens, as seen in the plans
    std::vector<std::int32_t> generated;  // tokens the test sampled for it
  };
  std::map<std::int64_t, record> seen;
  std::map<std::int64_t, const ge::request*> by_id;
  for (const auto& r : requests) by_id[r.id] = &r;

  std::int64_t restarts = 0;
  std::size_t next_arrival = 0;
  for (int step = 0; !(next_arrival == requests.size() && s.idle()); ++step) {
    if (step > 100000) {
      ADD_FAILURE() << "no progress after 100000 steps";
      break;
    }
    for (int k = 0; k < 3 && next_arrival < requests.size(); ++k) s.add(requests[next_arrival++]);
    const ge::step_plan p = s.schedule();

    EXPECT_LE(static_cast<std::int64_t>(p.seqs.size()), limits.max_num_seqs);
    EXPECT_LE(p.total_tokens(), limits.max_num_batched_tokens);
    EXPECT_LE(static_cast<std::int64_t>(s.running()), limits.max_num_seqs);
    const std::size_t n = static_cast<std::size_t>(p.total_tokens());
    EXPECT_EQ(p.positions.size(), n);
    EXPECT_EQ(p.slot_mapping.size(), n);
    EXPECT_EQ(p.token_seq.size(), n);
    EXPECT_EQ(p.context_lens_per_token.size(), n);
    EXPECT_EQ(p.block_tables.size(), p.seqs.size());
    EXPECT_EQ(p.prefill_tokens + p.decode_tokens, p.total_tokens());

    std::set<std::int64_t> slots;
    std::vector<std::int32_t> expected_rows;
    std::vector<std::int32_t> sampled;
    std::int64_t flat = 0;
    for (std::size_t q = 0; q < p.seqs.size(); ++q) {
      const ge::scheduled_seq& sq = p.seqs[q];
      const ge::request& r = *by_id.at(sq.request_id);
      record& rec = seen[sq.request_id];
      if (sq.start_position == 0 && rec.kv_tokens > 0) {  // preempted since we last saw it
        ++restarts;
        rec = record{};
      }
      EXPECT_EQ(sq.start_position, rec.kv_tokens);
      EXPECT_GE(sq.tokens, 1);
      const std::int64_t known = r.prompt_tokens + static_cast<std::int64_t>(rec.generated.size());
      EXPECT_LE(sq.start_position + sq.tokens, known);
      EXPECT_EQ(sq.samples, sq.start_position + sq.tokens == known);
      EXPECT_EQ(blocks.length(sq.request_id), sq.start_position + sq.tokens);
      EXPECT_EQ(p.block_tables[q], blocks.block_table(sq.request_id));
      for (std::int64_t i = 0; i < sq.tokens; ++i, ++flat) {
        const std::int64_t pos = sq.start_position + i;
        const auto f = static_cast<std::size_t>(flat);
        EXPECT_EQ(p.positions[f], pos);
        EXPECT_EQ(p.context_lens_per_token[f], pos + 1);
        EXPECT_EQ(p.token_seq[f], static_cast<std::int32_t>(q));
        EXPECT_EQ(p.slot_mapping[f], blocks.slot(sq.request_id, pos));
        EXPECT_TRUE(slots.insert(p.slot_mapping[f]).second) << "slot written twice in one step";
        const std::int32_t want = pos < r.prompt_tokens ? ref_prompt_token(r.id, pos)
                                                        : rec.generated[static_cast<std::size_t>(pos - r.prompt_tokens)];
        EXPECT_EQ(p.input_ids[f], want);
      }
      rec.kv_tokens += sq.tokens;
      if (sq.samples) {
        expected_rows.push_back(static_cast<std::int32_t>(flat - 1));
        EXPECT_EQ(sq.sample_row, flat - 1);
        const auto t = static_cast<std::int32_t>((sq.request_id * 7919 + static_cast<std::int64_t>(step)) % vocab);
        sampled.push_back(t);
        rec.generated.push_back(t);
      } else {
        EXPECT_EQ(sq.sample_row, -1);
      }
    }
    EXPECT_EQ(p.sample_rows, expected_rows);
    s.complete(p, sampled);
  }

  const std::vector<std::int64_t> done = s.finished();
  EXPECT_EQ(done.size(), requests.size());
  EXPECT_EQ(std::set<std::int64_t>(done.begin(), done.end()).size(), requests.size());
  for (const ge::request& r : requests) {
    EXPECT_EQ(static_cast<std::int64_t>(s.generated(r.id).size()), r.output_tokens) << r.id;
    EXPECT_EQ(s.generated(r.id), seen[r.id].generated) << r.id;
  }
  EXPECT_EQ(blocks.free_blocks(), num_blocks);
  EXPECT_EQ(s.preemptions(), restarts);
  return restarts;
}

TEST(scheduler, random_workload_small_pool_preempts_and_finishes) {
  // 40 blocks x 16 = 640 token slots for up to 16 running requests of up to 339 KV tokens:
  // the pool runs dry, so requests are preempted, yet each fits alone (339 -> 22 blocks).
  EXPECT_GT(run_random_workload(40), 0);
}

TEST(scheduler, random_workload_large_pool_never_preempts) {
  // 16 running requests x ceil(339 / 16) = 22 blocks = 352 blocks at most: 400 never run dry.
  EXPECT_EQ(run_random_workload(400), 0);
}

TEST(scheduler, rejects_bad_limits) {
  gk::block_allocator blocks(8, 16);
  for (const std::int64_t bad : {0LL, -1LL, 1LL << 31}) {
    expect_throw_with<std::invalid_argument>([&] { ge::scheduler(blocks, {bad, 64, 64}, vocab, seed); },
                                             {"max_num_seqs", std::to_string(bad), "allowed"});
    expect_throw_with<std::invalid_argument>([&] { ge::scheduler(blocks, {4, bad, 64}, vocab, seed); },
                                             {"max_num_batched_tokens", std::to_string(bad), "allowed"});
    expect_throw_with<std::invalid_argument>([&] { ge::scheduler(blocks, {4, 64, bad}, vocab, seed); },
                                             {"max_model_len", std::to_string(bad), "allowed"});
  }
  expect_throw_with<std::invalid_argument>([&] { ge::scheduler(blocks, {4, 64, 64}, 0, seed); }, {"vocab_size"});
  EXPECT_NO_THROW(ge::scheduler(blocks, {1, 1, 1}, 1, seed));
}

TEST(scheduler, rejects_bad_requests) {
  gk::block_allocator blocks(8, 16);  // 128 token slots
  ge::scheduler s(blocks, {4, 64, 200}, vocab, seed);
  s.add({5, 10, 10});
  expect_throw_with<std::invalid_argument>([&] { s.add({5, 20, 20}); }, {"request 5", "id"});
  expect_throw_with<std::invalid_argument>([&] { s.add({6, 0, 10}); }, {"request 6", "prompt_tokens", "0"});
  expect_throw_with<std::invalid_argument>([&] { s.add({7, 10, 0}); }, {"request 7", "output_tokens", "0"});
  expect_throw_with<std::invalid_argument>([&] { s.add({8, -4, 10}); }, {"request 8", "prompt_tokens", "-4"});
  // 150 + 51 = 201 > max_model_len 200.
  expect_throw_with<std::invalid_argument>([&] { s.add({9, 150, 51}); }, {"request 9", "max_model_len", "200"});
  // Fits max_model_len, but 100 + 40 - 1 = 139 KV tokens need 9 blocks of a pool of 8.
  expect_throw_with<std::invalid_argument>([&] { s.add({10, 100, 40}); }, {"request 10", "prompt_tokens", "9 blocks"});
  EXPECT_EQ(s.waiting(), 1u);  // only the first request got in
  EXPECT_NO_THROW(s.add({11, 100, 29}));  // 128 KV tokens: exactly the pool
  EXPECT_EQ(s.waiting(), 2u);

  gk::block_allocator big(64, 16);
  ge::scheduler t(big, {4, 64, 200}, vocab, seed);
  EXPECT_NO_THROW(t.add({1, 150, 50}));  // exactly max_model_len
  EXPECT_THROW(t.generated(99), std::out_of_range);
}

TEST(scheduler, complete_rejects_a_wrong_plan_or_sample_count) {
  gk::block_allocator blocks(8, 16);
  ge::scheduler s(blocks, {4, 64, 128}, vocab, seed);
  s.add({1, 5, 3});
  s.add({2, 7, 3});
  const ge::step_plan p = s.schedule();  // both prompts end in this step: 2 sample rows
  ASSERT_EQ(p.sample_rows, (std::vector<std::int32_t>{4, 11}));
  expect_throw_with<std::invalid_argument>([&] { s.complete(p, {1}); }, {"1 sampled", "2 sample_rows"});
  expect_throw_with<std::invalid_argument>([&] { s.complete(p, {1, 2, 3}); }, {"3 sampled"});
  EXPECT_THROW(s.complete(p, {1, vocab}), std::invalid_argument);  // outside [0, vocab)
  EXPECT_THROW(s.schedule(), std::logic_error);                     // the step is still in flight
  // Nothing changed: the right completion still works, once.
  EXPECT_TRUE(s.generated(1).empty());
  s.complete(p, {1, 2});
  EXPECT_EQ(s.generated(1), std::vector<std::int32_t>{1});
  EXPECT_EQ(s.generated(2), std::vector<std::int32_t>{2});
  EXPECT_THROW(s.complete(p, {1, 2}), std::invalid_argument);
  EXPECT_EQ(s.generated(1), std::vector<std::int32_t>{1});
}

}  // namespace
