// nvml (see nvml.hpp). The few NVML declarations needed are written out
// here from NVML's documented C API; no NVML header is required.
#include "nvml.hpp"

#include <dlfcn.h>

namespace gpucal::calibrate {

namespace {

using nvml_return = int;  // nvmlReturn_t; 0 = NVML_SUCCESS
using nvml_device = void*;
constexpr int clock_sm = 1, clock_mem = 2;  // nvmlClockType_t: NVML_CLOCK_SM, NVML_CLOCK_MEM
constexpr int temperature_gpu = 0;          // NVML_TEMPERATURE_GPU
constexpr int ecc_uncorrected = 1, ecc_volatile = 0;  // NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC
struct nvml_memory {  // nvmlMemory_t
  unsigned long long total, free, used;
};
// nvmlClocksEventReasons (nvml.h): SW power cap 0x4; HW slowdown 0x8, SW
// thermal 0x20, HW thermal 0x40, HW power brake 0x80.
constexpr std::uint64_t power_cap_reason = 0x4ull;
constexpr std::uint64_t slowdown_reasons = 0x8ull | 0x20ull | 0x40ull | 0x80ull;

}  // namespace

struct nvml::api {
  nvml_return (*init)() = nullptr;
  nvml_return (*shutdown)() = nullptr;
  nvml_return (*by_pci)(const char*, nvml_device*) = nullptr;
  nvml_return (*clock)(nvml_device, int, unsigned*) = nullptr;
  nvml_return (*max_clock)(nvml_device, int, unsigned*) = nullptr;
  nvml_return (*default_clock)(nvml_device, int, unsigned*) = nullptr;
  nvml_return (*power_limit)(nvml_device, unsigned*) = nullptr;
  nvml_return (*temperature)(nvml_device, int, unsigned*) = nullptr;
  nvml_return (*reasons)(nvml_device, unsigned long long*) = nullptr;
  nvml_return (*driver)(char*, unsigned) = nullptr;
  nvml_return (*memory)(nvml_device, nvml_memory*) = nullptr;
  nvml_return (*power)(nvml_device, unsigned*) = nullptr;
  nvml_return (*ecc)(nvml_device, int, int, unsigned long long*) = nullptr;
};

bool gpu_clocks::throttled() const { return throttle_reasons && (*throttle_reasons & slowdown_reasons) != 0; }

bool gpu_clocks::power_capped() const { return throttle_reasons && (*throttle_reasons & power_cap_reason) != 0; }

nvml::nvml(const std::string& pci_bus_id) : api_(std::make_unique<api>()) {
  library_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!library_) {
    why_ = "libnvidia-ml.so.1 not loadable";
    return;
  }
  const auto sym = [this](const char* name) { return dlsym(library_, name); };
  api_->init = reinterpret_cast<decltype(api_->init)>(sym("nvmlInit_v2"));
  api_->shutdown = reinterpret_cast<decltype(api_->shutdown)>(sym("nvmlShutdown"));
  api_->by_pci = reinterpret_cast<decltype(api_->by_pci)>(sym("nvmlDeviceGetHandleByPciBusId_v2"));
  api_->clock = reinterpret_cast<decltype(api_->clock)>(sym("nvmlDeviceGetClockInfo"));
  api_->max_clock = reinterpret_cast<decltype(api_->max_clock)>(sym("nvmlDeviceGetMaxClockInfo"));
  api_->default_clock = reinterpret_cast<decltype(api_->default_clock)>(sym("nvmlDeviceGetDefaultApplicationsClock"));
  api_->power_limit = reinterpret_cast<decltype(api_->power_limit)>(sym("nvmlDeviceGetPowerManagementLimit"));
  api_->temperature = reinterpret_cast<decltype(api_->temperature)>(sym("nvmlDeviceGetTemperature"));
  api_->reasons = reinterpret_cast<decltype(api_->reasons)>(sym("nvmlDeviceGetCurrentClocksEventReasons"));
  if (!api_->reasons)
    api_->reasons = reinterpret_cast<decltype(api_->reasons)>(sym("nvmlDeviceGetCurrentClocksThrottleReasons"));
  api_->driver = reinterpret_cast<decltype(api_->driver)>(sym("nvmlSystemGetDriverVersion"));
  api_->memory = reinterpret_cast<decltype(api_->memory)>(sym("nvmlDeviceGetMemoryInfo"));
  api_->power = reinterpret_cast<decltype(api_->power)>(sym("nvmlDeviceGetPowerUsage"));
  api_->ecc = reinterpret_cast<decltype(api_->ecc)>(sym("nvmlDeviceGetTotalEccErrors"));
  if (!api_->init || !api_->by_pci || api_->init() != 0) {
    why_ = "nvmlInit failed";
    return;
  }
  nvml_device dev = nullptr;
  if (api_->by_pci(pci_bus_id.c_str(), &dev) != 0) {
    why_ = "NVML does not know PCI bus id " + pci_bus_id;
    return;
  }
  device_ = dev;
}

nvml::~nvml() {
  if (device_ && api_->shutdown) api_->shutdown();
  if (library_) dlclose(library_);
}

std::string nvml::driver_version() const {
  char buf[96] = {};
  if (!api_->driver || api_->driver(buf, sizeof buf) != 0) return "";
  return buf;
}

gpu_clocks nvml::read() const {
  gpu_clocks c;
  if (!device_) return c;
  unsigned v = 0;
  if (api_->clock && api_->clock(device_, clock_sm, &v) == 0) c.sm_mhz = v;
  if (api_->clock && api_->clock(device_, clock_mem, &v) == 0) c.mem_mhz = v;
  if (api_->max_clock && api_->max_clock(device_, clock_sm, &v) == 0) c.sm_max_mhz = v;
  if (api_->default_clock && api_->default_clock(device_, clock_sm, &v) == 0) c.sm_default_mhz = v;
  if (api_->power_limit && api_->power_limit(device_, &v) == 0) c.power_limit_w = v / 1000;
  if (api_->temperature && api_->temperature(device_, temperature_gpu, &v) == 0) c.temperature_c = v;
  unsigned long long r = 0;
  if (api_->reasons && api_->reasons(device_, &r) == 0) c.throttle_reasons = r;
  return c;
}

std::optional<std::uint64_t> nvml::memory_used_bytes() const {
  nvml_memory m{};
  if (!device_ || !api_->memory || api_->memory(device_, &m) != 0) return std::nullopt;
  return m.used;
}

std::optional<double> nvml::power_w() const {
  unsigned mw = 0;
  if (!device_ || !api_->power || api_->power(device_, &mw) != 0) return std::nullopt;
  return mw / 1000.0;
}

std::optional<std::uint64_t> nvml::uncorrected_ecc_errors() const {
  unsigned long long n = 0;
  if (!device_ || !api_->ecc || api_->ecc(device_, ecc_uncorrected, ecc_volatile, &n) != 0) return std::nullopt;
  return n;
}

}  // namespace gpucal::calibrate
