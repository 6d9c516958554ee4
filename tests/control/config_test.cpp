#include "extension/control/config.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace flowrelay::control {
namespace {

const char* kDesignExample = R"({
  "default": "bypass",
  "rules": [
    {"name": "web", "verdict": "claim", "proto": "tcp",
     "dst": ["203.0.113.0/24", "2001:db8::/32"], "ports": [443, "8000-8099"],
     "uids": [1000]}
  ],
  "reclaim": {"policy": "surgical", "debounce_ms": 250, "drain_ms": 2000, "min_restart_interval_ms": 10000},
  "limits": {"connect_timeout_ms": 5000, "tcp_idle_timeout_s": 3600, "udp_idle_timeout_s": 60,
             "flow_buffer_bytes": 262144, "max_flows": 65536},
  "linux": {"tproxy_port": 7893, "fwmark": 1, "route_table": 100, "bypass_mark": 255},
  "control": {"socket": "/run/flowrelay.sock"},
  "metrics": {"listen": "127.0.0.1:9464"}
})";

TEST(ControlConfig, DesignExampleParses) {
  Config c = parse_config(kDesignExample, PlatformCaps::for_linux());
  EXPECT_EQ(c.default_verdict, Verdict::bypass);
  ASSERT_EQ(c.rules.size(), 1u);
  const Rule& r = c.rules[0];
  EXPECT_EQ(r.name, "web");
  EXPECT_EQ(r.verdict, Verdict::claim);
  EXPECT_EQ(r.proto, ProtoMatch::tcp);
  ASSERT_EQ(r.dst.size(), 2u);
  EXPECT_EQ(r.dst[0].to_string(), "203.0.113.0/24");
  EXPECT_EQ(r.dst[1].to_string(), "2001:db8::/32");
  ASSERT_EQ(r.ports.size(), 2u);
  EXPECT_EQ(r.ports[0], (PortRange{443, 443}));
  EXPECT_EQ(r.ports[1], (PortRange{8000, 8099}));
  EXPECT_EQ(r.uids, std::vector<std::uint32_t>{1000});
  EXPECT_EQ(c.linux_settings.tproxy_port, 7893);
  EXPECT_EQ(c.linux_settings.bypass_mark, 255u);
}

TEST(ControlConfig, DefaultsApplyWhenSectionsAreAbsent) {
  Config c = parse_config(R"({"rules": []})", PlatformCaps::for_linux());
  EXPECT_EQ(c.default_verdict, Verdict::bypass);
  EXPECT_TRUE(c.rules.empty());
  EXPECT_EQ(c.reclaim.policy, ReclaimPolicy::surgical);
  EXPECT_EQ(c.reclaim.debounce.count(), 250);
  EXPECT_EQ(c.reclaim.drain.count(), 2000);
  EXPECT_EQ(c.reclaim.min_restart_interval.count(), 10000);
  EXPECT_EQ(c.limits.connect_timeout.count(), 5000);
  EXPECT_EQ(c.limits.tcp_idle_timeout.count(), 3600);
  EXPECT_EQ(c.limits.udp_idle_timeout.count(), 60);
  EXPECT_EQ(c.limits.flow_buffer_bytes, 262144u);
  EXPECT_EQ(c.limits.max_flows, 65536u);
  EXPECT_EQ(c.limits.max_udp_flows, 16384u);  // a UDP spray leaves three quarters to TCP
  EXPECT_EQ(c.limits.max_buffer_bytes, 1ULL << 30);
  EXPECT_EQ(c.linux_settings.fwmark, 1u);
  EXPECT_EQ(c.linux_settings.route_table, 100u);
  EXPECT_EQ(c.control_socket, "/run/flowrelay.sock");
  EXPECT_EQ(c.metrics_listen, "127.0.0.1:9464");
}

TEST(ControlConfig, UnnamedRulesAreNamedByIndexAndHostsAreLowerCased) {
  Config c = parse_config(R"({"rules": [{"verdict": "claim"}, {"verdict": "bypass", "hosts": ["*.Example.COM"]}]})",
                          PlatformCaps::for_apple());
  EXPECT_EQ(c.rules[0].name, "rules[0]");
  EXPECT_EQ(c.rules[1].hosts[0], "*.example.com");
}

TEST(ControlConfig, WhitespaceDoesNotChangeTheContentHashButContentDoes) {
  auto a = parse_config(R"({"rules": [{"verdict": "claim"}]})", PlatformCaps::any());
  auto b = parse_config("{\n  \"rules\" : [ { \"verdict\" : \"claim\" } ]\n}\n", PlatformCaps::any());
  auto c = parse_config(R"({"rules": [{"verdict": "bypass"}]})", PlatformCaps::any());
  EXPECT_EQ(a.content_hash, b.content_hash);
  EXPECT_NE(a.content_hash, c.content_hash);
}

TEST(ControlConfig, PlatformDecidesWhichMatchFieldsAreAllowed) {
  EXPECT_NO_THROW(parse_config(R"({"rules": [{"verdict": "claim", "uids": [0]}]})", PlatformCaps::for_linux()));
  EXPECT_NO_THROW(parse_config(R"({"rules": [{"verdict": "claim", "apps": ["com.a.*"], "hosts": ["a.b"]}]})",
                               PlatformCaps::for_apple()));
}

TEST(ControlConfig, GatewayNamesInterfacesAndSourceNetworksAndIsOffByDefault) {
  EXPECT_FALSE(parse_config(R"({"rules": []})", PlatformCaps::for_linux()).linux_settings.gateway.enabled());
  Config c = parse_config(
      R"({"rules": [], "linux": {"gateway": {"interfaces": ["veth-lan", "br0"], "sources": ["10.9.0.0/24", "fd00:9::/64"]}}})",
      PlatformCaps::for_linux());
  const auto& g = c.linux_settings.gateway;
  EXPECT_TRUE(g.enabled());
  EXPECT_EQ(g.interfaces, (std::vector<std::string>{"veth-lan", "br0"}));
  ASSERT_EQ(g.sources.size(), 2u);
  EXPECT_EQ(g.sources[0].to_string(), "10.9.0.0/24");
  EXPECT_EQ(g.sources[1].to_string(), "fd00:9::/64");
  // One list alone is enough.
  EXPECT_TRUE(parse_config(R"({"rules": [], "linux": {"gateway": {"sources": ["10.9.0.0/24"]}}})",
                           PlatformCaps::for_linux()).linux_settings.gateway.enabled());
}

TEST(ControlConfig, EditDistanceCountsATranspositionAsOne) {
  EXPECT_EQ(edit_distance("verdcit", "verdict"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("port", "ports"), 1u);
}

// An attacker-sized unknown key: the "did you mean" search stays bounded (no edit-distance table
// over 100 kB) and the error names the key without echoing all of it.
TEST(ControlConfig, AHundredKilobyteUnknownKeyIsRejectedQuicklyWithAShortMessage) {
  const std::string key(100'000, 'k');
  for (const std::string& text : {R"({"rules": [], ")" + key + R"(": 1})",
                                  R"({"rules": [{"verdict": "claim", ")" + key + R"(": 1}]})",
                                  R"({"rules": [], ")" + key + R"(": 1, ")" + key + R"(": 2})"}) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      parse_config(text, PlatformCaps::for_linux());
      ADD_FAILURE() << "accepted";
    } catch (const ConfigError& e) {
      const auto took = std::chrono::steady_clock::now() - t0;
      EXPECT_LT(took, std::chrono::milliseconds(500));
      EXPECT_LT(std::string(e.what()).size(), 300u) << std::string(e.what()).substr(0, 300);
      EXPECT_NE(e.path().find("kkkk"), std::string::npos) << e.path().substr(0, 300);
      EXPECT_NE(e.path().find("100000 bytes"), std::string::npos) << e.path().substr(0, 300);
    }
  }
}

TEST(ControlConfig, AnAttackerSizedValueIsQuotedOnlyInPart) {
  try {
    parse_config(R"({"rules": [], "reclaim": {"policy": ")" + std::string(100'000, 'p') + R"("}})",
                 PlatformCaps::for_linux());
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), "reclaim.policy");
    EXPECT_LE(e.message().size(), 400u) << e.message().substr(0, 500);
    EXPECT_NE(e.message().find("pppp...(100038 bytes)...pppp"), std::string::npos) << e.message().substr(0, 500);
    EXPECT_TRUE(e.message().ends_with("pppp\" is not one of surgical|restart|keep")) << e.message().substr(0, 500);
  }
}

TEST(ControlConfig, UpstreamsAndViaParseAndARuleWithoutViaGoesDirect) {
  const Config c = parse_config(R"({
    "upstreams": {"corp": {"type": "socks5", "address": "192.0.2.2:1080", "username": "alice",
                           "password_file": "/etc/flowrelay/corp.pass"},
                  "web": {"type": "http", "address": "[2001:db8::2]:8888"}},
    "rules": [{"name": "a", "verdict": "claim", "proto": "tcp", "ports": [443], "via": "corp"},
              {"name": "b", "verdict": "claim", "proto": "tcp", "ports": [80], "via": "web"},
              {"name": "c", "verdict": "claim", "ports": [53]}]})",
                                PlatformCaps::for_linux());
  ASSERT_EQ(c.upstreams.size(), 2u);
  const Upstream* corp = c.upstream("corp");
  ASSERT_NE(corp, nullptr);
  EXPECT_EQ(corp->kind, Upstream::Kind::socks5);
  EXPECT_EQ(corp->address.to_string(), "192.0.2.2");
  EXPECT_EQ(corp->port, 1080);
  EXPECT_EQ(corp->username, "alice");
  EXPECT_EQ(corp->password_file, "/etc/flowrelay/corp.pass");
  const Upstream* web = c.upstream("web");
  ASSERT_NE(web, nullptr);
  EXPECT_EQ(web->kind, Upstream::Kind::http);
  EXPECT_EQ(web->address.to_string(), "2001:db8::2");
  EXPECT_EQ(c.upstream("nope"), nullptr);
  EXPECT_EQ(c.rules[0].via, "corp");
  EXPECT_EQ(c.rules[1].via, "web");
  EXPECT_EQ(c.rules[2].via, "");
}

struct BadCase {
  const char* name;
  std::string text;
  std::string path;          // exact path expected
  std::string message_part;  // a piece the message must contain
  PlatformCaps platform = PlatformCaps::for_linux();
};

std::string rule(const std::string& body) { return R"({"rules": [{"verdict": "claim", )" + body + "}]}"; }
/// A config with upstreams "corp" (SOCKS5) and "web" (HTTP CONNECT) and one rule.
std::string with_upstreams(const std::string& rule_json) {
  return R"({"upstreams": {"corp": {"type": "socks5", "address": "192.0.2.2:1080"},
                           "web": {"type": "http", "address": "[2001:db8::2]:8888"}},
            "rules": [)" + rule_json + "]}";
}
std::string section(const std::string& name, const std::string& body) {
  return R"({"rules": [], ")" + name + R"(": {)" + body + "}}";
}

const BadCase kBad[] = {
    {"not_json", "{\"rules\": [", "line 1, column 12", "not JSON"},
    {"trailing_comma", "{\"rules\": [],\n}", "line 2, column 1", "not JSON"},
    {"comment", "{\"rules\": [] // c\n}", "line 1, column 14", "not JSON"},
    {"empty_file", "   \n", "", "empty file"},
    {"not_utf8", "{\"rules\": [{\"verdict\": \"claim\", \"name\": \"caf\xe9\"}]}", "line 1, column 45", "not UTF-8"},
    {"overlong_utf8", "{\"rules\": []}\xc0\xaf", "line 1, column 14", "not UTF-8"},
    {"root_not_object", "[1, 2]", "", "must be an object"},
    {"unknown_top_key_suggested", R"({"rules": [], "reclaimm": {}})", "reclaimm", "did you mean \"reclaim\""},
    {"unknown_top_key", R"({"rules": [], "zzz": 1})", "zzz", "unknown key (expected one of"},
    {"rules_missing", R"({"default": "claim"})", "rules", "missing"},
    {"rules_not_array", R"({"rules": {}})", "rules", "must be an array"},
    {"default_bad", R"({"rules": [], "default": "allow"})", "default", "\"allow\" is not one of claim|bypass"},
    {"rule_not_object", R"({"rules": ["web"]})", "rules[0]", "must be an object"},
    {"verdict_typo", R"({"rules": [{"verdict": "claim"}, {"verdcit": "claim"}]})", "rules[1].verdcit",
     "did you mean \"verdict\"?"},
    {"verdict_missing", R"({"rules": [{"name": "x"}]})", "rules[0].verdict", "missing"},
    {"verdict_bad", R"({"rules": [{"verdict": "proxy"}]})", "rules[0].verdict", "is not one of claim|bypass"},
    {"proto_bad", rule(R"("proto": "sctp")"), "rules[0].proto", "\"sctp\" is not one of tcp|udp|any"},
    {"name_empty", rule(R"("name": "")"), "rules[0].name", "must not be empty"},
    {"name_not_string", rule(R"("name": 7)"), "rules[0].name", "must be a string"},
    {"duplicate_name",
     R"({"rules": [{"name": "web", "verdict": "claim"}, {"name": "x", "verdict": "claim"}, {"name": "web", "verdict": "bypass"}]})",
     "rules[2].name", "duplicate rule name \"web\" (first used by rules[0])"},
    {"dst_empty", rule(R"("dst": [])"), "rules[0].dst", "empty list"},
    {"dst_not_array", rule(R"("dst": "10.0.0.0/8")"), "rules[0].dst", "must be an array"},
    {"dst_host_bits", rule(R"("dst": ["10.0.0.0/8", "203.0.113.7/24"])"), "rules[0].dst[1]",
     "has host bits set; did you mean \"203.0.113.0/24\"?"},
    {"dst_host_bits_v6", rule(R"("dst": ["2001:db8::1/32"])"), "rules[0].dst[0]", "did you mean \"2001:db8::/32\"?"},
    {"dst_prefix_too_long", rule(R"("dst": ["10.0.0.0/33"])"), "rules[0].dst[0]", "too long for IPv4"},
    {"dst_prefix_too_long_v6", rule(R"("dst": ["::/129"])"), "rules[0].dst[0]", "too long for IPv6"},
    {"dst_prefix_garbage", rule(R"("dst": ["10.0.0.0/x"])"), "rules[0].dst[0]", "bad prefix length"},
    {"dst_not_address", rule(R"("dst": ["10.0.0.256/32"])"), "rules[0].dst[0]", "is not an IP address"},
    {"dst_hostname", rule(R"("dst": ["example.com"])"), "rules[0].dst[0]", "is not an IP address"},
    {"dst_v4_mapped", rule(R"("dst": ["::ffff:10.0.0.0/104"])"), "rules[0].dst[0]",
     "v4-mapped IPv6 prefix; write \"10.0.0.0/8\""},
    {"dst_duplicate", rule(R"("dst": ["10.0.0.0/8", "10.0.0.0/8"])"), "rules[0].dst[1]", "duplicate of dst[0]"},
    {"dst_number", rule(R"("dst": [10])"), "rules[0].dst[0]", "must be a string"},
    {"ports_empty", rule(R"("ports": [])"), "rules[0].ports", "empty list"},
    {"port_too_big", R"({"rules": [{"verdict": "claim"}, {"verdict": "claim"}, {"verdict": "claim", "ports": [70000]}]})",
     "rules[2].ports[0]", "70000 is not a port (1-65535)"},
    {"port_zero", rule(R"("ports": [443, 0])"), "rules[0].ports[1]", "0 is not a port (1-65535)"},
    {"port_negative", rule(R"("ports": [-1])"), "rules[0].ports[0]", "-1 is not a port"},
    {"port_float", rule(R"("ports": [44.5])"), "rules[0].ports[0]", "must be a port number or a range"},
    {"port_range_inverted", rule(R"("ports": ["8099-8000"])"), "rules[0].ports[0]", "is inverted"},
    {"port_range_garbage", rule(R"("ports": ["80-http"])"), "rules[0].ports[0]", "is not a port or a range"},
    {"port_range_too_big", rule(R"("ports": ["1000-70000"])"), "rules[0].ports[0]", "70000 is not a port"},
    {"uids_on_apple", rule(R"("uids": [1000])"), "rules[0].uids", "not supported on apple", PlatformCaps::for_apple()},
    {"apps_on_linux", rule(R"("apps": ["com.example.*"])"), "rules[0].apps", "not supported on linux"},
    {"hosts_on_linux", rule(R"("hosts": ["*.example.com"])"), "rules[0].hosts", "not supported on linux"},
    {"uid_negative", rule(R"("uids": [-3])"), "rules[0].uids[0]", "must not be negative"},
    {"uid_too_big", rule(R"("uids": [4294967295])"), "rules[0].uids[0]", "too large"},
    {"uids_empty", rule(R"("uids": [])"), "rules[0].uids", "empty list"},
    {"host_bad", rule(R"("hosts": ["exa mple.com"])"), "rules[0].hosts[0]", "not a hostname pattern",
     PlatformCaps::for_apple()},
    {"app_empty", rule(R"("apps": [""])"), "rules[0].apps[0]", "not a signing identifier pattern",
     PlatformCaps::for_apple()},
    {"policy_bad", section("reclaim", R"("policy": "graceful")"), "reclaim.policy", "is not one of surgical|restart|keep"},
    {"debounce_negative", section("reclaim", R"("debounce_ms": -5)"), "reclaim.debounce_ms", "-5 must not be negative"},
    {"debounce_absurd", section("reclaim", R"("debounce_ms": 3600000)"), "reclaim.debounce_ms", "too large (at most 60000)"},
    {"drain_string", section("reclaim", R"("drain_ms": "2s")"), "reclaim.drain_ms", "must be an integer"},
    {"restart_interval_typo", section("reclaim", R"("min_restart_interval": 5)"), "reclaim.min_restart_interval",
     "did you mean \"min_restart_interval_ms\"?"},
    {"connect_timeout_zero", section("limits", R"("connect_timeout_ms": 0)"), "limits.connect_timeout_ms", "too small"},
    {"idle_absurd", section("limits", R"("tcp_idle_timeout_s": 99999999)"), "limits.tcp_idle_timeout_s", "too large"},
    {"udp_idle_negative", section("limits", R"("udp_idle_timeout_s": -1)"), "limits.udp_idle_timeout_s", "must not be negative"},
    {"buffer_tiny", section("limits", R"("flow_buffer_bytes": 16)"), "limits.flow_buffer_bytes", "too small"},
    {"max_flows_float", section("limits", R"("max_flows": 1e6)"), "limits.max_flows", "must be an integer"},
    {"max_udp_flows_zero", section("limits", R"("max_udp_flows": 0)"), "limits.max_udp_flows", "too small"},
    {"max_buffer_tiny", section("limits", R"("max_buffer_bytes": 65536)"), "limits.max_buffer_bytes", "too small"},
    {"tproxy_port_bad", section("linux", R"("tproxy_port": 65536)"), "linux.tproxy_port", "not a port"},
    {"fwmark_zero", section("linux", R"("fwmark": 0)"), "linux.fwmark", "too small"},
    {"route_table_main", section("linux", R"("route_table": 254)"), "linux.route_table", "reserved table (main)"},
    {"bypass_equals_fwmark", section("linux", R"("fwmark": 7, "bypass_mark": 7)"), "linux.bypass_mark",
     "equals fwmark (7)"},
    {"fwmark_equals_default_bypass", section("linux", R"("fwmark": 255)"), "linux.fwmark",
     "equals bypass_mark (255, the default)"},
    {"linux_unknown", section("linux", R"("mark": 1)"), "linux.mark", "unknown key"},
    {"gateway_not_object", section("linux", R"("gateway": ["veth-lan"])"), "linux.gateway", "must be an object"},
    {"gateway_empty", section("linux", R"("gateway": {})"), "linux.gateway", "names no interface and no source network"},
    {"gateway_unknown_key", section("linux", R"("gateway": {"interface": ["veth-lan"]})"), "linux.gateway.interface",
     "did you mean \"interfaces\"?"},
    {"gateway_empty_name", section("linux", R"("gateway": {"interfaces": [""]})"), "linux.gateway.interfaces[0]",
     "empty interface name"},
    {"gateway_long_name", section("linux", R"("gateway": {"interfaces": ["eth0", "a-very-long-ifname"]})"),
     "linux.gateway.interfaces[1]", "not an interface name"},
    {"gateway_name_slash", section("linux", R"("gateway": {"interfaces": ["br/0"]})"), "linux.gateway.interfaces[0]",
     "not an interface name"},
    {"gateway_duplicate_name", section("linux", R"("gateway": {"interfaces": ["br0", "br0"]})"),
     "linux.gateway.interfaces[1]", "duplicate of interfaces[0]"},
    {"gateway_no_interfaces", section("linux", R"("gateway": {"interfaces": []})"), "linux.gateway.interfaces",
     "empty list"},
    {"gateway_bad_cidr", section("linux", R"("gateway": {"sources": ["10.9.0.0/33"]})"), "linux.gateway.sources[0]",
     "too long for IPv4"},
    {"gateway_host_bits", section("linux", R"("gateway": {"sources": ["10.9.0.1/24"]})"), "linux.gateway.sources[0]",
     "did you mean \"10.9.0.0/24\"?"},
    {"gateway_not_cidr", section("linux", R"("gateway": {"sources": ["lan"]})"), "linux.gateway.sources[0]",
     "not an IP address or prefix"},
    {"gateway_on_apple", section("linux", R"("gateway": {"interfaces": ["en0"]})"), "linux.gateway",
     "not supported on apple", PlatformCaps::for_apple()},
    {"socket_relative", section("control", R"("socket": "flowrelay.sock")"), "control.socket", "absolute path"},
    {"metrics_bad", section("metrics", R"("listen": "localhost")"), "metrics.listen", "is not ADDRESS:PORT"},
    {"metrics_port_bad", section("metrics", R"("listen": "127.0.0.1:99999")"), "metrics.listen", "not a port"},
    {"metrics_v6_unbracketed", section("metrics", R"("listen": "::1:9464")"), "metrics.listen", "in brackets"},
    {"duplicate_top_key", R"({"rules": [{"verdict": "claim"}], "rules": []})", "rules",
     "duplicate key"},
    {"duplicate_nested_key", R"({"rules": [{"verdict": "claim"}, {"verdict": "claim", "ports": [1], "verdict": "bypass"}]})",
     "rules[1].verdict", "duplicate key"},
    {"duplicate_section_key", R"({"rules": [], "linux": {"fwmark": 2, "fwmark": 3}})", "linux.fwmark", "duplicate key"},
    {"section_not_object", R"({"rules": [], "limits": []})", "limits", "must be an object"},
    {"via_unknown_suggested", with_upstreams(R"({"verdict": "claim", "proto": "tcp", "via": "crop"})"), "rules[0].via",
     "no upstream named \"crop\"; did you mean \"corp\"?"},
    {"via_without_upstreams", rule(R"("proto": "tcp", "via": "corp")"), "rules[0].via", "the config has no \"upstreams\""},
    {"via_on_bypass", with_upstreams(R"({"verdict": "bypass", "proto": "tcp", "via": "corp"})"), "rules[0].via",
     "only a claim rule"},
    {"via_http_for_udp", with_upstreams(R"({"verdict": "claim", "proto": "udp", "via": "web"})"), "rules[0].via",
     "HTTP CONNECT proxy, which carries TCP only"},
    {"via_socks_for_any", with_upstreams(R"({"verdict": "claim", "via": "corp"})"), "rules[0].via",
     "set \"proto\": \"tcp\""},
    {"via_on_apple", rule(R"("proto": "tcp", "via": "corp")"), "rules[0].via", "not supported on apple",
     PlatformCaps::for_apple()},
    {"upstream_type_bad", section("upstreams", R"("corp": {"type": "socks4", "address": "192.0.2.2:1080"})"),
     "upstreams.corp.type", "is not one of socks5|http"},
    {"upstream_address_missing", section("upstreams", R"("corp": {"type": "socks5"})"), "upstreams.corp.address",
     "missing"},
    {"upstream_address_name", section("upstreams", R"("corp": {"type": "socks5", "address": "proxy.corp:1080"})"),
     "upstreams.corp.address", "is not ADDRESS:PORT"},
    {"upstream_user_without_file",
     section("upstreams", R"("corp": {"type": "socks5", "address": "192.0.2.2:1080", "username": "u"})"),
     "upstreams.corp.password_file", "never written in the config"},
    {"upstream_password_inline",
     section("upstreams", R"("corp": {"type": "socks5", "address": "192.0.2.2:1080", "password": "x"})"),
     "upstreams.corp.password", "did you mean \"password_file\"?"},
    {"upstream_name_bad", section("upstreams", R"("co rp": {"type": "socks5", "address": "192.0.2.2:1080"})"),
     "upstreams.co rp", "letters, digits"},
};

class ControlBadConfig : public testing::TestWithParam<BadCase> {};

TEST_P(ControlBadConfig, IsRejectedWithItsPath) {
  const BadCase& c = GetParam();
  try {
    parse_config(c.text, c.platform);
    FAIL() << "accepted: " << c.text;
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.path(), c.path) << e.what();
    EXPECT_NE(e.message().find(c.message_part), std::string::npos) << e.what();
    std::string shown = c.path.empty() ? "config" : c.path;
    EXPECT_EQ(std::string(e.what()).rfind(shown + ": ", 0), 0u) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ControlBadConfig, testing::ValuesIn(kBad),
                         [](const testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(ControlBadConfigTable, HoldsAtLeastFortyCases) { EXPECT_GE(std::size(kBad), 40u); }

}  // namespace
}  // namespace flowrelay::control
