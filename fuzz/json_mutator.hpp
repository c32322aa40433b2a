// A structure-aware mutator shared by the fuzz targets: half the time it
// parses the input as JSON, replaces one value (or drops one key) with a
// hostile one (0, -1, 2^31, 2^53, 2^62, 1e18, 1e300, 1e999, NaN, a string,
// a list, an object, null...), and writes the JSON back; otherwise, or when
// the input is not JSON, it leaves the bytes to libFuzzer's own mutations.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace gpucal::fuzz {

using json = nlohmann::json;

// Every value of the document, depth first (the root first).
inline void collect(json& v, std::vector<json*>& out) {
  out.push_back(&v);
  if (v.is_object() || v.is_array())
    for (auto& child : v) collect(child, out);
}

// One hostile value; "1e999" and the Python literals go in as text markers
// replaced after dumping (nlohmann cannot hold them).
inline json hostile_value(std::mt19937_64& rng, const json& current) {
  static const std::vector<json> pool = {
      0, -1, 1, 2, 3, 7, 2147483647LL, 2147483648LL, 4294967296LL, 9007199254740992LL, 4611686018427387904LL,
      9223372036854775807LL, -9223372036854775807LL - 1, 1e18, 1e300, -8, 1.5, -0.0, 1e-300, "abc", "", json::array(),
      json::object(), nullptr, true, false, json::array({1, "x"}), json{{"a", 1}}, "@1e999@", "@-1e999@", "@NaN@",
      "@Infinity@", 65536, 100000, "lla\nma"};
  std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
  if (current.is_number() && !current.is_boolean() && rng() % 3 == 0) {
    static const double factors[] = {2, 10, 1000, -1, 0.5, 1e9};
    const double f = factors[rng() % (sizeof factors / sizeof factors[0])];
    const double scaled = current.get<double>() * f;
    // Integers stay integers while they fit in 64 bits; past that they become floats, as a JSON writer would.
    if (current.is_number_integer() && std::fabs(scaled) < 9.2e18) return static_cast<std::int64_t>(scaled);
    return scaled;
  }
  return pool[pick(rng)];
}

inline std::string dump_with_markers(const json& j) {
  std::string text = j.dump();
  for (const auto& [marker, literal] : std::vector<std::pair<std::string, std::string>>{
           {"\"@1e999@\"", "1e999"}, {"\"@-1e999@\"", "-1e999"}, {"\"@NaN@\"", "NaN"}, {"\"@Infinity@\"", "Infinity"}}) {
    for (std::size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at))
      text.replace(at, marker.size(), literal);
  }
  return text;
}

inline size_t mutate(uint8_t* data, size_t size, size_t max_size, unsigned int seed) {
  std::mt19937_64 rng(seed);
  if (rng() % 2 == 0) return LLVMFuzzerMutate(data, size, max_size);
  json doc = json::parse(reinterpret_cast<const char*>(data), reinterpret_cast<const char*>(data) + size, nullptr, false);
  if (doc.is_discarded()) return LLVMFuzzerMutate(data, size, max_size);
  const int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    std::vector<json*> values;
    collect(doc, values);
    json* target = values[rng() % values.size()];
    if (target->is_object() && !target->empty() && rng() % 4 == 0) {
      auto it = target->begin();
      std::advance(it, static_cast<long>(rng() % target->size()));
      target->erase(it.key());  // a missing key
    } else if (target != &doc) {
      *target = hostile_value(rng, *target);
    }
  }
  const std::string text = dump_with_markers(doc);
  if (text.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, text.data(), text.size());
  return text.size();
}

}  // namespace gpucal::fuzz

#define GPUCAL_JSON_MUTATOR                                                                                 \
  extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size, unsigned int seed) { \
    return gpucal::fuzz::mutate(data, size, max_size, seed);                                                \
  }
