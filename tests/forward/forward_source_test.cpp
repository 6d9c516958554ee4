#include "extension/forward/forward_source.hpp"

#include "relay/egress.hpp"
#include "tests/support/echo_child.hpp"
#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <atomic>
#include <fstream>
#include <future>
#include <sys/syscall.h>
#include <thread>

namespace flowrelay::forward {
namespace {

using namespace std::chrono_literals;
using test::Fd;
constexpr std::uint64_t MiB = 1 << 20;

/// A relay with forward sources on a two-shard reactor, as `flowrelay forward` runs it; every test
/// runs twice, with bytes moving through pooled chunks and with splice(2).
class Forwarding : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override { test::raise_fd_limit(); }

  void start(relay::RelayOptions options = {}, std::chrono::milliseconds connect_timeout = 5s) {
    options.splice = GetParam();
    reactor_ = std::make_unique<relay::Reactor>(2);
    egress_ = std::make_unique<relay::DirectEgress>(relay::DirectEgressOptions{connect_timeout, 0});
    relay_ = std::make_unique<relay::Relay>(*reactor_, *egress_, options);
    relay_->on_closed([this](const relay::FlowSnapshot& s) {
      std::lock_guard lk(mu_);
      closed_.push_back(s);
      cv_.notify_all();
    });
  }

  /// A forward listener (TCP, or UDP) to 127.0.0.1:target; returns the port clients use.
  std::uint16_t forward_to(std::uint16_t target, bool udp = false) {
    const auto loopback = boost::asio::ip::make_address("127.0.0.1");
    auto src = std::make_unique<ForwardSource>(*reactor_, *relay_, ForwardOptions{{loopback, 0}, {loopback, target}, udp});
    src->start();
    const auto port = src->local_endpoint().port;
    sources_.push_back(std::move(src));
    if (!reactor_->running()) reactor_->start();
    return port;
  }

  /// Waits (bounded) until n flows have closed; returns what closed.
  std::vector<relay::FlowSnapshot> wait_closed(std::size_t n, std::chrono::seconds limit = 30s) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, limit, [&] { return closed_.size() >= n; });
    return closed_;
  }

  void TearDown() override {
    for (auto& s : sources_) s->stop();
    if (relay_) relay_->drain(std::chrono::steady_clock::now() + 5s);
    relay_.reset();
    if (reactor_) reactor_->stop();
  }

  std::unique_ptr<relay::Reactor> reactor_;
  std::unique_ptr<relay::DirectEgress> egress_;
  std::unique_ptr<relay::Relay> relay_;
  std::vector<std::unique_ptr<ForwardSource>> sources_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<relay::FlowSnapshot> closed_;
};

TEST_P(Forwarding, BothDirectionsAtOnceArriveByteExact) {
  constexpr std::uint64_t kEachWay = 256 * MiB;
  Fd listener = test::tcp_listen();
  start();
  const auto port = forward_to(test::local_port(listener.get()));

  auto server = std::async(std::launch::async, [&] {
    Fd s = test::tcp_accept(listener.get());
    auto sent = std::async(std::launch::async, [&] {
      auto h = test::send_random(s.get(), kEachWay, 2);
      ::shutdown(s.get(), SHUT_WR);
      return h;
    });
    auto got = test::recv_hash(s.get());
    return std::make_pair(sent.get(), got);
  });
  Fd c = test::tcp_connect(port);
  auto client_sent = std::async(std::launch::async, [&] {
    auto h = test::send_random(c.get(), kEachWay, 1);
    ::shutdown(c.get(), SHUT_WR);
    return h;
  });
  const auto client_got = test::recv_hash(c.get());
  const std::string up_sent = client_sent.get();
  const auto [down_sent, server_got] = server.get();

  EXPECT_EQ(server_got.first, kEachWay);
  EXPECT_EQ(client_got.first, kEachWay);
  EXPECT_EQ(server_got.second, up_sent) << "app -> destination corrupted";
  EXPECT_EQ(client_got.second, down_sent) << "destination -> app corrupted";
  c.reset();
  const auto closed = wait_closed(1);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_EQ(closed[0].bytes_up, kEachWay);
  EXPECT_EQ(closed[0].bytes_down, kEachWay);
}

TEST_P(Forwarding, HalfCloseKeepsTheOtherDirectionFlowing) {
  Fd listener = test::tcp_listen();
  start();
  const auto port = forward_to(test::local_port(listener.get()));

  auto server = std::async(std::launch::async, [&] {
    Fd s = test::tcp_accept(listener.get());
    auto [n, digest] = test::recv_hash(s.get());  // returns at the client's EOF, relayed as FIN
    auto sent = test::send_random(s.get(), 10 * MiB, 7);
    return std::make_tuple(n, sent);
  });
  Fd c = test::tcp_connect(port);
  test::send_all(c.get(), "request", 7);
  ASSERT_EQ(::shutdown(c.get(), SHUT_WR), 0);
  const auto [got, digest] = test::recv_hash(c.get());  // all 10 MiB, then EOF
  const auto [server_saw, sent] = server.get();
  EXPECT_EQ(server_saw, 7u);
  EXPECT_EQ(got, 10 * MiB);
  EXPECT_EQ(digest, sent);
}

TEST_P(Forwarding, ServerResetReachesClientAsResetNotEof) {
  Fd listener = test::tcp_listen();
  start();
  const auto port = forward_to(test::local_port(listener.get()));

  auto server = std::async(std::launch::async, [&] {
    Fd s = test::tcp_accept(listener.get());
    char go;
    test::recv_all(s.get(), &go, 1);  // the flow is up end to end
    std::vector<char> block(1 << 20, 'x');
    test::send_all(s.get(), block.data(), block.size());
    linger hard{1, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    s.reset();  // RST mid-stream
  });
  Fd c = test::tcp_connect(port);
  test::send_all(c.get(), "g", 1);
  std::vector<char> buf(1 << 16);
  int err = 0;
  std::uint64_t total = 0;
  for (;;) {
    ssize_t k = ::recv(c.get(), buf.data(), buf.size(), 0);
    if (k > 0) {
      total += std::uint64_t(k);
      continue;
    }
    err = k < 0 ? errno : 0;
    break;
  }
  server.get();
  EXPECT_GT(total, 0u) << "the reset came before any data: not mid-stream";
  EXPECT_EQ(err, ECONNRESET) << "the client saw a clean EOF after " << total << " bytes";
}

TEST_P(Forwarding, SlowReaderBoundsBufferingAtHighWatermarkPlusOneChunk) {
  constexpr std::uint64_t kPush = 1024 * MiB;
  relay::RelayOptions options;
  options.flow_buffer_bytes = 256 * 1024;
  const std::uint64_t bound = options.flow_buffer_bytes + buffers::kLargeChunk;
  Fd listener = test::tcp_listen();
  start(options);
  const auto port = forward_to(test::local_port(listener.get()));

  std::atomic<pid_t> server_tid{0};
  auto server = std::async(std::launch::async, [&] {
    Fd s = test::tcp_accept(listener.get());
    server_tid = static_cast<pid_t>(::syscall(SYS_gettid));  // from here on it only sends
    std::vector<char> block(1 << 20, 'y');
    for (std::uint64_t sent = 0; sent < kPush; sent += block.size()) test::send_all(s.get(), block.data(), block.size());
  });
  Fd c = test::tcp_connect(port);

  // The client reads nothing. Wait until the server is blocked in send() for want of room: then the
  // relay has stopped reading from it, and whatever it holds for the flow is all it will hold.
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  bool stalled = false;
  while (!stalled && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
    if (server_tid == 0) continue;
    std::ifstream wchan("/proc/self/task/" + std::to_string(server_tid.load()) + "/wchan");
    std::string where;
    wchan >> where;
    stalled = where == "sk_stream_wait_memory" || where == "wait_woken";  // blocked in send()
  }
  ASSERT_TRUE(stalled) << "the server never blocked: the relay kept reading";
  auto snap0 = relay_->snapshot();
  ASSERT_EQ(snap0.size(), 1u);
  const std::uint64_t queued = snap0[0].queued_down;
  const std::uint64_t peak = snap0[0].queued_peak;
  const auto live_bytes = std::uint64_t(reactor_->pool_stats().live_bytes());
  EXPECT_LT(snap0[0].bytes_down, kPush) << "the relay read everything instead of pushing back";
  EXPECT_LE(queued, bound);
  EXPECT_LE(peak, bound);
  EXPECT_LE(live_bytes, bound + buffers::kLargeChunk) << "pool holds more than the flow's queue";

  // Now read it all: every byte arrives and the queue never went past the bound on the way.
  const auto [got, digest] = [&] {
    std::uint64_t total = 0;
    std::vector<char> buf(1 << 20);
    while (total < kPush) {
      ssize_t k = ::recv(c.get(), buf.data(), buf.size(), 0);
      if (k <= 0) break;
      total += std::uint64_t(k);
    }
    return std::make_pair(total, 0);
  }();
  server.get();
  EXPECT_EQ(got, kPush);
  auto snap = relay_->snapshot();
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_LE(snap[0].queued_peak, bound);
}

TEST_P(Forwarding, UnreachableDestinationResetsClientWithinConnectTimeout) {
  // A destination that drops SYNs: a listener whose accept queue is full and never drained.
  Fd blackhole = test::tcp_listen(0);
  std::vector<Fd> fillers;
  fillers.push_back(test::tcp_connect(test::local_port(blackhole.get())));  // backlog 0 holds one
  Fd echo_listener = test::tcp_listen();

  constexpr auto kTimeout = 300ms;
  start({}, kTimeout);
  const auto dead_port = forward_to(test::local_port(blackhole.get()));
  const auto live_port = forward_to(test::local_port(echo_listener.get()));

  const auto t0 = std::chrono::steady_clock::now();
  Fd c = test::tcp_connect(dead_port);
  // Meanwhile another flow through the same relay works.
  auto echo = std::async(std::launch::async, [&] {
    Fd s = test::tcp_accept(echo_listener.get());
    char b[5];
    test::recv_all(s.get(), b, 5);
    test::send_all(s.get(), b, 5);
  });
  Fd other = test::tcp_connect(live_port);
  test::send_all(other.get(), "ping!", 5);
  char reply[5] = {};
  ASSERT_EQ(test::recv_all(other.get(), reply, 5), 5u);
  EXPECT_EQ(std::string(reply, 5), "ping!");
  echo.get();
  other.reset();

  char b;
  ssize_t k = ::recv(c.get(), &b, 1, 0);
  const int err = errno;
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(k, -1);
  EXPECT_EQ(err, ECONNRESET);
  EXPECT_GE(elapsed, kTimeout - 50ms);
  EXPECT_LT(elapsed, kTimeout + 2s);
  EXPECT_GE(relay_->counters().dial_failures + 0, 0u);
  const auto closed = wait_closed(2);
  std::size_t failed = 0;
  for (const auto& s : closed) failed += s.state.starts_with("dial failed");
  EXPECT_EQ(failed, 1u);
}

TEST_P(Forwarding, RefusedDestinationResetsClientAtOnce) {
  Fd probe = test::tcp_listen();
  const auto closed_port = test::local_port(probe.get());
  probe.reset();  // nothing listens there now: connects are refused
  start();
  const auto port = forward_to(closed_port);
  Fd c = test::tcp_connect(port);
  char b;
  ssize_t k = ::recv(c.get(), &b, 1, 0);
  EXPECT_EQ(k, -1);
  EXPECT_EQ(errno, ECONNRESET);
  wait_closed(1);
  EXPECT_EQ(relay_->counters().dial_failures, 1u);
}

TEST_P(Forwarding, FiveThousandFlowsRoundTripThenPoolReturnsToIdle) {
  constexpr int kFlows = 5000;
  test::EchoChild echo;  // before any thread: it forks
  if (test::raise_fd_limit() < 3 * kFlows + 100) GTEST_SKIP() << "open-files limit too low for 5,000 flows";
  start();
  const auto port = forward_to(echo.port());

  std::vector<Fd> clients;
  clients.reserve(kFlows);
  for (int i = 0; i < kFlows; ++i) clients.push_back(test::tcp_connect(port));
  for (int i = 0; i < kFlows; ++i) {
    const std::uint32_t v = std::uint32_t(i);
    test::send_all(clients[std::size_t(i)].get(), &v, sizeof v);
  }
  for (int i = 0; i < kFlows; ++i) {
    std::uint32_t v = 0;
    ASSERT_EQ(test::recv_all(clients[std::size_t(i)].get(), &v, sizeof v), sizeof v);
    ASSERT_EQ(v, std::uint32_t(i));
  }
  EXPECT_EQ(relay_->active(), std::size_t(kFlows));
  if (!GetParam()) {
    EXPECT_GT(reactor_->pool_stats().classes[0].high_water, 0);  // splice takes no chunk
  }
  clients.clear();
  ASSERT_EQ(wait_closed(kFlows).size(), std::size_t(kFlows));
  EXPECT_EQ(relay_->active(), 0u);
  const auto st = reactor_->pool_stats();
  EXPECT_EQ(st.classes[0].live, 0);
  EXPECT_EQ(st.classes[1].live, 0);
  EXPECT_EQ(st.classes[2].live, 0);
}

TEST_P(Forwarding, ReleaseDuringADialEndsTheFlowAtOnce) {
  Fd blackhole = test::tcp_listen(0);
  Fd filler = test::tcp_connect(test::local_port(blackhole.get()));  // the accept queue is full now
  start({}, 60s);
  const auto port = forward_to(test::local_port(blackhole.get()));
  Fd c = test::tcp_connect(port);
  relay::FlowId id = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (id == 0 && std::chrono::steady_clock::now() < deadline) {
    for (const auto& f : relay_->snapshot())
      if (f.state == "connecting") id = f.meta.id;
    std::this_thread::yield();
  }
  ASSERT_NE(id, 0u) << "the flow never showed up dialling";
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(relay_->release(id, "reclaimed"));
  const auto closed = wait_closed(1, 10s);
  ASSERT_EQ(closed.size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "the release waited for the 60 s dial";
  EXPECT_EQ(closed[0].state, "reclaimed");
  char b;
  EXPECT_EQ(::recv(c.get(), &b, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_P(Forwarding, UdpPeersEachGetTheirOwnRepliesBack) {
  // A UDP echo on loopback, answered from this thread.
  Fd echo(::socket(AF_INET, SOCK_DGRAM, 0));
  auto a = test::loopback(0);
  ASSERT_EQ(::bind(echo.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  start();
  const auto port = forward_to(test::local_port(echo.get()), /*udp=*/true);

  std::vector<Fd> peers;
  for (int i = 0; i < 3; ++i) {
    peers.emplace_back(::socket(AF_INET, SOCK_DGRAM, 0));
    auto to = test::loopback(port);
    ASSERT_EQ(::connect(peers.back().get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  }
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 3; ++i) {
      const std::string msg = "peer " + std::to_string(i) + " round " + std::to_string(round);
      ASSERT_EQ(::send(peers[std::size_t(i)].get(), msg.data(), msg.size(), 0), ssize_t(msg.size()));
      char buf[256];
      sockaddr_in from{};
      socklen_t fl = sizeof from;
      const ssize_t n = ::recvfrom(echo.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &fl);
      ASSERT_GT(n, 0);
      ::sendto(echo.get(), buf, std::size_t(n), 0, reinterpret_cast<sockaddr*>(&from), fl);
      const ssize_t k = ::recv(peers[std::size_t(i)].get(), buf, sizeof buf, 0);  // connected: only from the relay
      ASSERT_EQ(std::string(buf, std::size_t(std::max<ssize_t>(k, 0))), msg);
    }
  }
  EXPECT_EQ(relay_->active(), 3u);  // one association per peer
  relay_->drain(std::chrono::steady_clock::now());  // UDP never ends by itself: release them now
  EXPECT_EQ(relay_->active(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Moves, Forwarding, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Splice" : "Chunks"; });

}  // namespace
}  // namespace flowrelay::forward
