// gpucal_synthetic_bench FILE: writes the synthetic gpucal_bench JSON of the
// tests (made-up times that follow the GEMM model, never a measurement) for
// the device-run rehearsal (tests/gpu_run_rehearsal.sh).
#include <fstream>
#include <iostream>

#include "synthetic_bench.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: gpucal_synthetic_bench FILE\n";
    return 2;
  }
  std::ofstream(argv[1]) << gpucal::test::bench_json(1.0);
  return 0;
}
