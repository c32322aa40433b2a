// safetensors headers (see safetensors.hpp).
#include "gpucal/model/safetensors.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "detail/json_fields.hpp"
#include "gpucal/model/errors.hpp"
#include "gpucal/model/files.hpp"

namespace gpucal::model {

namespace {

namespace fs = std::filesystem;
using detail::json;

// Bytes per element of a safetensors dtype (its format's list); 0 when unknown.
double element_bytes(std::string_view dtype) {
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "F8_E4M3" || dtype == "F8_E5M2" || dtype == "F8_E8M0" || dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  if (dtype == "F4" || dtype == "F6_E2M3" || dtype == "F6_E3M2") return dtype == "F4" ? 0.5 : 0.75;
  return 0;
}

constexpr std::uint64_t max_header_bytes = 100ull << 20;  // the format's own limit

void read_header(const fs::path& file, std::int64_t decoder_layers, checkpoint_files& out) {
  const std::string name = file.string();
  std::error_code ec;
  const std::uint64_t size = fs::file_size(file, ec);
  if (ec) throw input_error(fmt::format("--model: cannot read '{}' ({})", name, ec.message()));
  std::ifstream in(file, std::ios::binary);
  unsigned char len_bytes[8] = {};
  if (!in || size < 8 || !in.read(reinterpret_cast<char*>(len_bytes), 8))
    throw input_error(fmt::format("--model: '{}' is not a safetensors file (shorter than its 8-byte header length)", name));
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | len_bytes[i];
  if (len == 0 || len > max_header_bytes || len > size - 8)
    throw input_error(fmt::format("--model: '{}': the safetensors header claims {} bytes, the file holds {} after its length", name,
                                  len, size - 8));
  std::string header(static_cast<std::size_t>(len), '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(len)))
    throw input_error(fmt::format("--model: '{}': the safetensors header is cut short", name));
  const json h = detail::parse_json_text(header, name + " (safetensors header)");
  if (!h.is_object()) throw input_error(fmt::format("--model: '{}': the safetensors header is not a JSON object", name));
  const std::uint64_t data = size - 8 - len;
  for (const auto& [tensor, info] : h.items()) {
    if (tensor == "__metadata__") continue;
    const detail::field_reader r(info, fmt::format("{}: tensor '{}'", name, detail::shown(tensor)));
    const std::string dtype = r.string("dtype");
    const json& shape = r.array("shape");
    const json& offsets = r.array("data_offsets");
    double elements = 1;
    for (const auto& d : shape) {
      if (!d.is_number_integer() || d.get<std::int64_t>() < 0) r.fail("shape", fmt::format("holds {}", detail::shown(d)));
      elements *= static_cast<double>(d.get<std::int64_t>());
    }
    if (offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned() ||
        offsets[1].get<std::uint64_t>() < offsets[0].get<std::uint64_t>() || offsets[1].get<std::uint64_t>() > data)
      r.fail("data_offsets", fmt::format("{} is not a byte range within the file's {} data bytes", detail::shown(offsets), data));
    const auto bytes = static_cast<std::int64_t>(offsets[1].get<std::uint64_t>() - offsets[0].get<std::uint64_t>());
    const double per = element_bytes(dtype);
    if (per > 0 && std::llround(elements * per) != bytes)
      r.fail("data_offsets", fmt::format("cover {} bytes; {} of {} take {:.0f}", bytes, dtype, detail::shown(shape), elements * per));
    out.bytes += bytes;
    out.by_role[tensor_role_of(tensor, decoder_layers)] += bytes;
    ++out.tensors;
  }
  ++out.files;
}

}  // namespace

std::string tensor_role_of(std::string_view n, std::int64_t decoder_layers) {
  const auto has = [&](std::string_view p) { return n.find(p) != std::string_view::npos; };
  // Decoder layers numbered past the config's count are the MTP layers (DeepSeek-V3's layer 61).
  if (const auto at = n.find("layers."); decoder_layers > 0 && at != std::string_view::npos) {
    std::int64_t index = 0;
    std::size_t i = at + 7, digits = 0;
    for (; i < n.size() && digits < 9 && n[i] >= '0' && n[i] <= '9'; ++i, ++digits) index = index * 10 + (n[i] - '0');
    if (digits > 0 && i < n.size() && n[i] == '.' && index >= decoder_layers && !has("vision") && !has("visual")) return "mtp";
  }
  if (has("mtp")) return "mtp";
  if (has("vision") || has("visual") || has("mm_projector") || has("multi_modal_projector") || has("image_newline")) return "vision";
  if (has("embed_tokens") || has("wte") || has("word_embeddings") || has("tok_embeddings")) return "embedding";
  if (has("lm_head") || n == "output.weight") return "lm_head";
  if (has("indexer")) return "indexer";
  if (has("linear_attn")) return "linear_attention";
  if (has("norm") || has("ln_")) return "norms";
  if (n.ends_with(".bias") && !has("e_score_correction")) return "biases";
  if (has("shared_expert")) return "shared_experts";
  if (has("experts")) return "experts";
  if (has(".gate.") || has("router")) return "router";
  if (has("mamba") || has("A_log") || has("conv1d") || has("dt_bias") ||
      (has("mixer") && !has("q_proj") && !has("k_proj") && !has("v_proj") && !has("o_proj") && !has("up_proj") && !has("down_proj")))
    return "mamba";
  if (has("attn") || has("attention") || has("q_proj") || has("k_proj") || has("v_proj") || has("o_proj") || has("kv_a_proj")) return "attention";
  if (has("mlp") || has("feed_forward") || has("ffn") || has("up_proj") || has("down_proj")) return "mlp";
  return "other";
}

std::optional<checkpoint_files> read_checkpoint_files(const std::string& dir, std::int64_t decoder_layers) {
  std::error_code ec;
  std::vector<fs::path> shards;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors" && e.is_regular_file(ec)) shards.push_back(e.path());
  std::sort(shards.begin(), shards.end());
  if (!shards.empty()) {
    if (shards.size() > 100'000) throw input_error(fmt::format("--model: '{}' holds {} safetensors files", dir, shards.size()));
    checkpoint_files out;
    out.source = "safetensors headers";
    for (const auto& f : shards) read_header(f, decoder_layers, out);
    return out;
  }
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  if (!fs::is_regular_file(index, ec)) return std::nullopt;
  const json root = detail::parse_json_text(read_input_file(index.string(), "--model"), index.string());
  const detail::field_reader r(root, index.string());
  checkpoint_files out;
  out.source = "model.safetensors.index.json total_size";
  out.bytes = r.child("metadata").dim("total_size", 1LL << 50);
  return out;
}

}  // namespace gpucal::model
