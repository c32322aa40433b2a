// gpucal_device_info: prints the first CUDA device's identity as JSON, or a
// one-line reason and exit code 3 when there is none. scripts/run uses it to
// decide whether calibration can run on this machine.
#include <cstdio>
#include <string>

#include "gpucal/kernels/device_query.hpp"

int main() {
  try {
    std::string reason;
    const auto dev = gpucal::kernels::first_device(&reason);
    if (!dev) {
      std::fprintf(stderr, "gpucal_device_info: %s\n", reason.c_str());
      return 3;
    }
    std::printf(
        "{\"name\": \"%s\", \"compute_capability\": \"%d.%d\", \"sm_count\": %d, \"total_memory_bytes\": %lld, "
        "\"free_memory_bytes\": %lld, \"driver_version\": %d, \"runtime_version\": %d}\n",
        dev->name.c_str(), dev->cc_major, dev->cc_minor, dev->sm_count, static_cast<long long>(dev->total_memory_bytes),
        static_cast<long long>(dev->free_memory_bytes), dev->driver_version, dev->runtime_version);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpucal_device_info: %s\n", e.what());
    return 1;
  }
}
