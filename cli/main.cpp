// gpucal: entry point; everything else lives in cli_app.cpp. The GPU
// commands of the reference engine (`validate`, `probe-engine`) run the
// gpucal-engine binary built beside this one, so planning commands never
// load CUDA libraries.
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "cli_app.hpp"

namespace {

std::string find_engine_binary() {
  if (const char* env = std::getenv("GPUCAL_ENGINE")) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  const auto dir = self.parent_path();
  for (const auto& p : {dir / "gpucal-engine", dir / ".." / "calibrate" / "engine" / "gpucal-engine"})
    if (std::filesystem::is_regular_file(p, ec)) return p.string();
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "validate" || args[0] == "probe-engine")) {
    const std::string engine = find_engine_binary();
    if (!engine.empty()) {
      std::vector<std::string> forwarded{engine, args[0] == "validate" ? "validate" : "probe"};
      forwarded.insert(forwarded.end(), args.begin() + 1, args.end());
      std::vector<char*> cargs;
      for (auto& a : forwarded) cargs.push_back(a.data());
      cargs.push_back(nullptr);
      ::execv(engine.c_str(), cargs.data());
      std::cerr << "gpucal: error: cannot run " << engine << "\n";
      return 2;
    }
  }
  return gpucal::cli::run_cli(args, std::cout, std::cerr);
}
