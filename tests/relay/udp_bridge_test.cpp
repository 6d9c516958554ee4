#include "relay/relay.hpp"
#include "relay/socket_tcp_flow.hpp"

#include "tests/support/net.hpp"
#include "tests/support/udp_echo.hpp"

#include <gtest/gtest.h>

#include <boost/asio/post.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <set>
#include <cstring>
#include <future>
#include <map>
#include <random>
#include <thread>

namespace flowrelay::relay {
namespace {

using namespace std::chrono_literals;

/// The app side as a test sees it: replies collected, closure noted.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<Endpoint, std::string>> replies;
  std::uint64_t reply_bytes = 0;
  bool closed = false;
};

class TestUdpFlow final : public UdpFlow {
 public:
  explicit TestUdpFlow(Inbox& inbox) : inbox_(inbox) {}
  bool send_to_app(const Datagram& d) override {
    std::lock_guard lk(inbox_.mu);
    inbox_.replies.emplace_back(d.peer, std::string(reinterpret_cast<const char*>(d.payload.data()), d.payload.size()));
    inbox_.reply_bytes += d.payload.size();
    inbox_.cv.notify_all();
    return true;
  }
  void closed() override {
    std::lock_guard lk(inbox_.mu);
    inbox_.closed = true;
    inbox_.cv.notify_all();
  }

 private:
  Inbox& inbox_;
};

TEST(UdpBridge, MixedSizesToTwoDestinationsComeBackFromTheRightSourceThenExpire) {
  constexpr int kDatagrams = 10'000;
  test::UdpEcho echo_a, echo_b;
  Reactor reactor(1);
  DirectEgress egress;
  RelayOptions options;
  options.udp_idle_timeout = 300ms;
  Relay relay(reactor, egress, options);
  std::promise<FlowSnapshot> last;
  relay.on_closed([&](const FlowSnapshot& s) { last.set_value(s); });
  reactor.start();
  auto ex = reactor.context(0).get_executor();

  Inbox inbox;
  FlowMeta meta;
  meta.proto = Proto::udp;
  meta.app = {boost::asio::ip::make_address("10.0.0.1"), 5353};  // a label only: no socket behind it
  std::promise<std::shared_ptr<UdpAssociation>> adopted;
  boost::asio::post(ex, [&] { adopted.set_value(relay.adopt(std::make_unique<TestUdpFlow>(inbox), meta, ex)); });
  auto assoc = adopted.get_future().get();
  ASSERT_TRUE(assoc);

  std::mt19937 rng(42);
  std::uniform_int_distribution<int> size_of(1, 65'507);
  std::multiset<std::pair<Endpoint, std::string>> sent;
  std::uint64_t sent_bytes = 0, in_flight = 0;
  std::size_t answered = 0;
  for (int i = 0; i < kDatagrams; ++i) {
    const Endpoint& to = (rng() & 1) ? echo_a.endpoint() : echo_b.endpoint();
    std::string payload(std::size_t(i % 50 == 0 ? 1 + i % 3 : size_of(rng)), '\0');
    for (auto& ch : payload) ch = char(rng());
    sent.emplace(to, payload);
    sent_bytes += payload.size();
    in_flight += payload.size();
    boost::asio::post(ex, [&, to, payload] {
      auto chunk = buffers::Buffer::take(*buffers::Pool::local(), buffers::SizeClass::large);
      std::memcpy(chunk.mutable_data(), payload.data(), payload.size());
      chunk.truncate(payload.size());
      assoc->from_app(Datagram{std::move(chunk), to});
    });
    // Keep at most 128 KiB in flight so no socket buffer on the way overflows.
    std::unique_lock lk(inbox.mu);
    ASSERT_TRUE(inbox.cv.wait_for(lk, 10s, [&] {
      for (; answered < inbox.replies.size(); ++answered) in_flight -= inbox.replies[answered].second.size();
      return in_flight <= 128 * 1024;
    })) << "replies stopped after " << inbox.replies.size() << " datagrams";
  }
  {
    std::unique_lock lk(inbox.mu);
    ASSERT_TRUE(inbox.cv.wait_for(lk, 10s, [&] { return inbox.replies.size() == std::size_t(kDatagrams); }))
        << inbox.replies.size() << " of " << kDatagrams << " replies";
    std::multiset<std::pair<Endpoint, std::string>> got(inbox.replies.begin(), inbox.replies.end());
    EXPECT_TRUE(got == sent) << "a reply came back with the wrong source endpoint or payload";
    EXPECT_EQ(inbox.reply_bytes, sent_bytes);
  }

  // Quiet now: the association expires on its own and tells the app side.
  auto closed = last.get_future();
  ASSERT_EQ(closed.wait_for(10s), std::future_status::ready) << "the idle association never expired";
  const FlowSnapshot s = closed.get();
  EXPECT_EQ(s.state, "idle timeout");
  EXPECT_EQ(s.bytes_up, sent_bytes);
  EXPECT_EQ(s.bytes_down, sent_bytes);
  {
    std::lock_guard lk(inbox.mu);
    EXPECT_TRUE(inbox.closed);
  }
  EXPECT_EQ(relay.active(), 0u);
  EXPECT_EQ(reactor.pool_stats().classes[1].live, 0);
  assoc.reset();
  reactor.stop();
}

TEST(UdpBridge, ASourcePortSprayCannotTakeTheRoomTcpFlowsNeed) {
  // Every new source port is a new UDP flow: a spray fills the UDP budget, and TCP still gets in.
  Reactor reactor(1);
  DirectEgress egress;
  RelayOptions options;
  options.max_flows = 8;
  options.max_udp_flows = 4;
  Relay relay(reactor, egress, options);
  reactor.start();
  auto ex = reactor.context(0).get_executor();

  Inbox inbox;
  int admitted = 0;
  for (std::uint16_t port = 40000; port < 40010; ++port) {
    FlowMeta meta;
    meta.proto = Proto::udp;
    meta.app = {boost::asio::ip::make_address("10.0.0.1"), port};
    std::promise<bool> adopted;
    boost::asio::post(ex, [&] { adopted.set_value(relay.adopt(std::make_unique<TestUdpFlow>(inbox), meta, ex) != nullptr); });
    admitted += adopted.get_future().get() ? 1 : 0;
  }
  EXPECT_EQ(admitted, 4);
  EXPECT_EQ(relay.counters().rejected_udp, 6u);

  // A TCP flow after the spray is relayed end to end.
  test::Fd app_listener = test::tcp_listen(), server_listener = test::tcp_listen();
  test::Fd client = test::tcp_connect(test::local_port(app_listener.get()));
  test::Fd app_side = test::tcp_accept(app_listener.get());
  FlowMeta meta;
  meta.proto = Proto::tcp;
  meta.dst = {boost::asio::ip::make_address("127.0.0.1"), test::local_port(server_listener.get())};
  const int fd = app_side.release();
  boost::asio::post(ex, [&, fd] {
    boost::asio::ip::tcp::socket s(reactor.context(0));
    s.assign(boost::asio::ip::tcp::v4(), fd);
    relay.adopt(std::make_unique<SocketTcpFlow>(std::move(s)), meta, ex);
  });
  test::Fd server = test::tcp_accept(server_listener.get());
  test::send_all(client.get(), "ping", 4);
  char got[4] = {};
  ASSERT_EQ(test::recv_all(server.get(), got, 4), 4u);
  EXPECT_EQ(std::string(got, 4), "ping");
  EXPECT_EQ(relay.counters().rejected, 6u);  // the TCP flow was not one of them
  relay.drain(std::chrono::steady_clock::now());
  reactor.stop();
}

}  // namespace
}  // namespace flowrelay::relay
