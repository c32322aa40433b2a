// JSON (de)serialization of the coefficients object, shared by the
// coefficients parser and the calibration-file reader and writer.
#pragma once

#include "detail/json_fields.hpp"
#include "gpucal/model/coefficients.hpp"

namespace gpucal::model::detail {

/// Reads a coefficients object ({usable_memory_bytes?, memory, throughput}).
coefficients read_coefficients(const field_reader& r, std::string source);
/// Writes the same shape; throws std::invalid_argument on a non-finite number.
json coefficients_json(const coefficients& c);

}  // namespace gpucal::model::detail
