#include "buffers/buffer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstring>
#include <thread>

namespace flowrelay::buffers {
namespace {

TEST(Buffer, SliceSharesBytesAndKeepsChunkAlive) {
  Pool pool;
  Buffer whole = Buffer::take(pool, SizeClass::small);
  ASSERT_TRUE(whole);
  std::memcpy(whole.mutable_data(), "hello world", 11);
  Buffer world = whole.slice(6, 5);
  EXPECT_EQ(world.data(), whole.data() + 6);  // same memory, no copy
  EXPECT_EQ(std::memcmp(world.data(), "world", 5), 0);
  EXPECT_EQ(whole.use_count(), 2u);

  whole.reset();
  EXPECT_EQ(pool.stats().classes[0].live, 1);  // the slice still holds the chunk
  world.reset();
  EXPECT_EQ(pool.stats().classes[0].live, 0);
}

struct Foreign {
  std::array<std::byte, 100> bytes{};
  int released = 0;
  std::byte* seen_data = nullptr;
  std::size_t seen_size = 0;
};

void release_foreign(void* ctx, std::byte* data, std::size_t size) noexcept {
  auto* f = static_cast<Foreign*>(ctx);
  ++f->released;
  f->seen_data = data;
  f->seen_size = size;
}

TEST(Buffer, ExternalOwnerReleasedExactlyOnceWhenLastViewDrops) {
  Pool pool;
  Foreign foreign;
  {
    Buffer b = Buffer::wrap(pool, foreign.bytes.data(), foreign.bytes.size(), release_foreign, &foreign);
    EXPECT_EQ(b.data(), foreign.bytes.data());  // wrapped, not copied
    Buffer copy = b;
    Buffer head = b.slice(0, 10);
    Buffer tail = b.slice(90, 10);
    b.reset();
    copy.reset();
    head.reset();
    EXPECT_EQ(foreign.released, 0);  // `tail` still views it
    Buffer moved = std::move(tail);
    EXPECT_EQ(foreign.released, 0);
  }
  EXPECT_EQ(foreign.released, 1);
  EXPECT_EQ(foreign.seen_data, foreign.bytes.data());
  EXPECT_EQ(foreign.seen_size, foreign.bytes.size());
  EXPECT_EQ(pool.stats().classes[std::size_t(SizeClass::header)].live, 0);
}

TEST(Buffer, LastViewDroppedOnAnotherThreadStillReleasesOnce) {
  Pool pool;
  Foreign foreign;
  Buffer b = Buffer::wrap(pool, foreign.bytes.data(), foreign.bytes.size(), release_foreign, &foreign);
  std::thread t([v = std::move(b)]() mutable { v.reset(); });
  t.join();
  EXPECT_EQ(foreign.released, 1);
}

}  // namespace
}  // namespace flowrelay::buffers
