// `forward --via`: claimed bytes leave through an upstream proxy, real ones started by the test
// (danted for SOCKS5, tinyproxy for HTTP CONNECT). The proxies send from 127.0.0.2, so the far
// server tells from the peer address it sees whether a flow went through the proxy or around it.
// A dead or refusing proxy fails the flow and is never bypassed.

#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace flowrelay::forward {
namespace {

using namespace flowrelay::test;

pid_t spawn(std::vector<std::string> args, const std::string& log) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setpgid(0, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

void stop(pid_t pid) {
  if (pid <= 0) return;
  ::kill(-pid, SIGTERM);
  ::kill(pid, SIGTERM);
  ::waitpid(pid, nullptr, 0);
}

std::uint16_t free_port() {
  Fd probe = tcp_listen();
  return local_port(probe.get());
}

/// True once something listens on 127.0.0.1:`port`, read from /proc/net/tcp rather than by
/// connecting: a probe connection to forward would become a flow and reach the far server first.
bool listening(std::uint16_t port, int ms = 10000) {
  char want[32];
  std::snprintf(want, sizeof want, "0100007F:%04X 00000000:0000 0A", port);
  for (int waited = 0; waited < ms; waited += 20) {
    std::ifstream in("/proc/net/tcp");
    for (std::string line; std::getline(in, line);)
      if (line.find(want) != std::string::npos) return true;
    ::poll(nullptr, 0, 20);
  }
  return false;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}

/// A proxy, flowrelay forward --via it, and a far server that records who connected.
class ViaProxy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("flowrelay-via-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    stop(forward_);
    stop(proxy_);
    std::filesystem::remove_all(dir_);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  void start_danted(std::uint16_t port, const std::string& deny_port = "") {
    if (!std::filesystem::exists("/usr/sbin/danted")) GTEST_SKIP() << "danted missing (scripts/install-deps installs dante-server)";
    std::ofstream(file("danted.conf")) << "logoutput: stderr\n"
                                       << "internal: 127.0.0.1 port = " << port << "\n"
                                       << "external: 127.0.0.2\n"
                                       << "clientmethod: none\nsocksmethod: none\n"
                                       << "user.privileged: root\nuser.unprivileged: nobody\n"
                                       << "client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n"
                                       << (deny_port.empty() ? "" : "socks block { from: 0.0.0.0/0 to: 0.0.0.0/0 port = " + deny_port + " }\n")
                                       << "socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }\n";
    proxy_ = spawn({"/usr/sbin/danted", "-f", file("danted.conf"), "-N", "1"}, file("danted.log"));
    ASSERT_TRUE(listening(port)) << slurp(file("danted.log"));
  }
  void start_tinyproxy(std::uint16_t port) {
    if (!std::filesystem::exists("/usr/bin/tinyproxy")) GTEST_SKIP() << "tinyproxy missing (scripts/install-deps installs it)";
    std::ofstream(file("tinyproxy.conf")) << "Port " << port << "\nListen 127.0.0.1\nBind 127.0.0.2\n"
                                          << "Timeout 30\nMaxClients 20\nAllow 127.0.0.1\n"
                                          << "LogLevel Info\nUser nobody\nGroup nogroup\n";
    proxy_ = spawn({"/usr/bin/tinyproxy", "-d", "-c", file("tinyproxy.conf")}, file("tinyproxy.log"));
    ASSERT_TRUE(listening(port)) << slurp(file("tinyproxy.log"));
  }
  /// forward on a free port to the far server, via `url`; returns its port.
  std::uint16_t start_forward(const std::string& url, std::uint16_t far) {
    const std::uint16_t port = free_port();
    forward_ = spawn({FLOWRELAY_BIN, "forward", "--listen", "127.0.0.1:" + std::to_string(port), "--to",
                      "127.0.0.1:" + std::to_string(far), "--threads", "1", "--via", url, "--connect-timeout-ms", "2000",
                      "--drain-ms", "100"},
                     file("forward.log"));
    EXPECT_TRUE(listening(port)) << slurp(file("forward.log"));
    return port;
  }

  /// One flow through forward: 1 MiB each way, echoed by the far server; returns the peer address
  /// the far server saw.
  std::string relay_one(std::uint16_t port, int far_listener) {
    Fd c = tcp_connect(port);
    Fd s = tcp_accept(far_listener);
    if (!s) return "";
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    ::getpeername(s.get(), reinterpret_cast<sockaddr*>(&peer), &len);
    char seen[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &peer.sin_addr, seen, sizeof seen);
    std::vector<char> up(1 << 20), got(1 << 20);
    for (std::size_t i = 0; i < up.size(); ++i) up[i] = char(i * 7);
    send_all(c.get(), up.data(), up.size());
    EXPECT_EQ(recv_all(s.get(), got.data(), got.size()), got.size());
    EXPECT_EQ(got, up) << "bytes changed through the proxy";
    send_all(s.get(), up.data(), up.size());
    EXPECT_EQ(recv_all(c.get(), got.data(), got.size()), got.size());
    EXPECT_EQ(got, up);
    return seen;
  }

  std::filesystem::path dir_;
  pid_t proxy_ = -1, forward_ = -1;
};

TEST_F(ViaProxy, Socks5CarriesTheFlowByteExact) {
  const std::uint16_t proxy = free_port();
  start_danted(proxy);
  if (HasFatalFailure() || IsSkipped()) return;
  Fd far = tcp_listen();
  const auto port = start_forward("socks5://127.0.0.1:" + std::to_string(proxy), local_port(far.get()));
  EXPECT_EQ(relay_one(port, far.get()), "127.0.0.2") << "the far server was not reached through danted\n"
                                                     << slurp(file("forward.log"));
}

TEST_F(ViaProxy, HttpConnectCarriesTheFlowByteExact) {
  const std::uint16_t proxy = free_port();
  start_tinyproxy(proxy);
  if (HasFatalFailure() || IsSkipped()) return;
  Fd far = tcp_listen();
  const auto port = start_forward("http://127.0.0.1:" + std::to_string(proxy), local_port(far.get()));
  EXPECT_EQ(relay_one(port, far.get()), "127.0.0.2") << "the far server was not reached through tinyproxy\n"
                                                     << slurp(file("forward.log")) << slurp(file("tinyproxy.log"));
}

TEST_F(ViaProxy, ARefusedConnectResetsTheFlowAndNeverGoesDirect) {
  Fd far = tcp_listen();
  const std::uint16_t proxy = free_port();
  start_danted(proxy, std::to_string(local_port(far.get())));  // danted refuses this destination port
  if (HasFatalFailure() || IsSkipped()) return;
  const auto port = start_forward("socks5://127.0.0.1:" + std::to_string(proxy), local_port(far.get()));
  Fd c = tcp_connect(port);
  char b;
  EXPECT_LE(::recv(c.get(), &b, 1, 0), 0) << "the app's flow should end when the proxy refuses";
  pollfd p{far.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 200), 0) << "the far server was reached although the proxy refused: direct fallback";
}

TEST_F(ViaProxy, ADeadProxyFailsNewFlowsWithinTheConnectTimeoutAndForwardStaysUp) {
  Fd far = tcp_listen();
  const std::uint16_t dead = free_port();  // nothing listens there
  const auto port = start_forward("socks5://127.0.0.1:" + std::to_string(dead), local_port(far.get()));
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Fd c = tcp_connect(port);
    char b;
    EXPECT_LE(::recv(c.get(), &b, 1, 0), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(2500));
  }
  pollfd p{far.get(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 100), 0) << "a flow went around the dead proxy";
  EXPECT_EQ(::kill(forward_, 0), 0) << "forward died with its proxy";
  EXPECT_NE(slurp(file("forward.log")).find("dial"), std::string::npos) << slurp(file("forward.log"));
}

}  // namespace
}  // namespace flowrelay::forward
