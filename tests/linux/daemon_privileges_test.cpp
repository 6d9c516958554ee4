// `flowrelay run` as a production host would leave it running (issue 9): what it keeps of root,
// the limits it raises, and what a client of its control socket or a burst of signals can do to it.
// Every test runs the real binary in private namespaces and judges from outside: /proc, the far
// server, the control socket's answers.
#include "tests/linux/daemon_harness.hpp"

#include "extension/linux/privileges.hpp"

#include <gtest/gtest.h>

#include <poll.h>
#include <sys/un.h>

#include <filesystem>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

/// "Key:\tvalue" lines of /proc/PID/task/TID/status.
std::map<std::string, std::string> task_status(pid_t pid, const std::string& tid) {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + tid + "/status");
  for (std::string line; std::getline(in, line);) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = v;
  }
  return out;
}

std::vector<std::string> tasks(pid_t pid) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task"))
    out.push_back(e.path().filename().string());
  return out;
}

std::uint64_t hex(const std::string& s) { return std::stoull(s, nullptr, 16); }

/// Every thread of the daemon holds exactly the three kept capabilities and no way to more.
void expect_only_kept_capabilities(pid_t pid) {
  const auto threads = tasks(pid);
  ASSERT_GT(threads.size(), 1u);  // the reactor runs: its threads must be reduced too
  for (const auto& tid : threads) {
    SCOPED_TRACE("thread " + tid);
    auto st = task_status(pid, tid);
    EXPECT_EQ(hex(st["CapEff"]), kept_capabilities()) << capability_names(hex(st["CapEff"]));
    EXPECT_EQ(hex(st["CapPrm"]), kept_capabilities()) << capability_names(hex(st["CapPrm"]));
    EXPECT_EQ(hex(st["CapBnd"]), kept_capabilities()) << capability_names(hex(st["CapBnd"]));
    EXPECT_EQ(hex(st["CapInh"]), 0u);
    EXPECT_EQ(hex(st["CapAmb"]), 0u);
    EXPECT_EQ(st["NoNewPrivs"], "1");
  }
}

/// What `nft list` and `ip rule` show in the app namespace after the daemon: none of its own.
void expect_nothing_left(const World& w) {
  auto in = w.app.enter();
  auto [rc, table] = sh("nft list table inet flowrelay 2>&1");
  EXPECT_NE(rc, 0) << "the table outlived the daemon:\n" << table;
  auto [rrc, rules] = sh("ip rule list; ip -6 rule list");
  EXPECT_EQ(rules.find("lookup 100"), std::string::npos) << rules;
}

std::string claim_config(const std::string& socket, const std::string& extra_linux = "",
                         const std::string& extra_ports = "") {
  return R"({"default": "bypass", "rules": [
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24", "2001:db8::/32"], "ports": [443)" +
         extra_ports + R"(]},
      {"name": "dns", "verdict": "claim", "proto": "udp", "dst": ["203.0.113.0/24"], "ports": [53]}],
    "reclaim": {"policy": "surgical", "debounce_ms": 20, "drain_ms": 200},
    "linux": {)" + extra_linux + R"(},
    "control": {"socket": ")" + socket + R"("}})";
}

/// One TCP round trip from the app namespace to the world's echo on :443.
bool tcp_echo(const World& w, const std::string& msg) {
  auto in = w.app.enter();
  int fd = tcp_connect(kWorldV4, 443);
  if (fd < 0) return false;
  const bool ok = send_all(fd, msg) && recv_n(fd, msg.size()) == msg;
  ::close(fd);
  return ok;
}

/// A datagram from the app to world:53, answered by a responder in the world namespace. Returns
/// the source port the world saw (the relay's, when claimed) and whether the app got the answer
/// from world:53.
struct DnsProbe {
  std::uint16_t app_port = 0;
  std::uint16_t seen_port = 0;
  bool answered = false;
};

DnsProbe dns_probe(const World& w) {
  DnsProbe p;
  int server = -1;
  {
    auto in = w.world.enter();
    server = udp_socket("0.0.0.0", 53);
  }
  if (server < 0) return p;
  int app = -1;
  {
    auto in = w.app.enter();
    app = udp_socket("0.0.0.0", 0);
  }
  p.app_port = local_addr(app).port();
  auto dst = make_addr(kWorldV4, 53);
  const std::string q = "query";
  ::sendto(app, q.data(), q.size(), 0, dst.sa(), dst.len);
  if (wait_readable(server)) {
    char buf[64];
    SockAddr from;
    from.len = sizeof from.ss;
    ssize_t n = ::recvfrom(server, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from.ss), &from.len);
    p.seen_port = from.port();
    if (n > 0) ::sendto(server, buf, static_cast<std::size_t>(n), 0, from.sa(), from.len);
    if (wait_readable(app)) {
      SockAddr src;
      src.len = sizeof src.ss;
      n = ::recvfrom(app, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&src.ss), &src.len);
      p.answered = n == static_cast<ssize_t>(q.size()) && src.port() == 53;
    }
  }
  ::close(app);
  ::close(server);
  return p;
}

struct Running {
  World& w;
  TempDir dir;
  std::string config = dir.file("flowrelay.json");
  std::string socket = dir.file("control.sock");
  EchoWorld echo;
  std::unique_ptr<Daemon> daemon;

  Running(World& world, const std::string& extra_linux = "", rlim_t nofile = 0) : w(world), echo(world) {
    write_config(config, claim_config(socket, extra_linux));
    daemon = std::make_unique<Daemon>(w.app, config, socket, dir.file("daemon.log"), std::vector<std::string>{}, nofile);
  }
};

TEST(DaemonNeedsRootNetns, KeepsOnlyThreeNetworkCapabilitiesAndEverythingStillWorks) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  expect_only_kept_capabilities(d.pid());

  // IP_TRANSPARENT listeners, SO_MARK upstreams: a claimed TCP flow is relayed.
  EXPECT_TRUE(tcp_echo(w, "through the relay"));
  // A UDP reply socket bound to the original destination, port 53 (< 1024): CAP_NET_BIND_SERVICE.
  const auto dns = dns_probe(w);
  EXPECT_TRUE(dns.answered) << d.log();
  EXPECT_NE(dns.seen_port, dns.app_port) << "the world saw the app itself: not relayed";

  // A new epoch: nftables from the reduced daemon, then surgical reclaim (sock_diag SOCK_DESTROY)
  // of a bypassed flow to :80 that the new epoch claims.
  int held = -1;
  {
    auto in = w.app.enter();
    held = tcp_connect(kWorldV4, 80);
  }
  ASSERT_GE(held, 0);
  ASSERT_TRUE(eventually([&] { return r.echo.accepted() >= 2; })) << "the bypassed flow reaches the world";
  write_config(r.config, claim_config(r.socket, "", ", 80"));
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  // The flow the new epoch claims is closed so it reconnects into the relay: the app sees EOF/reset.
  EXPECT_TRUE(wait_readable(held, 5000)) << d.log();
  char c;
  EXPECT_LE(::recv(held, &c, 1, 0), 0);
  ::close(held);
  auto e = d.epochs();
  const auto& cycles = e.as_object().at("cycles").as_array();
  ASSERT_FALSE(cycles.empty());
  const auto& last = cycles.back().as_object();
  EXPECT_EQ(last.at("outcome").as_string(), "done") << boost::json::serialize(e);
  EXPECT_EQ(last.at("done").at("reclaim").to_number<int>(), 1) << boost::json::serialize(e);
  expect_only_kept_capabilities(d.pid());
  EXPECT_EQ(d.terminate(), 0) << d.log();
  expect_nothing_left(w);
}

TEST(DaemonNeedsRootNetns, RunAsAnotherUserKeepsTheCapabilitiesAndServes) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w, R"("run_as": "nobody")");
  // The user must be able to read its config on reload.
  ::chmod(r.dir.path.c_str(), 0755);
  ::chmod(r.config.c_str(), 0644);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  auto st = task_status(d.pid(), std::to_string(d.pid()));
  EXPECT_EQ(st["Uid"], "65534\t65534\t65534\t65534");
  EXPECT_EQ(st["Groups"], "");
  expect_only_kept_capabilities(d.pid());
  EXPECT_TRUE(tcp_echo(w, "as nobody"));
  EXPECT_TRUE(dns_probe(w).answered) << d.log();
  write_config(r.config, claim_config(r.socket, R"("run_as": "nobody")", ", 80"));
  ::chmod(r.config.c_str(), 0644);
  EXPECT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
  expect_nothing_left(w);
}

TEST(DaemonNeedsRootNetns, AnUnknownRunAsUserIsRefusedAndLeavesNothing) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w, R"("run_as": "no-such-user-here")");
  EXPECT_EQ(r.daemon->wait_exit(), 1);
  EXPECT_NE(r.daemon->log().find("no user \"no-such-user-here\""), std::string::npos) << r.daemon->log();
  expect_nothing_left(w);
}

TEST(DaemonNeedsRootNetns, RaisesTheOpenFilesLimitToTheHardLimit) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w, "", 256);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  std::ifstream in("/proc/" + std::to_string(d.pid()) + "/limits");
  std::string line, soft, hard;
  while (std::getline(in, line))
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream ss(line.substr(std::strlen("Max open files")));
      ss >> soft >> hard;
    }
  ASSERT_FALSE(hard.empty());
  EXPECT_EQ(soft, hard);
  EXPECT_NE(soft, "256");
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

int connect_control(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path.data(), path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// The daemon closed `fd` (EOF, or a reset when our bytes were still unread) within `ms`, having
/// sent nothing.
bool closed_unanswered(int fd, int ms) {
  if (!wait_readable(fd, ms)) return false;
  char buf[16];
  return ::recv(fd, buf, sizeof buf, 0) <= 0;
}

TEST(DaemonNeedsRootNetns, SilentControlClientsAreCutOffAndOthersAreServed) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  std::vector<int> silent;
  for (int i = 0; i < 40; ++i) silent.push_back(connect_control(r.socket));
  for (int fd : silent) ASSERT_GE(fd, 0);
  // Each one is closed within the read timeout (2 s), without an answer.
  for (int fd : silent) {
    EXPECT_TRUE(closed_unanswered(fd, 5000));
    ::close(fd);
  }
  EXPECT_TRUE(d.flows().is_object()) << d.log();

  // A request far over the size limit: closed unanswered; the daemon serves the next one.
  int big = connect_control(r.socket);
  ASSERT_GE(big, 0);
  const std::string junk(64 * 1024, 'x');
  ::send(big, junk.data(), junk.size(), MSG_NOSIGNAL);
  EXPECT_TRUE(closed_unanswered(big, 5000));
  ::close(big);
  EXPECT_EQ(d.current_epoch(), 1) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

TEST(DaemonNeedsRootNetns, ASighupStormDuringAReclaimCycleEndsOnTheNewestEpoch) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  Traffic t(w.app, {app_flow(kWorldV4, 443), app_flow(kWorldV4, 80), app_flow(kWorldV6, 80)});
  ASSERT_TRUE(t.wait_rounds(3));
  write_config(r.config, claim_config(r.socket, "", ", 80"));
  for (int i = 0; i < 300; ++i) d.hup();  // re-reads while the watcher debounces and the cycle runs
  ASSERT_TRUE(eventually([&] {
    const auto seen = seen_by_src(d.flows(), "tcp");
    for (const auto& f : t.flows()) {
      auto it = seen.find(flow_key(f));
      // 443 was claimed by epoch 1 and stays; the flows to 80 came back under epoch 2.
      if (it == seen.end() || it->second.verdict != "claim" || it->second.epoch != (f.port == 80 ? 2 : 1))
        return false;
    }
    return true;
  })) << d.log();
  EXPECT_FALSE(d.exited());
  EXPECT_EQ(d.current_epoch(), 2) << "identical re-reads are not new epochs";
  auto e = d.epochs();
  for (const auto& c : e.as_object().at("cycles").as_array())
    EXPECT_EQ(c.as_object().at("outcome").as_string(), "done") << boost::json::serialize(e);
  ASSERT_TRUE(t.wait_rounds(3));
  t.stop();
  for (const auto& f : t.flows()) {
    SCOPED_TRACE(f.local);
    EXPECT_EQ(f.mismatches, 0);
    EXPECT_EQ(f.reconnects, f.port == 80 ? 1 : 0);  // the flipped flows move once, 443 never
  }
  EXPECT_EQ(d.terminate(), 0) << d.log();
}


namespace systemd_unit {

/// The datagram socket systemd listens on for sd_notify (NOTIFY_SOCKET).
class NotifySocket {
 public:
  explicit NotifySocket(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path_.c_str());
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind notify socket");
  }
  ~NotifySocket() { ::close(fd_); }
  const std::string& path() const { return path_; }
  /// The next message, or "" after `ms` without one.
  std::string next(int ms = 10000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, ms) != 1) return "";
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, std::size_t(n)) : "";
  }
  /// Messages until one contains `what` (returned), or "" after `ms`.
  std::string until(const std::string& what, int ms = 10000) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      std::string m = next(static_cast<int>(left.count()));
      if (m.find(what) != std::string::npos) return m;
      if (m.empty()) return "";
    }
    return "";
  }

 private:
  std::string path_;
  int fd_ = -1;
};

bool table_installed(const World& w) {
  auto in = w.app.enter();
  return sh("nft list table inet flowrelay >/dev/null 2>&1").first == 0;
}

}  // namespace systemd_unit

// flowrelay.service: Type=notify and CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW
// CAP_NET_BIND_SERVICE. systemd hears READY=1 only once the table is in place, the daemon starts
// and works with nothing but those capabilities (no CAP_SETPCAP to narrow its bounding set with),
// `systemctl reload` (SIGHUP) reports RELOADING then READY, and a stop reports STOPPING.
TEST(DaemonNeedsRootNetns, UnderTheSystemdUnitItNotifiesReadyOnceTheTableIsInPlace) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  TempDir dir;
  const std::string config = dir.file("flowrelay.json"), socket = dir.file("control.sock");
  write_config(config, claim_config(socket));
  EchoWorld echo(w);
  systemd_unit::NotifySocket notify(dir.file("notify.sock"));
  Daemon d(w.app, config, socket, dir.file("daemon.log"), {}, 0,
           Launch{{"NOTIFY_SOCKET=" + notify.path()}, kept_capabilities()});
  const std::string ready = notify.until("READY=1");
  ASSERT_FALSE(ready.empty()) << "no READY=1 from the daemon\n" << d.log();
  EXPECT_TRUE(systemd_unit::table_installed(w)) << "READY=1 came before the table was installed";
  EXPECT_NE(ready.find("STATUS=claiming, epoch 1"), std::string::npos) << ready;
  expect_only_kept_capabilities(d.pid());
  EXPECT_TRUE(tcp_echo(w, "claimed under the unit's capabilities")) << d.log();

  d.hup();
  EXPECT_FALSE(notify.until("RELOADING=1").empty()) << d.log();
  EXPECT_FALSE(notify.until("READY=1").empty()) << d.log();

  ::kill(d.pid(), SIGTERM);
  EXPECT_FALSE(notify.until("STOPPING=1").empty()) << d.log();
  EXPECT_EQ(d.wait_exit(), 0) << d.log();
  expect_nothing_left(w);
}

namespace scrape {

/// The daemon's metrics as Prometheus parses them, scraped from inside the app namespace.
std::map<std::string, double> metrics(const World& w, const std::string& listen) {
  auto in = w.app.enter();
  auto [rc, out] = sh("/usr/bin/python3 " + std::string(FLOWRELAY_SOURCE_DIR) + "/tests/linux/scrape_metrics.py " + listen);
  EXPECT_EQ(rc, 0) << out;
  std::map<std::string, double> m;
  if (rc != 0) return m;
  const auto doc = boost::json::parse(out);
  for (const auto& [k, v] : doc.as_object()) m[std::string(k)] = v.to_number<double>();
  return m;
}

}  // namespace scrape

// Prometheus on metrics.listen (issue 11): the exposition parses with Prometheus' own parser, and
// its counters follow what the far end saw: flows, bytes both ways, dials and a failed one, the
// epoch and a reclaim cycle.
TEST(DaemonNeedsRootNetns, MetricsParseAndMoveWithTraffic) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  TempDir dir;
  const std::string config = dir.file("flowrelay.json"), socket = dir.file("control.sock");
  const std::string listen = "127.0.0.1:9464";
  auto with_metrics = [&](const std::string& ports) {
    auto text = claim_config(socket, "", ports);
    return text.substr(0, text.rfind('}')) + R"(, "metrics": {"listen": ")" + listen + R"("}})";
  };
  write_config(config, with_metrics(", 444"));  // nothing listens on :444: its dials are refused
  EchoWorld echo(w);
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();

  auto before = scrape::metrics(w, listen);
  ASSERT_FALSE(before.empty());
  EXPECT_EQ(before["flowrelay_epoch{}"], 1);
  const double flows0 = before["flowrelay_flows_total{proto=tcp,via=direct}"];
  const double up0 = before["flowrelay_bytes_total{direction=up,via=direct}"];
  const double down0 = before["flowrelay_bytes_total{direction=down,via=direct}"];

  const std::string msg(1000, 'm');
  constexpr int kFlows = 5;
  for (int i = 0; i < kFlows; ++i) ASSERT_TRUE(tcp_echo(w, msg)) << d.log();
  {
    auto in = w.app.enter();
    const int fd = tcp_connect(kWorldV4, 444);  // claimed, accepted by the relay, dial refused
    if (fd >= 0) {
      char c;
      ::recv(fd, &c, 1, 0);  // the relay resets the app once its dial fails
      ::close(fd);
    }
  }
  std::map<std::string, double> after;
  ASSERT_TRUE(eventually([&] {
    after = scrape::metrics(w, listen);
    return after["flowrelay_dial_failures_total{reason=refused,via=direct}"] >= 1 &&
           after["flowrelay_bytes_total{direction=down,via=direct}"] >= down0 + kFlows * msg.size();
  })) << d.log();
  EXPECT_GE(after["flowrelay_flows_total{proto=tcp,via=direct}"], flows0 + kFlows + 1);
  EXPECT_GE(after["flowrelay_bytes_total{direction=up,via=direct}"], up0 + kFlows * msg.size());
  EXPECT_GE(after["flowrelay_dial_seconds_count{via=direct}"], kFlows);
  EXPECT_EQ(after["flowrelay_dial_seconds_bucket{le=+Inf,via=direct}"], after["flowrelay_dial_seconds_count{via=direct}"]);
  EXPECT_GT(after["flowrelay_pool_bytes{}"], 0);

  write_config(config, with_metrics(", 80"));  // epoch 2: a reclaim cycle
  ASSERT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  ASSERT_TRUE(eventually([&] {
    after = scrape::metrics(w, listen);
    return after["flowrelay_reclaim_cycle_seconds_count{policy=surgical}"] >= 1;
  })) << d.log();
  EXPECT_EQ(after["flowrelay_epoch{}"], 2);

  {  // Anything but GET /metrics is a 404, and the daemon goes on serving.
    auto in = w.app.enter();
    auto [rc, out] = sh("/usr/bin/python3 -c \"import urllib.request, urllib.error\n"
                        "try: urllib.request.urlopen('http://" + listen + "/other', timeout=5)\n"
                        "except urllib.error.HTTPError as e: print(e.code)\"");
    EXPECT_EQ(out, "404\n");
  }
  EXPECT_TRUE(tcp_echo(w, "still relaying")) << d.log();
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

// `flows --json` carries where each claimed TCP flow's time goes (issue 11): the dial, the first
// byte from the destination, each leg's RTT as the kernel measures it, the age; the table shows
// dial and RTT columns, and `--watch` redraws it.
TEST(DaemonNeedsRootNetns, FlowsCarryTheLatencyProfileOfEveryClaimedTcpFlow) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  Running r(w);
  Daemon& d = *r.daemon;
  ASSERT_TRUE(d.wait_ready()) << d.log();
  std::vector<int> held;
  {
    auto in = w.app.enter();
    for (int i = 0; i < 3; ++i) {
      const int fd = tcp_connect(kWorldV4, 443);
      ASSERT_GE(fd, 0);
      const std::string msg = "profile " + std::to_string(i);
      ASSERT_TRUE(send_all(fd, msg) && recv_n(fd, msg.size()) == msg);
      held.push_back(fd);
    }
  }
  const auto answer = d.request("flows");
  int tcp = 0;
  for (const auto& f : answer.as_object().at("flows").as_array()) {
    const auto& o = f.as_object();
    if (o.at("verdict").as_string() != "claim" || o.at("proto").as_string() != "tcp") continue;
    ++tcp;
    SCOPED_TRACE(boost::json::serialize(o));
    EXPECT_EQ(o.at("via").as_string(), "direct");
    ASSERT_TRUE(o.at("dial_ms").is_number());
    EXPECT_GE(o.at("dial_ms").to_number<double>(), 0.0);
    ASSERT_TRUE(o.at("first_byte_ms").is_number());
    EXPECT_GE(o.at("first_byte_ms").to_number<double>(), o.at("dial_ms").to_number<double>());
    const auto& rtt = o.at("rtt_us").as_object();
    ASSERT_TRUE(rtt.at("app").is_number());
    ASSERT_TRUE(rtt.at("upstream").is_number());
    EXPECT_GT(rtt.at("app").to_number<double>(), 0.0);
    EXPECT_GT(rtt.at("upstream").to_number<double>(), 0.0);
    EXPECT_GE(o.at("age_ms").to_number<double>(), o.at("first_byte_ms").to_number<double>());
    EXPECT_GT(o.at("bytes_down").to_number<double>(), 0.0);
  }
  EXPECT_EQ(tcp, 3);

  auto [rc, out] = sh(std::string(FLOWRELAY_BIN) + " flows --socket " + r.socket + " --watch 0.1 --frames 2");
  EXPECT_EQ(rc, 0) << out;
  std::size_t frames = 0;
  for (auto at = out.find("\033[H\033[2J"); at != std::string::npos; at = out.find("\033[H\033[2J", at + 1)) ++frames;
  EXPECT_EQ(frames, 2u) << out;
  EXPECT_NE(out.find("DIAL ms"), std::string::npos) << out;
  EXPECT_NE(out.find("RTT us app/up"), std::string::npos) << out;
  for (int fd : held) ::close(fd);
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

}  // namespace
}  // namespace flowrelay::linux_host
