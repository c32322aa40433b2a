// Fuzzes `gpucal estimate --model FILE` and `perf` as a user runs them: the
// input is written as a config.json and the CLI runs in-process. Seeds: the
// catalog's configs (scripts/fuzz prepares them).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_app.hpp"
#include "fuzz_check.hpp"
#include "json_mutator.hpp"

GPUCAL_JSON_MUTATOR

namespace {

const std::string& config_path() {
  static const std::string path = [] {
    const auto dir = std::filesystem::temp_directory_path() / ("gpucal_fuzz_config_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return (dir / "config.json").string();
  }();
  return path;
}

void run(const std::vector<std::string>& args, bool json) {
  std::ostringstream out, err;
  const int rc = gpucal::cli::run_cli(args, out, err);
  const std::string o = out.str(), e = err.str();
  using gpucal::fuzz::check;
  check(rc == 0 || rc == 2, "exit " + std::to_string(rc) + ": " + e);
  if (rc == 2) {
    check(o.empty(), "output on an error");
    check(e.starts_with("gpucal: error: ") && e.find('\n') == e.size() - 1, "not one error line: " + e);
    // The library's tag never leads a message; the input itself, quoted after "last read:", may hold anything.
    check(e.substr(0, e.find("last read: '")).find("[json.exception.") == std::string::npos, "library text in: " + e);
    return;
  }
  if (json) {
    gpucal::fuzz::check_json_figures(nlohmann::json::parse(o));
  } else {
    for (std::size_t at = o.find(" -"); at != std::string::npos; at = o.find(" -", at + 1))
      check(at + 2 >= o.size() || !std::isdigit(static_cast<unsigned char>(o[at + 2])), "a negative figure in the text");
    check(o.find("nan") == std::string::npos && o.find(" inf") == std::string::npos, "a non-finite figure in the text");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  {
    std::ofstream f(config_path(), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  const std::string& p = config_path();
  run({"estimate", "--model", p, "--gpu", "h100", "--json"}, true);
  run({"estimate", "--model", p, "--gpu", "b200", "--tp", "8"}, false);
  run({"perf", "--model", p, "--gpu", "h200", "--batch", "8", "--prompt-len", "1000", "--output-len", "200", "--json"}, true);
  return 0;
}
