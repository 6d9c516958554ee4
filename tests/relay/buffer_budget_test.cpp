#include "relay/egress.hpp"
#include "relay/relay.hpp"
#include "relay/socket_tcp_flow.hpp"

#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <thread>
#include <vector>

namespace flowrelay::relay {
namespace {

using namespace std::chrono_literals;

TEST(BufferBudget, FlowsWaitForMemoryPastTheCapAndEveryByteStillArrives) {
  // 16 uploads to a server that does not read yet: each flow would queue flow_buffer_bytes (1 MiB),
  // 16 MiB in all, against a 4 MiB budget. The flows wait instead of failing, the pools never pass
  // the budget, and once the server reads every byte of every flow arrives.
  constexpr int kFlows = 16;
  constexpr std::uint64_t kBytes = 12ULL << 20;
  constexpr std::size_t kBudget = 4 << 20;
  Reactor reactor(1);
  reactor.set_buffer_limit(kBudget);
  DirectEgress egress;
  RelayOptions options;
  options.flow_buffer_bytes = 1 << 20;
  Relay relay(reactor, egress, options);
  reactor.start();
  auto& io = reactor.context(0);

  test::Fd app_listener = test::tcp_listen(), server_listener = test::tcp_listen();
  int small = 64 << 10;  // the server's receive window stays small: the bytes pile up in the relay
  ::setsockopt(server_listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  FlowMeta meta;
  meta.proto = Proto::tcp;
  meta.dst = {boost::asio::ip::make_address("127.0.0.1"), test::local_port(server_listener.get())};

  std::vector<test::Fd> clients, servers;
  for (int i = 0; i < kFlows; ++i) {
    clients.push_back(test::tcp_connect(test::local_port(app_listener.get())));
    const int fd = test::tcp_accept(app_listener.get()).release();
    boost::asio::post(io, [&, fd] {
      boost::asio::ip::tcp::socket s(io);
      s.assign(boost::asio::ip::tcp::v4(), fd);
      relay.adopt(std::make_unique<SocketTcpFlow>(std::move(s)), meta, io.get_executor());
    });
    servers.push_back(test::tcp_accept(server_listener.get()));
  }
  std::vector<std::string> sent(kFlows);
  std::vector<std::thread> senders;
  for (int i = 0; i < kFlows; ++i)
    senders.emplace_back([&, i] {
      sent[i] = test::send_random(clients[i].get(), kBytes, i + 1);
      ::shutdown(clients[i].get(), SHUT_WR);
    });

  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (relay.counters().buffer_waits == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();  // polling a condition with a deadline, not a sleep
  ASSERT_GT(relay.counters().buffer_waits, 0u) << "the budget was never reached";
  EXPECT_LE(reactor.buffer_memory(), kBudget);

  std::vector<std::string> got(kFlows);
  std::vector<std::uint64_t> got_bytes(kFlows);
  std::vector<std::thread> readers;
  for (int i = 0; i < kFlows; ++i)
    readers.emplace_back([&, i] { std::tie(got_bytes[i], got[i]) = test::recv_hash(servers[i].get()); });
  for (auto& t : senders) t.join();
  for (auto& t : readers) t.join();

  for (auto b : got_bytes) EXPECT_EQ(b, kBytes);
  std::sort(sent.begin(), sent.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, sent);  // every flow's bytes, exact (servers accept in any order)
  EXPECT_LE(reactor.buffer_memory(), kBudget);  // slabs are never given back: this is the peak
  EXPECT_EQ(relay.counters().dial_failures, 0u);
  relay.drain(std::chrono::steady_clock::now());
  reactor.stop();
}

}  // namespace
}  // namespace flowrelay::relay
