// Error types shared by the model library and the CLI. An input_error is the
// user's to fix (bad flag, unknown name, malformed config): the CLI prints its
// message on one line and exits with code 2.
#pragma once

#include <stdexcept>
#include <string>

namespace gpucal {

/// Bad user input. The message names the flag or field, the value seen and
/// what is allowed.
class input_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace gpucal
