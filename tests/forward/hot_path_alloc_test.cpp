// The data path allocates nothing per packet: after a warm-up, 100,000 request/response round
// trips through a relayed TCP flow, and 100,000 through a relayed UDP flow, make no C++ allocation
// anywhere in the process (the relay's reactor thread, Asio's handlers, the pools). Every
// operator new of this binary is counted.

#include "extension/forward/forward_source.hpp"

#include "relay/egress.hpp"
#include "tests/support/echo_child.hpp"
#include "tests/support/net.hpp"
#include "tests/support/udp_echo.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};

void* counted(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* counted_aligned(std::size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return counted(n); }
void* operator new[](std::size_t n) { return counted(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return std::malloc(n == 0 ? 1 : n);
}
void* operator new(std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return counted_aligned(n, a); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace flowrelay::forward {
namespace {

using namespace std::chrono_literals;
constexpr int kRoundTrips = 100'000;
constexpr int kWarmUp = 2'000;

/// flowrelay forward on one shard, as the benchmark runs it.
struct OneShardRelay {
  explicit OneShardRelay(std::uint16_t target, bool udp) {
    const auto loopback = boost::asio::ip::make_address("127.0.0.1");
    source = std::make_unique<ForwardSource>(reactor, relay, ForwardOptions{{loopback, 0}, {loopback, target}, udp});
    source->start();
    reactor.start();
  }
  ~OneShardRelay() {
    source->stop();
    relay.drain(std::chrono::steady_clock::now() + 5s);
    reactor.stop();
  }
  std::uint16_t port() const { return source->local_endpoint().port; }

  relay::Reactor reactor{1};
  relay::DirectEgress egress{relay::DirectEgressOptions{5s, 0}};
  relay::Relay relay{reactor, egress};
  std::unique_ptr<ForwardSource> source;
};

/// Warms up, then counts every allocation of the process over kRoundTrips round trips.
template <typename RoundTrip>
void expect_no_allocations(RoundTrip round_trip, const char* what) {
  for (int i = 0; i < kWarmUp; ++i) round_trip(i);
  const std::uint64_t before = g_allocations.load();
  ASSERT_GT(before, 0u) << "the counting operator new is not in use: this test could not fail";
  for (int i = 0; i < kRoundTrips; ++i) round_trip(i);
  const std::uint64_t during = g_allocations.load() - before;
  EXPECT_EQ(during, 0u) << "allocations during " << kRoundTrips << " " << what << " round trips of 64 B";
}

TEST(HotPath, TcpRoundTripsAllocateNothing) {
  test::EchoChild echo;  // before any thread exists here
  OneShardRelay fwd(echo.port(), false);
  test::Fd c = test::tcp_connect(fwd.port());
  char msg[64] = {};
  auto round_trip = [&](int i) {
    msg[0] = static_cast<char>(i);
    test::send_all(c.get(), msg, sizeof msg);
    char back[64];
    ASSERT_EQ(test::recv_all(c.get(), back, sizeof back), sizeof back);
    ASSERT_EQ(back[0], msg[0]);
  };
  expect_no_allocations(round_trip, "TCP");
}

TEST(HotPath, UdpRoundTripsAllocateNothing) {
  test::UdpEcho echo;
  OneShardRelay fwd(echo.endpoint().port, true);
  test::Fd c(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  const sockaddr_in to = test::loopback(fwd.port());
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to), 0);
  timeval limit{5, 0};
  ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char msg[64] = {};
  auto round_trip = [&](int i) {
    std::memcpy(msg, &i, sizeof i);
    ASSERT_EQ(::send(c.get(), msg, sizeof msg, 0), static_cast<ssize_t>(sizeof msg));
    char back[64];
    ASSERT_EQ(::recv(c.get(), back, sizeof back, 0), static_cast<ssize_t>(sizeof back)) << "datagram " << i << " lost";
    ASSERT_EQ(std::memcmp(back, msg, sizeof msg), 0);
  };
  expect_no_allocations(round_trip, "UDP");
}

}  // namespace
}  // namespace flowrelay::forward
