// Where the default reactor (one shard per core) runs forwarded connections: one after another they
// stay on one shard, whose thread and caches are warm (spreading them measured slower than one
// thread); at once, they spread over every shard.

#include "extension/forward/forward_source.hpp"

#include "relay/egress.hpp"
#include "tests/support/echo_child.hpp"
#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace flowrelay::forward {
namespace {

using namespace std::chrono_literals;

class Placement : public ::testing::Test {
 protected:
  void start() {
    relay_.on_closed([this](const relay::FlowSnapshot&) {
      std::lock_guard lk(mu_);
      ++served_on_[std::this_thread::get_id()];  // on_closed runs on the flow's shard
      cv_.notify_all();
    });
    const auto loopback = boost::asio::ip::make_address("127.0.0.1");
    source_ = std::make_unique<ForwardSource>(reactor_, relay_, ForwardOptions{{loopback, 0}, {loopback, echo_.port()}, false});
    source_->start();
    reactor_.start();
  }
  void TearDown() override {
    if (source_) source_->stop();
    relay_.drain(std::chrono::steady_clock::now() + 5s);
    reactor_.stop();
  }
  test::Fd round_trip() {
    test::Fd c = test::tcp_connect(source_->local_endpoint().port);
    char b = 'x';
    test::send_all(c.get(), &b, 1);
    EXPECT_EQ(test::recv_all(c.get(), &b, 1), 1u);
    return c;
  }
  int closed() {
    int n = 0;
    for (auto& [thread, count] : served_on_) n += count;
    return n;
  }
  void wait_closed(int n) {
    std::unique_lock lk(mu_);
    ASSERT_TRUE(cv_.wait_for(lk, 10s, [&] { return closed() >= n; })) << closed() << " of " << n << " flows closed";
  }

  test::EchoChild echo_;  // forks before the reactor's threads exist
  relay::Reactor reactor_{2};
  relay::DirectEgress egress_{relay::DirectEgressOptions{5s, 0}};
  relay::Relay relay_{reactor_, egress_};
  std::unique_ptr<ForwardSource> source_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::thread::id, int> served_on_;
};

TEST_F(Placement, ConnectionsOneAfterAnotherStayOnOneShard) {
  start();
  constexpr int kConnections = 40;
  for (int i = 1; i <= kConnections; ++i) {
    round_trip();  // closed at the end of the statement
    wait_closed(i);
  }
  std::lock_guard lk(mu_);
  EXPECT_EQ(served_on_.size(), 1u) << "sequential connections were spread over " << served_on_.size() << " shards";
}

TEST_F(Placement, ConnectionsAtOnceSpreadOverEveryShard) {
  start();
  constexpr int kConnections = 8;
  std::vector<test::Fd> open;
  for (int i = 0; i < kConnections; ++i) open.push_back(round_trip());  // all live together
  open.clear();
  wait_closed(kConnections);
  std::lock_guard lk(mu_);
  ASSERT_EQ(served_on_.size(), 2u) << "8 concurrent connections ran on one shard";
  for (auto& [thread, count] : served_on_) EXPECT_GE(count, 3) << "unbalanced: one shard ran only " << count;
}

}  // namespace
}  // namespace flowrelay::forward
