// One probe of gpucal-engine, run so that a probe that cannot run (out of
// memory, a library missing, a shape the pool refuses) is listed with its
// reason and the others still run.
#pragma once

#include <fmt/format.h>

#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace gpucal::engine_tool {

template <typename Probe>
bool try_probe(const std::string& what, std::vector<std::string>& skipped,
               const std::function<void(const std::string&)>& progress, Probe&& probe) {
  try {
    probe();
    return true;
  } catch (const std::exception& e) {
    skipped.push_back(fmt::format("{}: {}", what, e.what()));
    progress(fmt::format("{}: not measured ({})", what, e.what()));
    return false;
  }
}

}  // namespace gpucal::engine_tool
