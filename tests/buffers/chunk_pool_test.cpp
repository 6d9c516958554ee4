#include "buffers/chunk_pool.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace flowrelay::buffers {
namespace {

TEST(ChunkPool, TakeAndReleaseTrackLiveAndHighWater) {
  Pool pool;
  std::vector<Storage*> taken;
  for (int i = 0; i < 10; ++i) taken.push_back(pool.take(SizeClass::small));
  for (Storage* s : taken) {
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->capacity, kSmallChunk);
  }
  EXPECT_EQ(pool.stats().classes[0].live, 10);
  for (Storage* s : taken) pool.release(s);
  const auto st = pool.stats().classes[0];
  EXPECT_EQ(st.live, 0);
  EXPECT_EQ(st.high_water, 10);
  EXPECT_EQ(st.slabs, 1);
}

TEST(ChunkPool, ReleasedChunkIsReusedWithoutNewSlab) {
  Pool pool;
  Storage* a = pool.take(SizeClass::large);
  pool.release(a);
  Storage* b = pool.take(SizeClass::large);
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.stats().classes[1].slabs, 1);
  pool.release(b);
}

TEST(ChunkPool, GrowsBySlabsWhenExhausted) {
  Pool pool(1 << 20);
  std::vector<Storage*> taken;
  for (int i = 0; i < 40; ++i) taken.push_back(pool.take(SizeClass::large));  // 16 per 1 MiB slab
  EXPECT_EQ(pool.stats().classes[1].slabs, 3);
  // Every chunk is distinct, page aligned, and writable end to end.
  for (Storage* s : taken) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(s->data) % 4096, 0u);
    s->data[0] = std::byte{1};
    s->data[kLargeChunk - 1] = std::byte{2};
  }
  for (Storage* s : taken) pool.release(s);
  EXPECT_EQ(pool.stats().classes[1].live, 0);
}

TEST(ChunkPool, ChunkFreedOnAnotherThreadReturnsToOwner) {
  Pool pool;
  std::vector<Storage*> taken;
  for (int i = 0; i < 64; ++i) taken.push_back(pool.take(SizeClass::small));  // the whole first slab
  ASSERT_EQ(pool.stats().classes[0].slabs, 1);
  ASSERT_EQ(pool.stats().classes[0].free, 0);

  std::thread other([&] {
    for (Storage* s : taken) pool.release(s);
  });
  other.join();
  EXPECT_EQ(pool.stats().classes[0].live, 0);

  // The owner picks them up from the remote stack instead of carving a new slab.
  Storage* again = pool.take(SizeClass::small);
  EXPECT_EQ(pool.stats().classes[0].slabs, 1);
  EXPECT_NE(std::find(taken.begin(), taken.end(), again), taken.end());
  pool.release(again);
}

}  // namespace
}  // namespace flowrelay::buffers
