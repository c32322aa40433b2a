// gpucal_fuzz_seeds OUT: writes the seed corpus of every fuzz target under
// OUT/<target>/: the catalog's config.json files (config), its engine
// profiles (engine_profile), the default coefficients and a calibration
// fitted from a synthetic benchmark file (calibration), and that synthetic
// benchmark file (bench). Synthetic figures only: seeds, never results.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "gpucal/model/calibration.hpp"
#include "gpucal/model/catalog.hpp"
#include "gpucal/model/detail/embedded_files.hpp"
#include "gpucal/model/fit.hpp"
#include "synthetic_bench.hpp"

namespace fs = std::filesystem;

namespace {

void put(const fs::path& dir, const std::string& name, const std::string& text) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: gpucal_fuzz_seeds OUT\n";
    return 2;
  }
  const fs::path out(argv[1]);
  int n = 0;
  for (const auto& f : gpucal::model::detail::embedded_files()) {
    const std::string name = fs::path(f.path).filename().string();
    if (f.path.starts_with("models/")) {
      const auto root = nlohmann::json::parse(f.text);
      put(out / "config", name, root.at("config").dump(2));
    } else if (f.path.starts_with("engines/")) {
      put(out / "engine_profile", name, std::string(f.text));
    } else if (f.path.starts_with("coefficients/")) {
      put(out / "calibration", name, std::string(f.text));
    } else {
      continue;
    }
    ++n;
  }
  const std::string bench = gpucal::test::bench_json(1.0);
  put(out / "bench", "synthetic_h100.json", bench);
  const auto c = gpucal::model::calibration_from_benchmarks(bench, "synthetic_h100.json", gpucal::model::resolve_gpu("h100"),
                                                            "2026-11-30T00:00:00Z", "0.0.0", "seed");
  put(out / "calibration", "synthetic_h100_calibration.json", gpucal::model::checked_calibration_json(c, "seed"));
  std::cout << "gpucal_fuzz_seeds: " << n + 2 << " seeds under " << out.string() << "\n";
  return 0;
}
