#include "buffers/chain.hpp"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <vector>

namespace flowrelay::buffers {
namespace {

Buffer filled(Pool& pool, std::size_t n, unsigned char seed) {
  Buffer b = Buffer::take(pool, SizeClass::small);
  for (std::size_t i = 0; i < n; ++i) b.mutable_data()[i] = std::byte((seed + i) & 0xff);
  b.truncate(n);
  return b;
}

TEST(Chain, ConsumeAcrossBuffersKeepsOrder) {
  Pool pool;
  Chain c;
  c.append(filled(pool, 100, 0));
  c.append(filled(pool, 50, 100));
  c.append(Buffer{});  // dropped
  EXPECT_EQ(c.size(), 150u);
  EXPECT_EQ(c.buffer_count(), 2u);
  c.consume(120);
  EXPECT_EQ(c.size(), 30u);
  EXPECT_EQ(c.buffer_count(), 1u);
  EXPECT_EQ(c.front().data()[0], std::byte(120));
  EXPECT_EQ(pool.stats().classes[0].live, 1);  // the first chunk went back
  c.clear();
  EXPECT_EQ(pool.stats().classes[0].live, 0);
}

TEST(Chain, MovedChainsKeepTheirBytesInOrderWhetherFewOrMany) {
  Pool pool;
  for (std::size_t n : {1u, 2u, 3u, 20u}) {  // within the inline slots, then on the heap ring
    Chain a;
    a.append(filled(pool, 10, 200));  // wrap the ring's head once
    a.consume(10);
    for (std::size_t i = 0; i < n; ++i) a.append(filled(pool, 10, static_cast<unsigned char>(i * 10)));
    Chain b(std::move(a));
    Chain c;
    c.append(filled(pool, 5, 0));
    c = std::move(b);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b.size(), 0u);
    ASSERT_EQ(c.size(), n * 10) << n << " buffers";
    for (std::size_t i = 0; i < n * 10; ++i) {
      const auto g = c.gather(1);
      ASSERT_EQ(g.count(), 1u);
      EXPECT_EQ(static_cast<const unsigned char*>(g.begin()->data())[0], static_cast<unsigned char>(i)) << n << " buffers";
      c.consume(1);
    }
    a.append(filled(pool, 3, 0));  // a moved-from chain is usable again
    EXPECT_EQ(a.size(), 3u);
  }
  EXPECT_EQ(pool.stats().classes[0].live, 0u);  // every chunk went back
}

TEST(Chain, GatherStopsAtIovLimitAndByteLimit) {
  Pool pool;
  Chain c;
  Buffer one = filled(pool, 10, 0);
  for (int i = 0; i < 200; ++i) c.append(one.slice(0, 10));  // slices share one chunk
  EXPECT_EQ(pool.stats().classes[0].live, 1);
  auto g = c.gather();
  EXPECT_EQ(g.count(), Chain::kMaxIov);
  EXPECT_EQ(g.bytes(), Chain::kMaxIov * 10);
  auto h = c.gather(25);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.bytes(), 25u);
}

// A chain far longer than the iovec limit goes through a real socket intact, in several writev calls.
TEST(Chain, ChainLongerThanIovLimitWritesEveryByteInOrder) {
  Pool pool;
  Chain c;
  std::vector<unsigned char> expect;
  for (int i = 0; i < 1500; ++i) {
    const std::size_t n = 1 + (i * 37) % 300;
    Buffer b = filled(pool, n, static_cast<unsigned char>(i));
    for (std::size_t k = 0; k < n; ++k) expect.push_back(static_cast<unsigned char>(b.data()[k]));
    c.append(std::move(b));
  }
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int big = 4 << 20;
  ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  ::setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof big);

  std::vector<unsigned char> got;
  int calls = 0;
  while (!c.empty()) {
    auto g = c.gather();
    std::array<iovec, Chain::kMaxIov> iov{};
    std::size_t i = 0;
    for (const auto& b : g) iov[i++] = {const_cast<void*>(b.data()), b.size()};
    ssize_t n = ::writev(sv[0], iov.data(), int(g.count()));
    ASSERT_GT(n, 0);
    c.consume(std::size_t(n));
    ++calls;
    std::vector<unsigned char> tmp(static_cast<std::size_t>(n));
    std::size_t r = 0;
    while (r < tmp.size()) {
      ssize_t k = ::read(sv[1], tmp.data() + r, tmp.size() - r);
      ASSERT_GT(k, 0);
      r += std::size_t(k);
    }
    got.insert(got.end(), tmp.begin(), tmp.end());
  }
  ::close(sv[0]);
  ::close(sv[1]);
  EXPECT_GE(calls, 1500 / int(Chain::kMaxIov));
  EXPECT_EQ(got, expect);
  EXPECT_EQ(pool.stats().classes[0].live, 0);
}

TEST(Chain, ScatterCommitKeepsFilledBytesAndReturnsUnusedChunks) {
  Pool pool;
  Chain c;
  auto s = Chain::prepare(pool, 256 * 1024);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(s.bytes(), 4 * kLargeChunk);
  EXPECT_EQ(pool.stats().classes[1].live, 4);
  // Pretend a readv filled 70,000 bytes: the first chunk whole, 4,464 bytes of the second.
  c.commit(s, 70'000);
  EXPECT_EQ(c.size(), 70'000u);
  EXPECT_EQ(c.buffer_count(), 2u);
  EXPECT_EQ(pool.stats().classes[1].live, 2);

  auto small = Chain::prepare(pool, 1000);
  EXPECT_EQ(small.count(), 1u);
  EXPECT_EQ(small.bytes(), kSmallChunk);
  c.commit(small, 0);  // EOF: nothing read, nothing kept
  EXPECT_EQ(pool.stats().classes[0].live, 0);
}

}  // namespace
}  // namespace flowrelay::buffers
