// gpucal: entry point; everything else lives in cli_app.cpp.
#include <iostream>

#include "cli_app.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return gpucal::cli::run_cli(args, std::cout, std::cerr);
}
