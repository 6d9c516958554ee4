// The default reactor (one shard per CPU, each pinned) serves a connection on the CPU that received
// it: a client on CPU c is relayed by the shard running on CPU c, so a request and its reply never
// wake a thread on another CPU.

#include "extension/forward/forward_source.hpp"

#include "relay/egress.hpp"
#include "tests/support/echo_child.hpp"
#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <sched.h>

namespace flowrelay::forward {
namespace {

using namespace std::chrono_literals;

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

void pin_this_thread(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  ASSERT_EQ(::sched_setaffinity(0, sizeof set, &set), 0);
}

TEST(DefaultReactor, RelaysEachConnectionOnTheCpuThatReceivedIt) {
  test::EchoChild echo;  // before any thread exists here
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) GTEST_SKIP() << "needs two CPUs to tell shards apart; this process may use " << cpus.size();

  relay::Reactor reactor;  // the default: one pinned shard per CPU
  ASSERT_EQ(reactor.size(), cpus.size());
  relay::DirectEgress egress(relay::DirectEgressOptions{5s, 0});
  relay::Relay relay(reactor, egress);
  std::mutex mu;
  std::condition_variable cv;
  std::map<std::uint16_t, int> served_on;  // client port -> CPU of the thread that relayed it
  relay.on_closed([&](const relay::FlowSnapshot& s) {
    std::lock_guard lk(mu);
    served_on[s.meta.app.port] = ::sched_getcpu();
    cv.notify_all();
  });
  const auto loopback = boost::asio::ip::make_address("127.0.0.1");
  ForwardSource source(reactor, relay, ForwardOptions{{loopback, 0}, {loopback, echo.port()}, false});
  source.start();
  reactor.start();

  constexpr int kPerCpu = 20;
  std::map<std::uint16_t, int> sent_from;
  for (int round = 0; round < kPerCpu; ++round) {
    for (int cpu : cpus) {
      pin_this_thread(cpu);
      test::Fd c = test::tcp_connect(source.local_endpoint().port);
      sent_from[test::local_port(c.get())] = cpu;
      char b = 'x';
      test::send_all(c.get(), &b, 1);
      ASSERT_EQ(test::recv_all(c.get(), &b, 1), 1u);
    }
  }
  {
    std::unique_lock lk(mu);
    ASSERT_TRUE(cv.wait_for(lk, 10s, [&] { return served_on.size() == sent_from.size(); }))
        << served_on.size() << " of " << sent_from.size() << " flows closed";
  }
  source.stop();
  reactor.stop();
  int elsewhere = 0;
  for (const auto& [port, cpu] : sent_from)
    if (served_on[port] != cpu) ++elsewhere;
  EXPECT_EQ(elsewhere, 0) << "of " << sent_from.size() << " connections were relayed on another CPU than the client's";
}

}  // namespace
}  // namespace flowrelay::forward
