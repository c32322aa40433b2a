// Arena arithmetic and the tracking allocator's accounting (see the header).
#include "gpucal/engine/tracking_allocator.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <new>
#include <stdexcept>

namespace gpucal::engine {

void* host_backend::allocate(std::size_t bytes) {
  const std::size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded == 0 ? 256 : rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void host_backend::release(void* p) noexcept { std::free(p); }

arena::arena(std::size_t capacity, std::size_t alignment) : capacity_(capacity), alignment_(alignment) {
  if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
    throw std::invalid_argument(fmt::format("arena: alignment {} must be a power of two", alignment_));
  capacity_ = capacity / alignment_ * alignment_;
  if (capacity_ > 0) free_.emplace(0, capacity_);
}

std::size_t arena::rounded(std::size_t bytes) const {
  return bytes == 0 ? alignment_ : (bytes + alignment_ - 1) / alignment_ * alignment_;
}

std::int64_t arena::allocate(std::size_t bytes) {
  const std::size_t need = rounded(bytes);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < need) continue;
    const std::size_t offset = it->first;
    const std::size_t rest = it->second - need;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + need, rest);
    used_.emplace(offset, need);
    live_ += need;
    if (live_ > peak_live_) peak_live_ = live_;
    if (offset + need > high_water_) high_water_ = offset + need;
    return static_cast<std::int64_t>(offset);
  }
  return -1;
}

void arena::release(std::int64_t offset) {
  const auto it = used_.find(static_cast<std::size_t>(offset));
  if (offset < 0 || it == used_.end())
    throw std::invalid_argument(fmt::format("arena: no block starts at offset {}", offset));
  std::size_t start = it->first, size = it->second;
  used_.erase(it);
  live_ -= size;
  // Coalesce with the free neighbours on both sides.
  auto next = free_.lower_bound(start);
  if (next != free_.end() && start + size == next->first) {
    size += next->second;
    next = free_.erase(next);
  }
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second == start) {
      start = prev->first;
      size += prev->second;
      free_.erase(prev);
    }
  }
  free_.emplace(start, size);
}

void arena::reset_peaks() {
  peak_live_ = live_;
  high_water_ = used_.empty() ? 0 : std::prev(used_.end())->first + std::prev(used_.end())->second;
}

std::string_view memory_use_name(memory_use u) {
  switch (u) {
    case memory_use::weights: return "weights";
    case memory_use::kv_cache: return "kv_cache";
    case memory_use::inputs: return "inputs";
    case memory_use::activations: return "activations";
  }
  return "?";
}

tracking_allocator::~tracking_allocator() {
  // Owners should be gone; whatever is left is returned so nothing leaks.
  for (const auto& [p, d] : direct_) backend_->release(const_cast<void*>(p));
  if (arena_base_) backend_->release(arena_base_);
}

void tracking_allocator::count(memory_use u, std::size_t bytes, bool add) {
  use_bytes& b = uses_[static_cast<std::size_t>(u)];
  if (add) {
    b.live += bytes;
    if (b.live > b.peak) b.peak = b.live;
    reserved_ += bytes;
    if (reserved_ > peak_reserved_) peak_reserved_ = reserved_;
  } else {
    b.live -= bytes;
    reserved_ -= bytes;
  }
}

void* tracking_allocator::allocate(std::size_t bytes, memory_use use) {
  if (use == memory_use::activations)
    throw std::logic_error("tracking_allocator: activations come from the arena (allocate_activation)");
  void* p = backend_->allocate(bytes);
  direct_.emplace(p, direct{bytes, use});
  count(use, bytes, true);
  return p;
}

void tracking_allocator::release(void* p) noexcept {
  if (!p) return;
  if (const auto it = direct_.find(p); it != direct_.end()) {
    count(it->second.use, it->second.bytes, false);
    direct_.erase(it);
    backend_->release(p);
    return;
  }
  if (arena_ && p >= arena_base_ && p < arena_base_ + arena_->capacity()) {
    // A stray pointer here is a programming error; release() cannot throw, so it terminates.
    arena_->release(static_cast<std::byte*>(p) - arena_base_);
    return;
  }
  std::terminate();
}

void tracking_allocator::reserve_arena(std::size_t bytes, std::size_t alignment) {
  if (arena_) throw std::logic_error("tracking_allocator: an activation arena is already reserved");
  arena a(bytes, alignment);
  arena_base_ = static_cast<std::byte*>(backend_->allocate(a.capacity()));
  arena_.emplace(std::move(a));
  count(memory_use::activations, arena_->capacity(), true);
}

void tracking_allocator::release_arena() {
  if (!arena_) return;
  if (arena_->live_blocks() > 0)
    throw std::logic_error(fmt::format("tracking_allocator: {} activation blocks are still live", arena_->live_blocks()));
  count(memory_use::activations, arena_->capacity(), false);
  backend_->release(arena_base_);
  arena_base_ = nullptr;
  arena_.reset();
}

void* tracking_allocator::allocate_activation(std::size_t bytes) {
  if (!arena_) throw std::logic_error("tracking_allocator: no activation arena reserved");
  const std::int64_t off = arena_->allocate(bytes);
  if (off < 0)
    throw std::runtime_error(fmt::format(
        "activation arena full: {} bytes requested with {} of {} bytes live (high-water {} bytes)", bytes,
        arena_->live_bytes(), arena_->capacity(), arena_->high_water_bytes()));
  return arena_base_ + off;
}

}  // namespace gpucal::engine
