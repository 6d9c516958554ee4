// `flowrelay run` with upstreams (issue 11): a claimed flow whose rule names an upstream leaves
// through that proxy, a real danted in the world namespace; the far server tells which way a flow
// came by the peer it sees (through danted: the world's own address; direct: the app's). With the
// proxy gone, new flows fail within the connect timeout, are counted, and never go direct.

#include "tests/linux/child_process.hpp"
#include "tests/linux/daemon_harness.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr std::uint16_t kProxyPort = 1080;
constexpr std::uint16_t kViaPort = 8443;  // claimed via "corp"; 443 stays claimed and direct
constexpr std::uint16_t kHttpProxyPort = 8888;
constexpr std::uint16_t kViaHttpPort = 8444;  // claimed via "web", an HTTP CONNECT proxy

std::string upstream_config(const std::string& socket, const std::string& upstream_extra = "") {
  return R"({"default": "bypass",
    "upstreams": {"corp": {"type": "socks5", "address": "203.0.113.10:)" + std::to_string(kProxyPort) + "\"" +
         upstream_extra + R"(},
                  "web": {"type": "http", "address": "203.0.113.10:)" + std::to_string(kHttpProxyPort) + R"("}},
    "rules": [
      {"name": "proxied", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [)" +
         std::to_string(kViaPort) + R"(], "via": "corp"},
      {"name": "web-proxied", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [)" +
         std::to_string(kViaHttpPort) + R"(], "via": "web"},
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24"], "ports": [443]}],
    "limits": {"connect_timeout_ms": 1000},
    "reclaim": {"policy": "surgical", "debounce_ms": 20, "drain_ms": 200},
    "metrics": {"listen": "127.0.0.1:9464"},
    "control": {"socket": ")" + socket + R"("}})";
}

constexpr const char* kUser = "relayuser";
constexpr const char* kPassword = "s3cret";

/// danted in the world namespace on 203.0.113.10:1080, sending from the same address. With
/// `with_user` it asks for a username and password (RFC 1929) and checks them against the system's
/// password files, which it sees in a private mount namespace with kUser added: the host's own
/// /etc/passwd and /etc/shadow are never touched.
std::unique_ptr<ChildProcess> start_danted(const World& w, const TempDir& dir, bool with_user = false) {
  if (!std::filesystem::exists("/usr/sbin/danted")) return nullptr;
  const std::string conf = dir.file("danted.conf");
  std::ofstream(conf) << "logoutput: stderr\n"
                      << "internal: 203.0.113.10 port = " << kProxyPort << "\n"
                      << "external: 203.0.113.10\n"
                      << "clientmethod: none\nsocksmethod: " << (with_user ? "username" : "none") << "\n"
                      << "user.privileged: root\nuser.unprivileged: nobody\n"
                      << "client pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n"
                      << "socks pass { from: 0.0.0.0/0 to: 0.0.0.0/0 }\n";
  std::vector<std::string> args{"/usr/sbin/danted", "-f", conf, "-N", "1"};
  if (with_user) {
    const std::string passwd = dir.file("passwd"), shadow = dir.file("shadow");
    auto [rc, out] = sh("cp /etc/passwd " + passwd + " && cp /etc/shadow " + shadow + " && echo '" + kUser +
                        ":x:64000:64000::/nonexistent:/usr/sbin/nologin' >> " + passwd + " && echo \"" + kUser +
                        ":$(openssl passwd -6 " + kPassword + "):19000:0:99999:7:::\" >> " + shadow);
    EXPECT_EQ(rc, 0) << out;
    args = {"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
            "mount --bind " + passwd + " /etc/passwd && mount --bind " + shadow + " /etc/shadow && exec /usr/sbin/danted -f " +
                conf + " -N 1"};
  }
  auto p = std::make_unique<ChildProcess>(args, dir.file("danted.log"), ChildProcess::Options{w.world.fd()});
  auto in = w.world.enter();
  const bool up = eventually([] {  // listening, read from the namespace's own table
    auto [rc, out] = sh("ss -Hltn 'sport = :" + std::to_string(kProxyPort) + "'");
    return rc == 0 && !out.empty();
  });
  EXPECT_TRUE(up) << read_text(dir.file("danted.log"));
  return p;
}

/// tinyproxy in the world namespace on 203.0.113.10:8888, connecting out from the same address.
std::unique_ptr<ChildProcess> start_tinyproxy(const World& w, const TempDir& dir) {
  if (!std::filesystem::exists("/usr/bin/tinyproxy")) return nullptr;
  const std::string conf = dir.file("tinyproxy.conf");
  std::ofstream(conf) << "Port " << kHttpProxyPort << "\nListen 203.0.113.10\nBind 203.0.113.10\n"
                      << "Timeout 30\nMaxClients 20\nAllow 192.0.2.0/24\nLogLevel Info\nUser nobody\nGroup nogroup\n";
  auto p = std::make_unique<ChildProcess>(std::vector<std::string>{"/usr/bin/tinyproxy", "-d", "-c", conf},
                                          dir.file("tinyproxy.log"), ChildProcess::Options{w.world.fd()});
  auto in = w.world.enter();
  const bool up = eventually([] {
    auto [rc, out] = sh("ss -Hltn 'sport = :" + std::to_string(kHttpProxyPort) + "'");
    return rc == 0 && !out.empty();
  });
  EXPECT_TRUE(up) << read_text(dir.file("tinyproxy.log"));
  return p;
}

/// The peer address a new connection on `listener` comes from ("" if none in time).
std::string peer_of(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, text, sizeof text);
  } else {
    const auto& a6 = reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) ::inet_ntop(AF_INET, &a6.s6_addr[12], text, sizeof text);
    else ::inet_ntop(AF_INET6, &a6, text, sizeof text);
  }
  return text;
}

/// One flow from the app to 203.0.113.10:`port` through the daemon; the world's listener accepts
/// it, the bytes go both ways byte-exact; returns the peer the world saw.
std::string one_flow(const World& w, int listener, std::uint16_t port) {
  std::string up(64 * 1024, '\0'), down(64 * 1024, '\0');
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = char(i * 7 + 1), down[i] = char(i * 13 + 5);
  int app = -1;
  {
    auto in = w.app.enter();
    app = tcp_connect(kWorldV4, port);
  }
  if (app < 0) return "";
  const int far = accept_within(listener);
  std::string seen;
  if (far >= 0) {
    seen = peer_of(far);
    EXPECT_TRUE(send_all(app, up));
    EXPECT_EQ(recv_n(far, up.size()), up) << "bytes changed on the way up";
    EXPECT_TRUE(send_all(far, down));
    EXPECT_EQ(recv_n(app, down.size()), down) << "bytes changed on the way down";
    ::close(far);
  }
  ::close(app);
  return seen;
}

constexpr const char* kNoDanted = "danted missing (scripts/install-deps installs dante-server)";

struct UpstreamWorld {
  World& w;
  TempDir dir;
  int via_listener = -1;
  std::string socket = dir.file("control.sock");
  std::string config = dir.file("flowrelay.json");
  std::unique_ptr<ChildProcess> proxy;
  std::unique_ptr<Daemon> daemon;

  /// danted (with_user: asking for RFC 1929) and the daemon on `config_text`; false without danted.
  bool start(const std::string& config_text, bool with_user = false) {
    proxy = start_danted(w, dir, with_user);
    if (!proxy) return false;
    write_config(config, config_text);
    daemon = std::make_unique<Daemon>(w.app, config, socket, dir.file("daemon.log"));
    return true;
  }
  explicit UpstreamWorld(World& world) : w(world) {
    auto in = w.world.enter();
    via_listener = tcp_listener("::", kViaPort);
  }
  ~UpstreamWorld() { ::close(via_listener); }
};

TEST(DaemonUpstreamNeedsRootNetns, AFlowLeavesThroughItsRulesUpstreamAndFlowsSayWhich) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  UpstreamWorld u(w);
  if (!u.start(upstream_config(u.socket))) GTEST_SKIP() << kNoDanted;
  Daemon& d = *u.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();

  EXPECT_EQ(one_flow(w, u.via_listener, kViaPort), kWorldV4)
      << "the far server did not see danted's address: the flow went around the proxy\n" << d.log()
      << read_text(u.dir.file("danted.log"));
  EXPECT_EQ(one_flow(w, w.tcp443, 443), "192.0.2.1") << "a rule without via goes direct\n" << d.log();

  // Held open, both flows show in `flows` with the way they left (null until their dial is done).
  int a = -1, b = -1;
  {
    auto in = w.app.enter();
    a = tcp_connect(kWorldV4, kViaPort);
    b = tcp_connect(kWorldV4, 443);
  }
  const int fa = accept_within(u.via_listener), fb = accept_within(w.tcp443);
  ASSERT_GE(fa, 0);
  ASSERT_GE(fb, 0);
  std::map<std::string, std::string> via_by_port;
  ASSERT_TRUE(eventually([&] {
    via_by_port.clear();
    auto f = d.flows();
    if (!f.is_object()) return false;
    for (const auto& x : f.as_object().at("flows").as_array()) {
      const auto& o = x.as_object();
      if (o.at("verdict").as_string() != "claim" || !o.at("via").is_string()) continue;
      const std::string dst(o.at("dst").as_string());
      via_by_port[dst.substr(dst.rfind(':') + 1)] = std::string(o.at("via").as_string());
    }
    return via_by_port.count("443") != 0 && via_by_port.count(std::to_string(kViaPort)) != 0;  // both dialled
  })) << d.log();
  EXPECT_EQ(via_by_port[std::to_string(kViaPort)], "corp");
  EXPECT_EQ(via_by_port["443"], "direct");
  auto [rc, table] = sh(std::string(FLOWRELAY_BIN) + " flows --socket " + u.socket);
  EXPECT_EQ(rc, 0) << table;
  std::istringstream lines(table);
  std::size_t via_rows = 0;
  for (std::string line; std::getline(lines, line);)  // the row of the proxied flow names its upstream
    if (line.find(":" + std::to_string(kViaPort) + " ") != std::string::npos && line.find(" corp ") != std::string::npos) ++via_rows;
  EXPECT_EQ(via_rows, 1u) << table;
  for (int fd : {a, b, fa, fb}) ::close(fd);
}

TEST(DaemonUpstreamNeedsRootNetns, WithTheProxyGoneNewFlowsFailInTimeAreCountedAndNeverGoDirect) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  UpstreamWorld u(w);
  if (!u.start(upstream_config(u.socket))) GTEST_SKIP() << kNoDanted;
  Daemon& d = *u.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  ASSERT_EQ(one_flow(w, u.via_listener, kViaPort), kWorldV4) << d.log();

  u.proxy.reset();  // SIGKILL: nothing listens on :1080 any more
  {
    auto in = w.world.enter();
    ASSERT_TRUE(eventually([] { return sh("ss -Hltn 'sport = :1080'").second.empty(); }));
  }
  for (int i = 0; i < 3; ++i) {
    auto in = w.app.enter();
    const auto t0 = std::chrono::steady_clock::now();
    const int fd = tcp_connect(kWorldV4, kViaPort);  // accepted by the relay, whose dial fails
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_LE(::recv(fd, &c, 1, 0), 0) << "the app's flow should end when its upstream is gone";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500)) << "longer than the connect timeout";
    ::close(fd);
  }
  EXPECT_FALSE(wait_readable(u.via_listener, 200)) << "a flow went around the dead proxy, straight to the server";
  EXPECT_FALSE(d.exited()) << d.log();
  EXPECT_EQ(one_flow(w, w.tcp443, 443), "192.0.2.1") << "direct flows go on\n" << d.log();
  {
    auto in = w.app.enter();
    auto [rc, out] = sh("/usr/bin/python3 " + std::string(FLOWRELAY_SOURCE_DIR) +
                        "/tests/linux/scrape_metrics.py 127.0.0.1:9464");
    ASSERT_EQ(rc, 0) << out;
    const auto m = boost::json::parse(out).as_object();
    auto value = [&](const char* key) { return m.contains(key) ? m.at(key).to_number<double>() : -1.0; };
    EXPECT_GE(value("flowrelay_dial_failures_total{reason=refused,via=corp}"), 3) << out;
    EXPECT_GE(value("flowrelay_dial_seconds_count{via=corp}"), 1) << "the dial before the proxy died\n" << out;
    EXPECT_EQ(value("flowrelay_dial_failures_total{reason=refused,via=direct}"), 0) << out;
  }
}

TEST(DaemonUpstreamNeedsRootNetns, AnUnreadablePasswordFileFailsTheReloadNamingItAndTheEpochStays) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  UpstreamWorld u(w);
  if (!u.start(upstream_config(u.socket))) GTEST_SKIP() << kNoDanted;
  Daemon& d = *u.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  const std::string missing = u.dir.file("no-such.pass");
  write_config(u.config, upstream_config(u.socket, R"(, "username": "u", "password_file": ")" + missing + "\""));
  ASSERT_TRUE(eventually([&] { return d.log().find(missing) != std::string::npos; })) << d.log();
  EXPECT_EQ(one_flow(w, u.via_listener, kViaPort), kWorldV4) << "the running epoch's upstream should stay\n" << d.log();
  EXPECT_FALSE(d.exited());
}

TEST(DaemonUpstreamNeedsRootNetns, AUserUpstreamAuthenticatesWithItsPasswordFileAndAWrongOneFailsFlowsNotDirect) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  UpstreamWorld u(w);
  const std::string pass = u.dir.file("corp.pass");
  write_config(pass, std::string(kPassword) + "\n");  // as `echo s3cret > corp.pass` writes it
  auto with_password = [&](const std::string& file) {
    return upstream_config(u.socket, R"(, "username": ")" + std::string(kUser) + R"(", "password_file": ")" + file + "\"");
  };
  if (!u.start(with_password(pass), /*with_user=*/true)) GTEST_SKIP() << kNoDanted;
  Daemon& d = *u.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  EXPECT_EQ(one_flow(w, u.via_listener, kViaPort), kWorldV4) << d.log() << read_text(u.dir.file("danted.log"));

  // A wrong password in a new file: the config changes, a new epoch reads it.
  const std::string wrong = u.dir.file("wrong.pass");
  write_config(wrong, "not-the-password\n");
  write_config(u.config, with_password(wrong));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  {
    auto in = w.app.enter();
    const int fd = tcp_connect(kWorldV4, kViaPort);
    ASSERT_GE(fd, 0);
    char c;
    EXPECT_LE(::recv(fd, &c, 1, 0), 0) << "a refused login should end the app's flow";
    ::close(fd);
  }
  EXPECT_FALSE(wait_readable(u.via_listener, 200)) << "the flow went around the proxy that refused it";
  EXPECT_NE(d.log().find("authentication failed"), std::string::npos) << d.log();
}

TEST(DaemonUpstreamNeedsRootNetns, AnHttpConnectUpstreamCarriesItsRulesFlows) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  UpstreamWorld u(w);
  auto tinyproxy = start_tinyproxy(w, u.dir);
  if (!tinyproxy) GTEST_SKIP() << "tinyproxy missing (scripts/install-deps installs it)";
  if (!u.start(upstream_config(u.socket))) GTEST_SKIP() << kNoDanted;
  Daemon& d = *u.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  int listener = -1;
  {
    auto in = w.world.enter();
    listener = tcp_listener("::", kViaHttpPort);
  }
  EXPECT_EQ(one_flow(w, listener, kViaHttpPort), kWorldV4)
      << "the far server did not see tinyproxy's address\n" << d.log() << read_text(u.dir.file("tinyproxy.log"));
  ::close(listener);
}

}  // namespace
}  // namespace flowrelay::linux_host
