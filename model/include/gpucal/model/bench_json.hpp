// gpucal_bench output (Google Benchmark's JSON) as the device run leaves it:
// one file per benchmark family, any of them possibly cut off mid-write when
// its step hit the run's deadline. Merging keeps every complete run.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace gpucal::model {

/// What merge_bench_json made of its inputs.
struct bench_merge {
  std::string json;                 ///< one Google Benchmark JSON document: a context and every run
  std::size_t runs = 0;             ///< benchmark entries kept
  std::vector<std::string> notes;   ///< one line per input: runs kept, and whether it was cut off
};

/// Merges gpucal_bench JSON documents given as (name, text). The context is
/// the first document's that has one (the GPU's identity is the same in
/// all); the runs are every complete entry of every "benchmarks" list, in
/// order. A document cut off mid-write keeps the entries before the cut and
/// says so in its note; one with no context and no complete entry is
/// noted and skipped. Throws input_error when no input has a context.
bench_merge merge_bench_json(const std::vector<std::pair<std::string, std::string>>& documents);

}  // namespace gpucal::model
