#include "extension/control/rule_set.hpp"

#include <gtest/gtest.h>

#include <random>

namespace flowrelay::control {
namespace {

namespace ip = boost::asio::ip;
using relay::FlowMeta;
using relay::Proto;

FlowMeta flow(Proto proto, const char* dst, std::uint16_t port) {
  FlowMeta f;
  f.proto = proto;
  f.dst = {ip::make_address(dst), port};
  f.app = {ip::make_address("192.0.2.1"), 40000};
  return f;
}

Config parse(const char* text) { return parse_config(text, PlatformCaps::any()); }

TEST(ControlRuleSet, FirstMatchWinsAndExplainNamesTheRule) {
  RuleSet rs(parse(R"({"rules": [
      {"name": "block-one", "verdict": "bypass", "dst": ["203.0.113.7/32"]},
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [443, "8000-8099"]}
    ]})"));
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "203.0.113.9", 443)), Verdict::claim);
  EXPECT_EQ(rs.explain(flow(Proto::tcp, "203.0.113.9", 8050)).rule_name, "web");
  auto e = rs.explain(flow(Proto::tcp, "203.0.113.7", 443));
  EXPECT_EQ(e.verdict, Verdict::bypass);
  EXPECT_EQ(e.rule_name, "block-one");
  EXPECT_EQ(e.rule_index, 0u);
  auto d = rs.explain(flow(Proto::udp, "203.0.113.9", 443));
  EXPECT_EQ(d.verdict, Verdict::bypass);
  EXPECT_EQ(d.rule_name, "default");
  EXPECT_FALSE(d.rule_index);
}

TEST(ControlRuleSet, DefaultClaimAppliesWhenNothingMatches) {
  RuleSet rs(parse(R"({"default": "claim", "rules": [{"verdict": "bypass", "ports": [22]}]})"));
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "10.0.0.1", 22)), Verdict::bypass);
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "10.0.0.1", 23)), Verdict::claim);
}

TEST(ControlRuleSet, V4MappedDestinationsMatchIpv4Prefixes) {
  RuleSet rs(parse(R"({"rules": [{"verdict": "claim", "dst": ["198.51.100.0/24"]}]})"));
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "::ffff:198.51.100.20", 80)), Verdict::claim);
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "198.51.100.20", 80)), Verdict::claim);
  EXPECT_EQ(rs.verdict(flow(Proto::tcp, "2001:db8::1", 80)), Verdict::bypass);
}

TEST(ControlRuleSet, IdentityFieldsNeedTheFlowToCarryThem) {
  RuleSet rs(parse(R"({"rules": [
      {"name": "u", "verdict": "claim", "uids": [1000]},
      {"name": "a", "verdict": "claim", "apps": ["com.example.*"]},
      {"name": "h", "verdict": "claim", "hosts": ["*.example.com."]}]})"));
  auto f = flow(Proto::tcp, "10.0.0.1", 443);
  EXPECT_EQ(rs.explain(f).rule_name, "default");
  f.app_identity.uid = 1000;
  EXPECT_EQ(rs.explain(f).rule_name, "u");
  f.app_identity.uid = 1001;
  f.app_identity.signing_id = "com.example.browser";
  EXPECT_EQ(rs.explain(f).rule_name, "a");
  f.app_identity.signing_id = "org.other";
  f.hostname = "WWW.Example.com.";
  EXPECT_EQ(rs.explain(f).rule_name, "h");
  f.hostname = "example.com";
  EXPECT_EQ(rs.explain(f).rule_name, "default");
}

TEST(ControlRuleSet, EmptyRuleSetUsesTheDefault) {
  RuleSet rs(parse(R"({"rules": []})"));
  EXPECT_EQ(rs.verdict(flow(Proto::udp, "::1", 53)), Verdict::bypass);
}

TEST(ControlGlob, StarAndQuestionMark) {
  EXPECT_TRUE(glob_match("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(glob_match("*.example.com", "example.com"));
  EXPECT_TRUE(glob_match("com.*.app", "com.x.y.app"));
  EXPECT_TRUE(glob_match("a?c", "abc"));
  EXPECT_FALSE(glob_match("a?c", "ac"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("**a*", "bab"));
  EXPECT_FALSE(glob_match("abc", "abcd"));
}

// ---- property test: the compiled matcher agrees with the linear reference -----------------------

struct Gen {
  std::mt19937_64 rng;
  explicit Gen(std::uint64_t seed) : rng(seed) {}
  std::size_t pick(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); }
  bool coin(int percent) { return pick(100) < static_cast<std::size_t>(percent); }

  // Addresses from a small space so that prefixes overlap and nest often.
  ip::address v4() { return ip::address_v4(0x0A000000u | (static_cast<std::uint32_t>(pick(4)) << 16) |
                                            (static_cast<std::uint32_t>(pick(4)) << 8) | static_cast<std::uint32_t>(pick(4))); }
  ip::address v6() {
    ip::address_v6::bytes_type b{};
    b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8;
    b[4] = static_cast<unsigned char>(pick(3));
    b[15] = static_cast<unsigned char>(pick(3));
    return ip::address_v6(b);
  }
  Cidr cidr() {
    bool six = coin(30);
    ip::address a = six ? v6() : v4();
    int max = six ? 128 : 32;
    static const int v4_lens[] = {0, 8, 14, 16, 22, 24, 30, 32};
    static const int v6_lens[] = {0, 32, 40, 64, 127, 128};
    int len = six ? v6_lens[pick(6)] : v4_lens[pick(8)];
    // Canonicalise the way the parser would.
    if (a.is_v4()) {
      std::uint32_t mask = len == 0 ? 0 : ~0u << (max - len);
      a = ip::address_v4(a.to_v4().to_uint() & mask);
    } else {
      auto b = a.to_v6().to_bytes();
      for (int i = 0; i < 16; ++i) {
        int bits = std::clamp(len - i * 8, 0, 8);
        b[i] &= static_cast<unsigned char>(bits == 0 ? 0 : 0xFF << (8 - bits));
      }
      a = ip::address_v6(b);
    }
    return {a, static_cast<std::uint8_t>(len)};
  }
  std::uint16_t port() {
    static const std::uint16_t edge[] = {1, 2, 79, 80, 81, 443, 8000, 65534, 65535};
    return coin(50) ? edge[pick(9)] : static_cast<std::uint16_t>(1 + pick(100));
  }
  std::string glob(bool host) {
    static const char* apps[] = {"com.a.*", "com.a.x", "*.x", "com.?.x", "*", "com.*.y*", "org.b"};
    static const char* hosts[] = {"*.a.com", "a.com", "x.a.com", "*", "?.a.com", "*a*", "b.org"};
    return host ? hosts[pick(7)] : apps[pick(7)];
  }

  Rule rule(std::size_t i) {
    Rule r;
    r.name = "r" + std::to_string(i);
    r.verdict = coin(50) ? Verdict::claim : Verdict::bypass;
    r.proto = static_cast<ProtoMatch>(pick(3));
    if (coin(60)) for (std::size_t k = 0, n = 1 + pick(3); k < n; ++k) r.dst.push_back(cidr());
    if (coin(50)) {
      for (std::size_t k = 0, n = 1 + pick(3); k < n; ++k) {
        auto a = port(), b = port();
        r.ports.push_back({std::min(a, b), coin(50) ? std::min(a, b) : std::max(a, b)});
      }
    }
    if (coin(20)) for (std::size_t k = 0, n = 1 + pick(2); k < n; ++k) r.uids.push_back(static_cast<std::uint32_t>(pick(4)));
    if (coin(20)) for (std::size_t k = 0, n = 1 + pick(2); k < n; ++k) r.apps.push_back(glob(false));
    if (coin(20)) for (std::size_t k = 0, n = 1 + pick(2); k < n; ++k) r.hosts.push_back(glob(true));
    return r;
  }

  FlowMeta flow() {
    FlowMeta f;
    f.proto = coin(50) ? Proto::tcp : Proto::udp;
    ip::address a = coin(30) ? v6() : v4();
    if (a.is_v4() && coin(20)) a = ip::make_address_v6(ip::v4_mapped, a.to_v4());
    f.dst = {a, port()};
    if (coin(70)) f.app_identity.uid = static_cast<std::uint32_t>(pick(5));
    static const char* ids[] = {"", "com.a.x", "com.b.x", "com.a.y", "org.b", "com.c.yy", "x"};
    static const char* hosts[] = {"", "a.com", "x.a.com", "X.A.COM", "y.a.com.", "b.org", "ab.a.com"};
    f.app_identity.signing_id = ids[pick(7)];
    f.hostname = hosts[pick(7)];
    return f;
  }
};

// Thousands of rules over the whole address and port space, flows aimed at range edges: reaches
// the lookup tables that only large sets build (IPv4 by /16 bucket, ports direct).
TEST(ControlRuleSetLarge, AgreesWithLinearReferenceAtRangeEdges) {
  std::mt19937_64 rng(7);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  Config cfg;
  for (std::size_t i = 0; i < 3000; ++i) {
    Rule r;
    r.name = std::to_string(i);
    r.verdict = pick(2) ? Verdict::claim : Verdict::bypass;
    r.proto = static_cast<ProtoMatch>(pick(3));
    if (pick(10) < 9) {
      int len = static_cast<int>(8 + pick(25));
      std::uint32_t a = static_cast<std::uint32_t>(pick(1ULL << 32)) & (len == 32 ? ~0u : ~(~0u >> len));
      r.dst.push_back({ip::address_v4(a), static_cast<std::uint8_t>(len)});
    }
    if (pick(2)) {
      auto lo = static_cast<std::uint16_t>(1 + pick(65535));
      auto hi = static_cast<std::uint16_t>(std::min<std::uint64_t>(65535, lo + pick(3) * pick(2000)));
      r.ports.push_back({lo, hi});
    }
    cfg.rules.push_back(std::move(r));
  }
  for (auto options : {MatcherOptions{}, MatcherOptions{false, false}}) {
    RuleSet rs(cfg, options);
    std::size_t matched = 0;
    for (int k = 0; k < 20000; ++k) {
      const Rule& r = cfg.rules[pick(cfg.rules.size())];
      FlowMeta f;
      f.proto = pick(2) ? Proto::tcp : Proto::udp;
      std::uint32_t a = static_cast<std::uint32_t>(pick(1ULL << 32));
      if (!r.dst.empty()) {
        std::uint32_t net = r.dst[0].network.to_v4().to_uint();
        std::uint32_t last = net | (r.dst[0].prefix == 32 ? 0u : ~0u >> r.dst[0].prefix);
        const std::uint32_t edges[] = {net, last, net - 1, last + 1, net + static_cast<std::uint32_t>(pick(256))};
        a = edges[pick(5)];
      }
      f.dst.address = ip::address_v4(a);
      std::uint16_t port = static_cast<std::uint16_t>(1 + pick(65535));
      if (!r.ports.empty()) {
        const std::uint16_t edges[] = {r.ports[0].lo, r.ports[0].hi, static_cast<std::uint16_t>(r.ports[0].lo - 1),
                                       static_cast<std::uint16_t>(r.ports[0].hi + 1)};
        port = edges[pick(4)];
      }
      f.dst.port = port;
      std::optional<std::size_t> expected;
      for (std::size_t i = 0; i < cfg.rules.size(); ++i)
        if (matches_linear(cfg.rules[i], f)) { expected = i; break; }
      ASSERT_EQ(rs.first_match(f), expected) << f.dst.to_string() << " " << to_string(f.proto);
      matched += expected.has_value();
    }
    EXPECT_GT(matched, 5000u);
  }
}

class ControlRuleSetProperty : public ::testing::TestWithParam<MatcherOptions> {};

TEST_P(ControlRuleSetProperty, CompiledMatcherAgreesWithLinearReference) {
  Gen g(20261127);
  std::size_t claims = 0, defaults = 0, checked = 0;
  for (int round = 0; round < 300; ++round) {
    Config cfg;
    cfg.default_verdict = g.coin(50) ? Verdict::claim : Verdict::bypass;
    // Most sets are small; some span several bitset words, index buckets and >128 hits a lookup.
    std::size_t n = 1 + g.pick(round < 250 ? 40 : 600);
    for (std::size_t i = 0; i < n; ++i) cfg.rules.push_back(g.rule(i));
    RuleSet rs(cfg, GetParam());
    for (int k = 0; k < 200; ++k) {
      FlowMeta f = g.flow();
      std::optional<std::size_t> expected;
      for (std::size_t i = 0; i < cfg.rules.size(); ++i)
        if (matches_linear(cfg.rules[i], f)) { expected = i; break; }
      auto got = rs.explain(f);
      ASSERT_EQ(got.rule_index, expected) << "round " << round << " flow to " << f.dst.to_string() << " "
                                          << to_string(f.proto) << " host=" << f.hostname
                                          << " app=" << f.app_identity.signing_id;
      EXPECT_EQ(got.verdict, expected ? cfg.rules[*expected].verdict : cfg.default_verdict);
      ++checked;
      if (!expected) ++defaults;
      if (got.verdict == Verdict::claim) ++claims;
    }
  }
  // The generator must exercise both outcomes, or the agreement above says little.
  EXPECT_GT(defaults, checked / 20);
  EXPECT_LT(defaults, checked - checked / 20);
  EXPECT_GT(claims, checked / 10);
}

INSTANTIATE_TEST_SUITE_P(Paths, ControlRuleSetProperty,
                         ::testing::Values(MatcherOptions{true, true}, MatcherOptions{false, false},
                                           MatcherOptions{true, false}, MatcherOptions{false, true}),
                         [](const ::testing::TestParamInfo<MatcherOptions>& i) {
                           return std::string(i.param.flatten ? "flat" : "tree") + (i.param.hit_table ? "_hash" : "_sort");
                         });

}  // namespace
}  // namespace flowrelay::control
