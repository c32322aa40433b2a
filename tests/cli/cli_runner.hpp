// Runs `gpucal` in-process for the CLI tests and checks the bad-input
// contract: exit 2, one line on stderr naming the problem, nothing on stdout.
#pragma once

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cli_app.hpp"

namespace gpucal::test {

struct cli_result {
  int code;
  std::string out;
  std::string err;
};

/// A test with a fresh folder of its own, `<temp>/<prefix><pid>`, removed afterwards.
class scratch_test : public ::testing::Test {
protected:
  explicit scratch_test(std::string prefix) : prefix_(std::move(prefix)) {}
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / (prefix_ + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  /// Writes `text` to dir_/name and returns its path.
  std::string write(const std::string& name, const std::string& text) {
    const std::filesystem::path p = dir_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  std::filesystem::path dir_;

private:
  std::string prefix_;
};

inline cli_result run_gpucal(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  const int code = gpucal::cli::run_cli(args, out, err);
  return {code, out.str(), err.str()};
}

/// Runs `args` and checks the bad-input contract, with `needle` in the error
/// line; returns the result for further checks.
inline cli_result expect_refused(const std::vector<std::string>& args, const std::string& needle) {
  const cli_result r = run_gpucal(args);
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  SCOPED_TRACE(joined);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  return r;
}

/// Each case: the arguments and a string the error line must contain.
inline void expect_bad_input(const std::vector<std::pair<std::vector<std::string>, std::string>>& cases) {
  for (const auto& [args, needle] : cases) expect_refused(args, needle);
}

}  // namespace gpucal::test
