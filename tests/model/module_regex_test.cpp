// The regex engine of quantization module patterns: Python's re.match answers
// (computed with CPython 3.11's re on the same patterns and names), the
// patterns that hang or crash std::regex, and what it refuses.
#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "arch/module_regex.hpp"

namespace {

using gpucal::model::module_regex;

TEST(module_regex, agrees_with_python_re_match) {
  const std::vector<std::string> names{"lm_head", "model.layers.3.self_attn.q_proj", "model.layers.3.mlp.gate",
                                       "model.layers.3.mlp.gate_proj", "model.layers.12.mlp.experts.7.up_proj",
                                       "model.layers.12.mlp.experts.7.down_proj", "model.visual.blocks.0.attn",
                                       "model.vision_tower.x", "aab", "aaab", "aaaab", "yz", "xyyzz", "b", "model.embed_tokens",
                                       "model.layers.61.mtp.proj", "model.layers.3.mlp.shared_experts.up_proj",
                                       "model.layers.3.block_sparse_moe.gate", "x", ""};
  // One flag per name: 1 where re.match(pattern, name) matches.
  const std::vector<std::pair<std::string, std::string>> cases{
      {R"(.*lm_head)", "10000000000000000000"},
      {R"(.*self_attn.*)", "01000000000000000000"},
      {R"(model.layers.*.mlp.gate$)", "00100000000000000000"},
      {R"(.*mlp\.gate$)", "00100000000000000000"},
      {R"(.*block_sparse_moe\.gate)", "00000000000000000100"},
      {R"(.*layers\.([0-9]|1[0-9])\..*)", "01111100000000001100"},
      {R"(model\.layers\.\d+\.mlp\.experts\.\d+\.(gate|up)_proj)", "00001000000000000000"},
      {R"((?:.*vision.*|.*visual.*))", "00000011000000000000"},
      {R"([^.]+\.layers\.3\.)", "01110000000000001100"},
      {R"(.*\.(q|k|v)_proj$)", "01000000000000000000"},
      {R"(a{2,3}b)", "00000000110000000000"},
      {R"(x?y+z*)", "00000000000110000000"},
      {R"(^model)", "01111111000000111100"},
      {R"(.*mtp.*)", "00000000000000010000"},
      {R"(.*shared_experts.*)", "00000000000000001000"},
      {R"(\w+\.embed_tokens)", "00000000000000100000"},
      {R"(.*[0-9]{2}\..*)", "00001100000000010000"},
      {R"([a-c]*\D)", "11111111111111111110"},
  };
  for (const auto& [pattern, expected] : cases) {
    const module_regex re(pattern);
    for (std::size_t i = 0; i < names.size(); ++i)
      EXPECT_EQ(re.match(names[i]), expected[i] == '1') << "re.match(r'" << pattern << "', '" << names[i] << "')";
  }
}

// Nested quantifiers and deep nesting: linear time, no stack exhaustion.
TEST(module_regex, hostile_patterns_are_fast_or_refused) {
  const std::string name(200, 'a');
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(module_regex("(.*)*x").match(name));
  EXPECT_FALSE(module_regex("(a*)*(a*)*(a*)*(a*)*(a*)*b").match(name));
  EXPECT_TRUE(module_regex("(a|aa)*$").match(name));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));  // std::regex takes hours
  EXPECT_THROW(module_regex(std::string(20000, '(') + "a" + std::string(20000, ')')), std::invalid_argument);
  EXPECT_THROW(module_regex(std::string(2000, 'a')), std::invalid_argument);  // longer than 1024 characters
  EXPECT_THROW(module_regex("a{100}{100}"), std::invalid_argument);           // multiple repeat
  EXPECT_THROW(module_regex("((a{100}){100}){3}"), std::invalid_argument);    // 30,000 steps: too large a program
  EXPECT_THROW(module_regex("a{1000}"), std::invalid_argument);
  for (const char* bad : {"[", "(", ")", "*a", "a**", "(?P<x>a)", "\\", "a{2", "[z-a]", "\\q"})
    EXPECT_THROW(module_regex{bad}, std::invalid_argument) << bad;
}

}  // namespace
