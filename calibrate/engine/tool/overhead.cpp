// Framework-overhead probes (see overhead.hpp).
#include "overhead.hpp"
#include "probe_step.hpp"

#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>

#include "../../nvml.hpp"
#include "gpucal/kernels/cuda_check.hpp"
#include "gpucal/kernels/device_query.hpp"
#include "gpucal/kernels/lt_gemm.hpp"

namespace gpucal::engine_tool {

namespace {

double free_bytes() { return static_cast<double>(gpucal::kernels::free_device_bytes()); }

model::measurement bytes_measurement(const std::string& name, std::vector<double> samples) {
  model::measurement m;
  m.name = name;
  m.unit = "bytes";
  m.labels = {{"kind", "overhead"}};
  m.samples = std::move(samples);
  return m;
}

// The NCCL entry points used, resolved from libnccl.so.2 at run time.
struct nccl_api {
  void* lib = nullptr;
  ncclResult_t (*get_unique_id)(ncclUniqueId*) = nullptr;
  ncclResult_t (*init_rank)(ncclComm_t*, int, ncclUniqueId, int) = nullptr;
  ncclResult_t (*init_all)(ncclComm_t*, int, const int*) = nullptr;
  ncclResult_t (*destroy)(ncclComm_t) = nullptr;
  ncclResult_t (*all_reduce)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*all_gather)(const void*, void*, size_t, ncclDataType_t, ncclComm_t, cudaStream_t) = nullptr;
  ncclResult_t (*group_start)() = nullptr;
  ncclResult_t (*group_end)() = nullptr;
  const char* (*error_string)(ncclResult_t) = nullptr;

  nccl_api() {
    lib = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    const auto sym = [this](auto& f, const char* name) { f = reinterpret_cast<std::remove_reference_t<decltype(f)>>(dlsym(lib, name)); };
    sym(get_unique_id, "ncclGetUniqueId");
    sym(init_rank, "ncclCommInitRank");
    sym(init_all, "ncclCommInitAll");
    sym(destroy, "ncclCommDestroy");
    sym(all_reduce, "ncclAllReduce");
    sym(all_gather, "ncclAllGather");
    sym(group_start, "ncclGroupStart");
    sym(group_end, "ncclGroupEnd");
    sym(error_string, "ncclGetErrorString");
  }
  ~nccl_api() {
    if (lib) dlclose(lib);
  }
  bool ok() const {
    return lib && get_unique_id && init_rank && init_all && destroy && all_reduce && all_gather && group_start && group_end;
  }
  void check(ncclResult_t r, const char* what) const {
    if (r != ncclSuccess)
      throw std::runtime_error(fmt::format("{}: {}", what, error_string ? error_string(r) : std::to_string(static_cast<int>(r))));
  }
};

double median(std::vector<double> v) { return model::median_of(std::move(v)); }

}  // namespace

std::optional<double> memory_used_before_cuda(const calibrate::nvml& n) {
  const auto used = n.memory_used_bytes();
  return used ? std::optional<double>(static_cast<double>(*used)) : std::nullopt;
}

overhead_result measure_overheads(const calibrate::nvml& n, std::optional<double> used_before, bool quick,
                                  const std::function<void(const std::string&)>& progress) {
  overhead_result r;
  constexpr double mib = 1024.0 * 1024.0;
  const int repeats = quick ? 2 : 4;

  try_probe("CUDA context", r.skipped, progress, [&] {
    GPUCAL_CUDA_CHECK(cudaFree(nullptr));  // the context, if no call made it before
    const auto after = n.memory_used_bytes();
    if (!used_before || !after) throw std::runtime_error("NVML reports no device memory use");
    const double delta = static_cast<double>(*after) - *used_before;
    // A context takes hundreds of MiB; a smaller delta means one existed before the probe.
    if (delta < 16 * mib || delta > 16384 * mib)
      throw std::runtime_error(fmt::format("a delta of {:.1f} MiB is not a context's size (did a CUDA call come first?)", delta / mib));
    r.context_bytes = delta;
    r.measurements.push_back(bytes_measurement("overhead/cuda_context", {delta}));
    progress(fmt::format("CUDA context: {:.1f} MiB (NVML used memory before and after the first CUDA call)", delta / mib));
  });

  try_probe("cuBLASLt handle and workspace", r.skipped, progress, [&] {
    std::vector<double> s;
    for (int i = 0; i < repeats; ++i) {
      const double before = free_bytes();
      auto ctx = std::make_unique<kernels::lt_context>();
      s.push_back(before - free_bytes());
    }
    r.cublaslt_bytes = median(s);
    r.measurements.push_back(bytes_measurement("overhead/cublaslt_handle_and_workspace", s));
    progress(fmt::format("cuBLASLt handle + 64 MiB workspace: {:.1f} MiB (median of {})", *r.cublaslt_bytes / mib, s.size()));
  });

  try_probe("allocation granularity", r.skipped, progress, [&] {
    std::vector<double> s;
    for (int i = 0; i < repeats; ++i) {
      const double before = free_bytes();
      void* p = nullptr;
      GPUCAL_CUDA_CHECK(cudaMalloc(&p, 1));
      s.push_back(before - free_bytes());
      GPUCAL_CUDA_CHECK(cudaFree(p));
    }
    r.grain_bytes = median(s);
    r.measurements.push_back(bytes_measurement("overhead/allocation_granularity", s));
    progress(fmt::format("a 1-byte cudaMalloc takes {:.2f} MiB of free memory", *r.grain_bytes / mib));
  });

  const nccl_api nccl;
  if (!nccl.ok()) {
    r.skipped.push_back("NCCL: libnccl.so.2 not loadable (or missing entry points)");
    progress("NCCL: not measured (libnccl.so.2 not loadable)");
    return r;
  }
  try_probe("NCCL one-rank communicator", r.skipped, progress, [&] {
    std::vector<double> s;
    for (int i = 0; i < repeats; ++i) {
      ncclUniqueId id;
      nccl.check(nccl.get_unique_id(&id), "ncclGetUniqueId");
      const double before = free_bytes();
      ncclComm_t comm = nullptr;
      nccl.check(nccl.init_rank(&comm, 1, id, 0), "ncclCommInitRank");
      s.push_back(before - free_bytes());
      nccl.check(nccl.destroy(comm), "ncclCommDestroy");
    }
    r.nccl_one_rank_bytes = median(s);
    r.measurements.push_back(bytes_measurement("overhead/nccl_one_rank_communicator", s));
    progress(fmt::format("NCCL one-rank communicator: {:.1f} MiB (no peer buffers: a floor for tp > 1)", *r.nccl_one_rank_bytes / mib));
  });

  int devices = 0;
  GPUCAL_CUDA_CHECK(cudaGetDeviceCount(&devices));
  if (devices < 2) {
    r.skipped.push_back("NCCL across GPUs and all-reduce sweeps: one GPU here");
    progress("NCCL across GPUs: not measured (one GPU here; run on a machine with two or more)");
    return r;
  }
  try_probe("NCCL across GPUs", r.skipped, progress, [&] {
    std::vector<int> list(static_cast<std::size_t>(devices));
    for (int d = 0; d < devices; ++d) list[static_cast<std::size_t>(d)] = d;
    std::vector<double> before(list.size());
    for (int d : list) {
      GPUCAL_CUDA_CHECK(cudaSetDevice(d));
      before[static_cast<std::size_t>(d)] = free_bytes();
    }
    std::vector<ncclComm_t> comms(list.size());
    nccl.check(nccl.init_all(comms.data(), devices, list.data()), "ncclCommInitAll");
    std::vector<double> per_gpu;
    for (int d : list) {
      GPUCAL_CUDA_CHECK(cudaSetDevice(d));
      per_gpu.push_back(before[static_cast<std::size_t>(d)] - free_bytes());
    }
    r.nccl_per_gpu_bytes = median(per_gpu);
    r.measurements.push_back(bytes_measurement(fmt::format("overhead/nccl_communicator_per_gpu/ranks={}", devices), per_gpu));
    progress(fmt::format("NCCL communicator over {} GPUs: {:.1f} MiB per GPU", devices, *r.nccl_per_gpu_bytes / mib));

    // All-reduce and all-gather of bf16 buffers, one process driving every GPU.
    std::vector<cudaStream_t> streams(list.size());
    std::vector<void*> send(list.size()), recv(list.size());
    const std::size_t max_bytes = quick ? (64u << 20) : (1u << 30);
    for (int d : list) {
      GPUCAL_CUDA_CHECK(cudaSetDevice(d));
      GPUCAL_CUDA_CHECK(cudaStreamCreateWithFlags(&streams[static_cast<std::size_t>(d)], cudaStreamNonBlocking));
      GPUCAL_CUDA_CHECK(cudaMalloc(&send[static_cast<std::size_t>(d)], max_bytes));
      GPUCAL_CUDA_CHECK(cudaMalloc(&recv[static_cast<std::size_t>(d)], max_bytes * static_cast<std::size_t>(devices)));
      GPUCAL_CUDA_CHECK(cudaMemset(send[static_cast<std::size_t>(d)], 1, max_bytes));
    }
    const auto collective = [&](bool reduce, std::size_t bytes) {
      nccl.check(nccl.group_start(), "ncclGroupStart");
      for (int d : list) {
        const auto i = static_cast<std::size_t>(d);
        if (reduce) nccl.check(nccl.all_reduce(send[i], recv[i], bytes / 2, ncclBfloat16, ncclSum, comms[i], streams[i]), "ncclAllReduce");
        else nccl.check(nccl.all_gather(send[i], recv[i], bytes / 2, ncclBfloat16, comms[i], streams[i]), "ncclAllGather");
      }
      nccl.check(nccl.group_end(), "ncclGroupEnd");
    };
    const auto sync_all = [&] {
      for (int d : list) {
        GPUCAL_CUDA_CHECK(cudaSetDevice(d));
        GPUCAL_CUDA_CHECK(cudaStreamSynchronize(streams[static_cast<std::size_t>(d)]));
      }
    };
    const double n_ranks = devices;
    std::vector<double> large_busbw;
    for (const bool reduce : {true, false})
      for (std::size_t bytes = 64 << 10; bytes <= max_bytes; bytes *= 4) {
        for (int w = 0; w < 3; ++w) collective(reduce, bytes);
        sync_all();
        std::vector<double> us;
        for (int it = 0; it < (quick ? 5 : 20); ++it) {
          const auto t0 = std::chrono::steady_clock::now();
          collective(reduce, bytes);
          sync_all();
          us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        }
        // Bus bandwidth as nccl-tests defines it: all-reduce 2 (n-1)/n x bytes / t; all-gather (n-1)/n x bytes x n / t.
        const double t = median(us);
        const double bus = (reduce ? 2 * (n_ranks - 1) / n_ranks * static_cast<double>(bytes)
                                   : (n_ranks - 1) * static_cast<double>(bytes)) / (t * 1e3);
        model::measurement m;
        m.name = fmt::format("collective/{}/ranks={}/bytes={}", reduce ? "all_reduce" : "all_gather", devices, bytes);
        m.unit = "us";
        m.labels = {{"kind", "collective"}};
        m.params = {{"bytes", static_cast<double>(bytes)}, {"ranks", n_ranks}, {"bus_gbps", bus}};
        m.samples = us;
        r.measurements.push_back(m);
        if (reduce && bytes == (64u << 10)) r.allreduce_latency_us = t;
        if (reduce && bytes >= (64u << 20)) large_busbw.push_back(bus);
        progress(fmt::format("{} {:.2f} MiB over {} GPUs: {:.1f} us median, bus {:.1f} GB/s", reduce ? "all-reduce" : "all-gather",
                             static_cast<double>(bytes) / mib, devices, t, bus));
      }
    if (!large_busbw.empty()) r.allreduce_bus_gbps = median(large_busbw);
    for (int d : list) {
      const auto i = static_cast<std::size_t>(d);
      GPUCAL_CUDA_CHECK(cudaSetDevice(d));
      GPUCAL_CUDA_CHECK(cudaFree(send[i]));
      GPUCAL_CUDA_CHECK(cudaFree(recv[i]));
      GPUCAL_CUDA_CHECK(cudaStreamDestroy(streams[i]));
      nccl.check(nccl.destroy(comms[i]), "ncclCommDestroy");
    }
    GPUCAL_CUDA_CHECK(cudaSetDevice(0));
  });
  return r;
}

}  // namespace gpucal::engine_tool
