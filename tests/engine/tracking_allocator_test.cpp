// The tracking allocator's arithmetic on a host backend: arena first fit,
// coalescing, live/peak/high-water bytes, and accounting by use.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gpucal/engine/tracking_allocator.hpp"

namespace {

using gpucal::engine::arena;
using gpucal::engine::device_block;
using gpucal::engine::host_backend;
using gpucal::engine::memory_use;
using gpucal::engine::tracking_allocator;

TEST(Arena, FirstFitRoundsAndCoalesces) {
  arena a(10 * 512);
  EXPECT_EQ(a.allocate(1), 0);         // one 512-byte unit
  EXPECT_EQ(a.allocate(513), 512);     // two units
  EXPECT_EQ(a.allocate(512), 1536);    // one unit
  EXPECT_EQ(a.live_bytes(), 4u * 512);
  a.release(512);                      // hole of two units at 512
  EXPECT_EQ(a.allocate(600), 512);     // first fit takes the hole
  a.release(512);
  a.release(0);                        // coalesces with the hole: 0..1536 free
  EXPECT_EQ(a.allocate(3 * 512), 0);
  EXPECT_EQ(a.peak_live_bytes(), 4u * 512);
  EXPECT_EQ(a.high_water_bytes(), 4u * 512);
  EXPECT_EQ(a.allocate(7 * 512), -1);  // 6 units free at most
  EXPECT_EQ(a.allocate(6 * 512), 4 * 512);
  EXPECT_THROW(a.release(100), std::invalid_argument);
}

TEST(Arena, RandomSequenceKeepsLiveBytesAndNeverOverlaps) {
  constexpr std::size_t cap = 1 << 20;
  arena a(cap, 256);
  std::mt19937_64 rng(7);
  std::vector<std::pair<std::int64_t, std::size_t>> live;  // offset, rounded size
  std::size_t live_bytes = 0, peak = 0, high = 0;
  for (int i = 0; i < 20000; ++i) {
    if (live.empty() || rng() % 3 != 0) {
      const std::size_t bytes = 1 + rng() % 20000;
      const std::int64_t off = a.allocate(bytes);
      if (off < 0) continue;
      const std::size_t r = a.rounded(bytes);
      for (const auto& [o, s] : live)
        ASSERT_TRUE(off + static_cast<std::int64_t>(r) <= o || o + static_cast<std::int64_t>(s) <= off) << "overlap";
      live.emplace_back(off, r);
      live_bytes += r;
      peak = std::max(peak, live_bytes);
      high = std::max(high, static_cast<std::size_t>(off) + r);
    } else {
      const std::size_t k = rng() % live.size();
      a.release(live[k].first);
      live_bytes -= live[k].second;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(k));
    }
    ASSERT_EQ(a.live_bytes(), live_bytes);
  }
  EXPECT_EQ(a.peak_live_bytes(), peak);
  EXPECT_EQ(a.high_water_bytes(), high);
  for (const auto& [o, s] : live) a.release(o);
  EXPECT_EQ(a.live_bytes(), 0u);
  EXPECT_EQ(a.allocate(cap), 0);  // everything coalesced back into one range
}

TEST(TrackingAllocator, CountsDirectAllocationsByUse) {
  host_backend backend;
  tracking_allocator t(backend);
  {
    device_block w(t, 1000, memory_use::weights);
    device_block k(t, 4096, memory_use::kv_cache);
    EXPECT_EQ(t.by_use(memory_use::weights).live, 1000u);
    EXPECT_EQ(t.by_use(memory_use::kv_cache).live, 4096u);
    EXPECT_EQ(t.reserved_bytes(), 5096u);
    device_block moved = std::move(w);
    EXPECT_EQ(moved.bytes(), 1000u);
    EXPECT_EQ(w.data(), nullptr);
  }
  EXPECT_EQ(t.reserved_bytes(), 0u);
  EXPECT_EQ(t.peak_reserved_bytes(), 5096u);
  EXPECT_EQ(t.by_use(memory_use::weights).peak, 1000u);
  EXPECT_THROW(t.allocate(10, memory_use::activations), std::logic_error);
}

TEST(TrackingAllocator, ActivationsComeFromTheArena) {
  host_backend backend;
  tracking_allocator t(backend);
  EXPECT_THROW(device_block(t, 10, memory_use::activations), std::logic_error);
  t.reserve_arena(8 * 512);
  EXPECT_EQ(t.by_use(memory_use::activations).live, 8u * 512);
  {
    device_block a(t, 512 * 3, memory_use::activations);
    device_block b(t, 10, memory_use::activations);
    EXPECT_EQ(t.activation_arena()->live_bytes(), 4u * 512);
    EXPECT_EQ(static_cast<std::byte*>(b.data()) - static_cast<std::byte*>(a.data()), 3 * 512);
    try {
      device_block c(t, 5 * 512, memory_use::activations);
      FAIL() << "expected the arena to be full";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("2560 bytes requested"), std::string::npos) << e.what();
    }
    EXPECT_THROW(t.release_arena(), std::logic_error);
  }
  EXPECT_EQ(t.activation_arena()->peak_live_bytes(), 4u * 512);
  t.release_arena();
  EXPECT_EQ(t.reserved_bytes(), 0u);
}

}  // namespace
