// A local checkpoint's tensors as its safetensors files declare them: each
// file starts with an 8-byte little-endian header length and a JSON header
// naming every tensor's dtype, shape and byte range. Only headers are read,
// never tensor data, so a 700 GB checkpoint is summarized in milliseconds.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <string>

namespace gpucal::model {

struct checkpoint_files {
  std::int64_t files = 0;
  std::int64_t tensors = 0;
  std::int64_t bytes = 0;                      ///< tensor data, headers excluded
  std::map<std::string, std::int64_t> by_role;  ///< by tensor_role_of
  std::string source;                          ///< "safetensors headers" or "model.safetensors.index.json total_size"
};

/// The checkpoint in `dir`: the headers of its *.safetensors files, or, when
/// only model.safetensors.index.json is there, its metadata.total_size.
/// Nothing when the folder holds neither. Throws input_error naming the file
/// when a header is not what its length says (longer than the file, not a
/// JSON object, a byte range outside the file or not dtype x shape bytes).
std::optional<checkpoint_files> read_checkpoint_files(const std::string& dir, std::int64_t decoder_layers = 0);

/// The role a checkpoint tensor name has in gpucal's weight breakdown (the
/// names of tensor_role_name); `decoder_layers` > 0 marks layers numbered
/// from it on as MTP layers. Quantization scales go with their weight.
std::string tensor_role_of(std::string_view name, std::int64_t decoder_layers = 0);

}  // namespace gpucal::model
