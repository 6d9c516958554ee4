// The flowrelay binary itself: `flowrelay forward` relays, and SIGTERM drains and exits 0.

#include "tests/support/net.hpp"

#include <gtest/gtest.h>

#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>

extern char** environ;

namespace flowrelay::test {
namespace {

using namespace std::chrono_literals;

pid_t spawn(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

/// Connects, retrying while the daemon is still binding (bounded).
Fd connect_when_up(std::uint16_t port) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    try {
      return tcp_connect(port);
    } catch (const std::exception&) {
      if (std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::yield();
    }
  }
}

TEST(ForwardCommand, RelaysThenDrainsAndExitsZeroOnSigterm) {
  Fd echo_listener = tcp_listen();
  Fd probe = tcp_listen();
  const auto port = local_port(probe.get());
  probe.reset();
  const pid_t pid = spawn({FLOWRELAY_BIN, "forward", "--listen", "127.0.0.1:" + std::to_string(port), "--to",
                           "127.0.0.1:" + std::to_string(local_port(echo_listener.get())), "--threads", "1",
                           "--drain-ms", "200"});
  ASSERT_GT(pid, 0);
  Fd c = connect_when_up(port);
  Fd s = tcp_accept(echo_listener.get());
  send_all(c.get(), "hello", 5);
  char b[5];
  ASSERT_EQ(recv_all(s.get(), b, 5), 5u);
  EXPECT_EQ(std::string(b, 5), "hello");

  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The flow still open at shutdown was ended by the drain, not left hanging.
  char x;
  EXPECT_LE(::recv(c.get(), &x, 1, 0), 0);
}

// `forward --metrics`: the bench measures the relay with a scraper attached. The exposition parses
// with Prometheus' own parser and counts the flow just relayed and its bytes.
TEST(ForwardCommand, ServesMetricsThatCountTheRelayedFlow) {
  Fd echo_listener = tcp_listen();
  Fd probe = tcp_listen(), metrics_probe = tcp_listen();
  const auto port = local_port(probe.get()), metrics_port = local_port(metrics_probe.get());
  probe.reset();
  metrics_probe.reset();
  const std::string metrics = "127.0.0.1:" + std::to_string(metrics_port);
  const pid_t pid = spawn({FLOWRELAY_BIN, "forward", "--listen", "127.0.0.1:" + std::to_string(port), "--to",
                           "127.0.0.1:" + std::to_string(local_port(echo_listener.get())), "--threads", "1",
                           "--drain-ms", "200", "--metrics", metrics});
  ASSERT_GT(pid, 0);
  {
    Fd c = connect_when_up(port);
    Fd s = tcp_accept(echo_listener.get());
    send_all(c.get(), "hello", 5);
    char b[5];
    ASSERT_EQ(recv_all(s.get(), b, 5), 5u);
  }
  const std::string scrape = "/usr/bin/python3 " + std::string(FLOWRELAY_SOURCE_DIR) + "/tests/linux/scrape_metrics.py " + metrics;
  std::string out;
  FILE* p = ::popen(scrape.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  EXPECT_NE(out.find(R"("flowrelay_flows_total{proto=tcp,via=direct}": 1.0)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("flowrelay_bytes_total{direction=up,via=direct}": 5.0)"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("flowrelay_dial_seconds_count{via=direct}": 1.0)"), std::string::npos) << out;
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(ForwardCommand, BadAddressIsNamedAndExitsTwo) {
  const pid_t pid = spawn({FLOWRELAY_BIN, "forward", "--listen", "127.0.0.1", "--to", "127.0.0.1:80"});
  ASSERT_GT(pid, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
}

}  // namespace
}  // namespace flowrelay::test
