// Every byte of device memory the reference engine uses goes through one
// tracking_allocator, so weights, the KV pool, persistent inputs and the
// activation peak are known to the byte.
//
// Two kinds of allocation:
// - direct: one backend allocation per request (weights, KV pool, step
//   inputs), counted by use;
// - activations: sub-allocated from one arena (a single backend allocation)
//   with address-ordered first fit and coalescing, so a step's temporaries
//   never call cudaMalloc/cudaFree. The arena tracks live bytes, their peak
//   (what the memory model's activation term predicts, like
//   torch.cuda.max_memory_allocated) and its high-water offset (what must be
//   reserved for a forward to fit, fragmentation included).
//
// The backend is cudaMalloc/cudaFree on a GPU and a host heap in tests.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

namespace gpucal::engine {

/// Raw memory source.
class memory_backend {
public:
  virtual ~memory_backend() = default;
  /// Returns memory of at least `bytes`, or throws (naming the size) when there is none.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void release(void* p) noexcept = 0;
};

/// Host heap backend for tests: 256-byte aligned, like cudaMalloc.
class host_backend final : public memory_backend {
public:
  void* allocate(std::size_t bytes) override;
  void release(void* p) noexcept override;
};

/// Offsets inside one region of `capacity` bytes: address-ordered first fit,
/// sizes rounded up to `alignment`, neighbours coalesced on release.
class arena {
public:
  explicit arena(std::size_t capacity, std::size_t alignment = 512);

  /// Offset of a new block, or -1 when no free range holds `bytes`.
  std::int64_t allocate(std::size_t bytes);
  /// Frees the block at `offset`; throws std::invalid_argument if none starts there.
  void release(std::int64_t offset);

  std::size_t capacity() const { return capacity_; }
  std::size_t alignment() const { return alignment_; }
  std::size_t rounded(std::size_t bytes) const;
  std::size_t live_bytes() const { return live_; }
  std::size_t peak_live_bytes() const { return peak_live_; }
  /// Largest end offset ever used: the bytes a region must have for the same sequence to fit.
  std::size_t high_water_bytes() const { return high_water_; }
  std::size_t live_blocks() const { return used_.size(); }
  /// Peaks := current values (the live set stays).
  void reset_peaks();

private:
  std::size_t capacity_, alignment_;
  std::map<std::size_t, std::size_t> free_;  // offset -> size, address order
  std::map<std::size_t, std::size_t> used_;  // offset -> size
  std::size_t live_ = 0, peak_live_ = 0, high_water_ = 0;
};

enum class memory_use { weights, kv_cache, inputs, activations };
inline constexpr std::size_t memory_use_count = 4;
std::string_view memory_use_name(memory_use u);

struct use_bytes {
  std::size_t live = 0;
  std::size_t peak = 0;
};

class tracking_allocator {
public:
  explicit tracking_allocator(memory_backend& backend) : backend_(&backend) {}
  ~tracking_allocator();
  tracking_allocator(const tracking_allocator&) = delete;
  tracking_allocator& operator=(const tracking_allocator&) = delete;

  /// A direct allocation (any use but activations) of exactly `bytes`.
  void* allocate(std::size_t bytes, memory_use use);
  /// Frees a direct allocation or an activation block.
  void release(void* p) noexcept;

  /// Reserves the activation arena (no arena may exist yet).
  void reserve_arena(std::size_t bytes, std::size_t alignment = 512);
  /// Returns the arena to the backend; throws std::logic_error while blocks are live in it.
  void release_arena();
  /// A block of the arena; throws std::runtime_error naming the request, the
  /// live bytes and the capacity when it does not fit.
  void* allocate_activation(std::size_t bytes);
  const arena* activation_arena() const { return arena_ ? &*arena_ : nullptr; }

  /// Bytes by use: direct allocations at their size; activations as the
  /// arena's reserved capacity (live/peak of the blocks inside: activation_arena()).
  use_bytes by_use(memory_use u) const { return uses_[static_cast<std::size_t>(u)]; }
  /// Bytes held from the backend now, and their peak.
  std::size_t reserved_bytes() const { return reserved_; }
  std::size_t peak_reserved_bytes() const { return peak_reserved_; }

private:
  struct direct {
    std::size_t bytes;
    memory_use use;
  };
  void count(memory_use u, std::size_t bytes, bool add);

  memory_backend* backend_;
  std::map<const void*, direct> direct_;
  std::array<use_bytes, memory_use_count> uses_{};
  std::size_t reserved_ = 0, peak_reserved_ = 0;
  std::optional<arena> arena_;
  std::byte* arena_base_ = nullptr;
};

/// Owner of one allocation of a tracking_allocator (move-only): a direct one,
/// or, with memory_use::activations, a block of the arena.
class device_block {
public:
  device_block() = default;
  device_block(tracking_allocator& a, std::size_t bytes, memory_use use)
      : alloc_(&a), bytes_(bytes),
        data_(use == memory_use::activations ? a.allocate_activation(bytes) : a.allocate(bytes, use)) {}
  ~device_block() { reset(); }
  device_block(const device_block&) = delete;
  device_block& operator=(const device_block&) = delete;
  device_block(device_block&& o) noexcept
      : alloc_(std::exchange(o.alloc_, nullptr)), bytes_(std::exchange(o.bytes_, 0)), data_(std::exchange(o.data_, nullptr)) {}
  device_block& operator=(device_block&& o) noexcept {
    if (this != &o) {
      reset();
      alloc_ = std::exchange(o.alloc_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
      data_ = std::exchange(o.data_, nullptr);
    }
    return *this;
  }
  void reset() noexcept {
    if (data_) alloc_->release(data_);
    data_ = nullptr;
    bytes_ = 0;
  }

  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }

private:
  tracking_allocator* alloc_ = nullptr;
  std::size_t bytes_ = 0;
  void* data_ = nullptr;
};

}  // namespace gpucal::engine
