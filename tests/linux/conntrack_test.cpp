#include "extension/linux/conntrack.hpp"

#include "extension/linux/ct_mark.hpp"
#include "tests/linux/netns.hpp"
#include "tests/linux/sockets.hpp"

#include <gtest/gtest.h>

#include <regex>

namespace flowrelay::linux_host {
namespace {

using namespace testing;
using boost::asio::ip::make_address;

/// Packets in the original direction whose conntrack mark is exactly `mark`, counted by nftables.
void install_counter(std::uint32_t mark) {
  auto [rc, out] = sh("nft -f - <<'EOF'\n"
                      "table inet ctcount {\n"
                      "  counter marked {}\n"
                      "  chain out {\n"
                      "    type filter hook output priority 0; policy accept;\n"
                      "    ct direction original ct mark " + std::to_string(mark) + " counter name \"marked\"\n"
                      "  }\n"
                      "}\n"
                      "EOF");
  ASSERT_EQ(rc, 0) << out;
}

long counted_packets() {
  auto [rc, out] = sh("nft list counter inet ctcount marked");
  std::smatch m;
  if (rc != 0 || !std::regex_search(out, m, std::regex("packets ([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

relay::Endpoint ep(int fd) {
  auto a = local_addr(fd);
  char buf[64];
  const void* raw = a.family() == AF_INET ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in&>(a.ss).sin_addr)
                                          : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6&>(a.ss).sin6_addr);
  ::inet_ntop(a.family(), raw, buf, sizeof buf);
  return {make_address(buf), a.port()};
}

void send_to(int fd, int to, const std::string& payload) {
  auto dst = local_addr(to);
  ASSERT_EQ(::sendto(fd, payload.data(), payload.size(), 0, dst.sa(), dst.len), static_cast<ssize_t>(payload.size()));
  ASSERT_TRUE(wait_readable(to));
  char buf[64];
  ASSERT_EQ(::recv(to, buf, sizeof buf, 0), static_cast<ssize_t>(payload.size()));
}

TEST(ConntrackNeedsRootNetns, RemarkedUdpFlowCarriesTheNewMarkOnItsNextDatagram) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  const std::uint32_t claim = CtMark::encode(Verdict::claim, 7);
  install_counter(claim);
  for (std::string ip : {"127.0.0.1", "::1"}) {
    SCOPED_TRACE(ip);
    const long before = counted_packets();
    int server = udp_socket(ip), app = udp_socket(ip), other = udp_socket(ip);
    send_to(app, server, "first");
    send_to(other, server, "first");

    Conntrack ct;
    auto e = ct.find(relay::Proto::udp, ep(app), ep(server));
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->mark, 0u);
    EXPECT_EQ(e->orig_src, ep(app));
    EXPECT_EQ(e->reply_src, ep(server));
    EXPECT_EQ(counted_packets(), before);

    ASSERT_TRUE(ct.set_mark(relay::Proto::udp, ep(app), ep(server), claim));
    EXPECT_EQ(ct.find(relay::Proto::udp, ep(app), ep(server))->mark, claim);
    EXPECT_EQ(CtMark::verdict(claim), Verdict::claim);
    EXPECT_EQ(CtMark::epoch(claim), 7u);

    send_to(app, server, "second");
    EXPECT_EQ(counted_packets(), before + 1);
    send_to(other, server, "second");  // the bystander flow kept its mark
    EXPECT_EQ(counted_packets(), before + 1);
    EXPECT_EQ(ct.find(relay::Proto::udp, ep(other), ep(server))->mark, 0u);

    auto all = ct.list(relay::Proto::udp);
    EXPECT_GE(std::count_if(all.begin(), all.end(), [&](const ConntrackEntry& x) {
      return x.orig_src == ep(app) && x.mark == claim; }), 1);
    ::close(server);
    ::close(app);
    ::close(other);
  }
}

// Another tool's bits of the ct mark (outside CtMark::mask) survive a re-mark.
TEST(ConntrackNeedsRootNetns, AMaskedRemarkKeepsOtherToolsBits) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  install_counter(1);  // loads conntrack in this namespace
  int server = udp_socket("127.0.0.1"), app = udp_socket("127.0.0.1");
  send_to(app, server, "first");
  Conntrack ct;
  ASSERT_TRUE(ct.set_mark(relay::Proto::udp, ep(app), ep(server), 0x1234));  // "another tool", whole mark
  const std::uint32_t claim = CtMark::encode(Verdict::claim, 5);
  ASSERT_TRUE(ct.set_mark(relay::Proto::udp, ep(app), ep(server), claim, CtMark::mask));
  EXPECT_EQ(ct.find(relay::Proto::udp, ep(app), ep(server))->mark, claim | 0x1234u);
  const std::uint32_t bypass = CtMark::encode(Verdict::bypass, 6);
  ASSERT_TRUE(ct.set_mark(relay::Proto::udp, ep(app), ep(server), bypass, CtMark::mask));
  EXPECT_EQ(ct.find(relay::Proto::udp, ep(app), ep(server))->mark, bypass | 0x1234u);
  ::close(server);
  ::close(app);
}

TEST(ConntrackNeedsRootNetns, MissingEntryIsNotAnError) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  auto in = ns.enter();
  install_counter(1);  // loads conntrack in this namespace
  Conntrack ct;
  relay::Endpoint a{make_address("127.0.0.1"), 40000}, b{make_address("127.0.0.1"), 40001};
  EXPECT_FALSE(ct.find(relay::Proto::udp, a, b).has_value());
  EXPECT_FALSE(ct.set_mark(relay::Proto::udp, a, b, 5));
}

TEST(CtMark, EncodesVerdictAndEpoch) {
  EXPECT_EQ(CtMark::encode(Verdict::bypass, 3), 0x40030000u);
  EXPECT_EQ(CtMark::encode(Verdict::claim, 0x4001), 0x80010000u);  // epoch wraps at 14 bits
  EXPECT_EQ(CtMark::encode(Verdict::claim, 0xFFFFFFFF) & ~CtMark::mask, 0u);  // never touches the low 16 bits
  EXPECT_FALSE(CtMark::verdict(0).has_value());
  EXPECT_EQ(CtMark::verdict(0x40000009), Verdict::bypass);
  EXPECT_EQ(CtMark::epoch(0x4009abcd), 9u);
}

}  // namespace
}  // namespace flowrelay::linux_host
