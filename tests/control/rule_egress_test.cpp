// RuleEgress: a claimed flow leaves the way its deciding rule says, and when the relay cannot know
// which rule decided (a rule on uids, and Linux does not learn a claimed flow's uid) the flow fails
// rather than leave by the wrong way.

#include "extension/control/rule_egress.hpp"

#include "extension/control/rule_set.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <sys/stat.h>
#include <unistd.h>

namespace flowrelay::control {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Fixture {
  asio::io_context io;
  tcp::acceptor far{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};     // the destination
  tcp::acceptor proxy{io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)};   // accepts, never answers
  RuleEgress egress{relay::DirectEgressOptions{std::chrono::milliseconds(300), 0}};

  void load(const std::string& rules) {
    const std::string text = R"({"upstreams": {"corp": {"type": "socks5", "address": "127.0.0.1:)" +
                             std::to_string(proxy.local_endpoint().port()) + R"("}}, "rules": [)" + rules + "]}";
    Epoch e;
    e.id = 1;
    e.config = std::make_shared<const Config>(parse_config(text, PlatformCaps::for_linux()));
    e.rules = std::make_shared<const RuleSet>(*e.config);
    egress.install(egress.prepare(e));
  }
  /// Dials a flow to the far listener; the outcome.
  relay::DialResult dial(std::optional<std::uint32_t> uid) {
    relay::FlowMeta m;
    m.proto = relay::Proto::tcp;
    m.dst = relay::Endpoint{far.local_endpoint().address(), far.local_endpoint().port()};
    m.app_identity.uid = uid;
    relay::DialResult out;
    asio::co_spawn(io, [&]() -> asio::awaitable<void> { out = co_await egress.dial_tcp(m, io.get_executor()); },
                   asio::detached);
    io.restart();
    io.run();
    return out;
  }
};

TEST(RuleEgress, ARuleWithoutViaDialsDirectAndOneWithViaGoesToItsUpstream) {
  Fixture f;
  f.load(R"({"verdict": "claim", "proto": "tcp", "dst": ["127.0.0.1/32"], "via": "corp"})");
  auto r = f.dial(std::nullopt);
  // The proxy accepts but never answers the SOCKS5 greeting: the dial's deadline ends it.
  EXPECT_EQ(r.error, asio::error::timed_out) << r.error.message();
  f.load(R"({"verdict": "claim", "proto": "tcp", "dst": ["127.0.0.1/32"]})");
  r = f.dial(std::nullopt);
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_STREQ(r.via, "direct");
}

TEST(RuleEgress, AnEarlierRuleOnUidsNamingAnotherWayFailsAFlowOfUnknownUidInsteadOfGuessing) {
  Fixture f;
  f.load(R"({"verdict": "claim", "proto": "tcp", "uids": [1000], "via": "corp"},
            {"verdict": "claim", "proto": "tcp", "dst": ["127.0.0.1/32"]})");
  auto r = f.dial(std::nullopt);
  EXPECT_EQ(r.error, make_error_code(relay::ProxyError::ambiguous)) << r.error.message();
  EXPECT_EQ(r.flow, nullptr);
  r = f.dial(2000);  // known, and not the uid rule's: the second rule decides, direct
  EXPECT_FALSE(r.error) << r.error.message();
  EXPECT_STREQ(r.via, "direct");
  r = f.dial(1000);  // the uid rule's own: through corp
  EXPECT_EQ(r.error, asio::error::timed_out) << r.error.message();
}

TEST(RuleEgress, AnEarlierRuleOnUidsWithTheSameWayOutIsNoDoubt) {
  Fixture f;
  f.load(R"({"verdict": "claim", "proto": "tcp", "uids": [1000]},
            {"verdict": "bypass", "proto": "tcp", "uids": [1001], "dst": ["127.0.0.1/32"]},
            {"verdict": "claim", "proto": "tcp", "dst": ["127.0.0.1/32"]})");
  const auto r = f.dial(std::nullopt);  // both claim rules go direct; a bypass rule never claimed it
  EXPECT_FALSE(r.error) << r.error.message();
}

TEST(RuleEgress, APasswordFileThatIsAFifoFailsTheEpochAtOnceNamingIt) {
  Fixture f;
  const std::string fifo = ::testing::TempDir() + "rule-egress-" + std::to_string(::getpid()) + ".pass";
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Epoch e;
  e.id = 1;
  e.config = std::make_shared<const Config>(parse_config(
      R"({"upstreams": {"corp": {"type": "socks5", "address": "127.0.0.1:1080", "username": "u", "password_file": ")" +
          fifo + R"("}}, "rules": [{"verdict": "claim", "proto": "tcp", "via": "corp"}]})",
      PlatformCaps::for_linux()));
  e.rules = std::make_shared<const RuleSet>(*e.config);
  try {
    f.egress.prepare(e);  // no writer ever opens the FIFO: a blocking read would hang here
    ADD_FAILURE() << "a FIFO was read as a password";
  } catch (const std::runtime_error& err) {
    EXPECT_NE(std::string(err.what()).find(fifo), std::string::npos) << err.what();
  }
  ::unlink(fifo.c_str());
}

}  // namespace
}  // namespace flowrelay::control
