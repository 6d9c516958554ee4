// DESIGN.md "Security model": the config path must be a regular file (after links), read with a size
// cap and without blocking. The real binary meets a FIFO, a directory and /dev/zero where its
// config should be: `check-config` and `run` refuse them at once, and a running daemon whose file is
// replaced by one keeps its epoch and goes on relaying. Every child runs under a deadline (and a
// data-memory cap), so a binary that hangs or reads forever fails the test instead of stalling it.
#include "tests/linux/child_process.hpp"
#include "tests/linux/daemon_harness.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

namespace flowrelay::linux_host {
namespace {

using namespace testing;

constexpr rlim_t kDataCap = rlim_t{1} << 30;

/// Paths that are not a regular file, each with the reason the binary must give.
struct NotAFile {
  std::string path;
  std::string why;
};

std::vector<NotAFile> not_files(const TempDir& dir) {
  const auto fifo = dir.file("fifo.json"), link = dir.file("link.json"), sub = dir.file("sub");
  EXPECT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(::symlink(fifo.c_str(), link.c_str()), 0);
  EXPECT_EQ(::mkdir(sub.c_str(), 0700), 0);
  return {{fifo, "is not a regular file (a FIFO)"},
          {link, "is not a regular file (a FIFO)"},
          {sub, "is a directory"},
          {"/dev/zero", "is not a regular file (a character device)"}};
}

TEST(CheckConfigCommand, AFifoADirectoryOrDevZeroExitsTwoWithTheReasonWithinADeadline) {
  TempDir dir;
  for (const auto& [path, why] : not_files(dir)) {
    SCOPED_TRACE(path);
    ChildProcess check({FLOWRELAY_BIN, "check-config", path}, dir.file("check.log"), {.data_limit = kDataCap});
    const auto rc = check.wait_exit(5000);
    ASSERT_TRUE(rc.has_value()) << "check-config still running after 5 s";
    EXPECT_EQ(*rc, 2) << check.output();
    EXPECT_NE(check.output().find(path + ": " + why), std::string::npos) << check.output();
    ::truncate(dir.file("check.log").c_str(), 0);
  }
}

/// What `nft list` and `ip rule` show in the namespace: nothing of flowrelay's.
void expect_nothing_installed(const Netns& ns) {
  auto in = ns.enter();
  auto [rc, table] = sh("nft list table inet flowrelay 2>&1");
  EXPECT_NE(rc, 0) << "a table was installed:\n" << table;
  auto [rrc, rules] = sh("ip rule list; ip -6 rule list");
  EXPECT_EQ(rules.find("lookup 100"), std::string::npos) << rules;
}

TEST(DaemonNeedsRootNetns, RunOnAFifoADirectoryOrDevZeroExitsAtOnceAndInstallsNothing) {
  FLOWRELAY_NETNS_OR_SKIP(ns);
  TempDir dir;
  for (const auto& [path, why] : not_files(dir)) {
    SCOPED_TRACE(path);
    ChildProcess run({FLOWRELAY_BIN, "run", "--config", path}, dir.file("run.log"),
                     {.netns_fd = ns.fd(), .data_limit = kDataCap});
    const auto rc = run.wait_exit(5000);
    ASSERT_TRUE(rc.has_value()) << "flowrelay run still running after 5 s";
    EXPECT_EQ(*rc, 2) << run.output();
    EXPECT_NE(run.output().find(path + ": " + why), std::string::npos) << run.output();
    expect_nothing_installed(ns);
    ::truncate(dir.file("run.log").c_str(), 0);
  }
}

/// One TCP round trip from the app namespace to the world's echo on :443 (claimed).
bool tcp_echo(const World& w, const std::string& msg) {
  auto in = w.app.enter();
  const int fd = tcp_connect_within(kWorldV4, 443, 3000);
  if (fd < 0) return false;
  const bool ok = send_all(fd, msg) && recv_n(fd, msg.size(), 3000) == msg;
  ::close(fd);
  return ok;
}

/// The daemon's epoch history holds an event whose error contains `part`.
bool history_mentions(const Daemon& d, const std::string& part) {
  auto e = d.epochs();
  if (!e.is_object()) return false;
  for (const auto& h : e.as_object().at("history").as_array()) {
    const auto* err = h.as_object().if_contains("error");
    if (err != nullptr && err->is_string() && std::string(err->as_string()).find(part) != std::string::npos) return true;
  }
  return false;
}

/// Puts `make(tmp)`'s result where the config is, the way an editor replaces a file.
void replace_config(const std::string& config, const std::function<void(const std::string&)>& make) {
  const std::string tmp = config + ".new";
  make(tmp);
  ASSERT_EQ(::rename(tmp.c_str(), config.c_str()), 0) << std::strerror(errno);
}

TEST(DaemonNeedsRootNetns, AConfigReplacedByAFifoOrDevZeroKeepsTheRunningEpochAndRelaying) {
  FLOWRELAY_WORLD_OR_SKIP(w);
  EchoWorld echo(w);
  TempDir dir;
  const auto config = dir.file("c.json"), socket = dir.file("c.sock");
  write_config(config, config_text("surgical", {443}, {}, socket));
  Daemon d(w.app, config, socket, dir.file("daemon.log"));
  ASSERT_TRUE(d.wait_ready()) << d.log();
  ASSERT_TRUE(tcp_echo(w, "before"));

  replace_config(config, [](const std::string& tmp) { ASSERT_EQ(::mkfifo(tmp.c_str(), 0600), 0); });
  EXPECT_TRUE(eventually([&] { return history_mentions(d, config + ": is not a regular file (a FIFO)"); }))
      << d.log();
  EXPECT_EQ(d.current_epoch(), 1);
  EXPECT_TRUE(tcp_echo(w, "after a FIFO"));
  d.hup();  // SIGHUP re-reads the same FIFO: refused again, not a hang
  EXPECT_TRUE(eventually([&] { return d.log().find("SIGHUP") != std::string::npos; })) << d.log();
  EXPECT_EQ(d.current_epoch(), 1) << d.log();

  replace_config(config, [](const std::string& tmp) { ASSERT_EQ(::symlink("/dev/zero", tmp.c_str()), 0); });
  EXPECT_TRUE(eventually([&] { return history_mentions(d, config + ": is not a regular file (a character device)"); }))
      << d.log();
  EXPECT_EQ(d.current_epoch(), 1);
  EXPECT_TRUE(tcp_echo(w, "after /dev/zero"));

  // A regular file again: the daemon was never stuck, the next epoch is accepted.
  write_config(config, config_text("surgical", {443, 80}, {}, socket));
  EXPECT_TRUE(eventually([&] { return d.current_epoch() == 2; })) << d.log();
  EXPECT_TRUE(tcp_echo(w, "epoch 2"));
  EXPECT_EQ(d.terminate(), 0) << d.log();
}

}  // namespace
}  // namespace flowrelay::linux_host
