// The gpucal command line as a function, so tests drive it in-process.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace gpucal::cli {

/// Runs `gpucal <args...>` (args without the program name). Returns the exit
/// code: 0 success, 1 failure, 2 bad usage or input (one line on `err`,
/// nothing on `out`).
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace gpucal::cli
