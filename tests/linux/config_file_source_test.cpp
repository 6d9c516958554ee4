#include "extension/linux/config_file_source.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

namespace flowrelay::linux_host {
namespace {

using Kind = ConfigFileEvent::Kind;

void write_file(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

struct ConfigFileSourceTest : ::testing::Test {
  std::string dir, file;
  std::vector<ConfigFileEvent> events;
  std::unique_ptr<ConfigFileSource> src;

  void SetUp() override {
    char tmpl[] = "/tmp/flowrelay-cfg-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir = tmpl;
    file = dir + "/flowrelay.json";
    write_file(file, "{\"v\":1}");
    src = std::make_unique<ConfigFileSource>(file, [this](const ConfigFileEvent& e) { events.push_back(e); });
  }
  void TearDown() override {
    src.reset();
    std::system(("rm -rf '" + dir + "'").c_str());
  }

  /// Handles inotify events until `n` callbacks in total have been seen or 5 s have passed.
  void wait_events(std::size_t n) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (events.size() < n && std::chrono::steady_clock::now() < deadline) {
      pollfd p{src->fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) src->handle_events();
    }
  }
  /// No callback for pending events (whatever the fd says right now).
  void expect_quiet() {
    const auto before = events.size();
    pollfd p{src->fd(), POLLIN, 0};
    while (::poll(&p, 1, 0) == 1) src->handle_events();
    EXPECT_EQ(events.size(), before);
  }
};

TEST_F(ConfigFileSourceTest, ReportsInitialContentThenInPlaceWrites) {
  auto now = src->read_current();
  EXPECT_EQ(now.kind, Kind::content);
  EXPECT_EQ(now.bytes, "{\"v\":1}");
  EXPECT_EQ(src->name(), "file:" + file);

  write_file(file, "{\"v\":2}");
  wait_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::content);
  EXPECT_EQ(events[0].bytes, "{\"v\":2}");
}

TEST_F(ConfigFileSourceTest, SeesAnEditorsWriteToTempAndRename) {
  src->read_current();
  const std::string tmp = dir + "/.flowrelay.json.swp";
  write_file(tmp, "{\"v\":3}");
  ASSERT_EQ(::rename(tmp.c_str(), file.c_str()), 0);
  wait_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::content);
  EXPECT_EQ(events[0].bytes, "{\"v\":3}");

  // And again: a watch on the old inode would be dead by now.
  write_file(tmp, "{\"v\":4}");
  ASSERT_EQ(::rename(tmp.c_str(), file.c_str()), 0);
  wait_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].bytes, "{\"v\":4}");
}

TEST_F(ConfigFileSourceTest, ReportsDeletionAndRecreation) {
  src->read_current();
  ASSERT_EQ(::unlink(file.c_str()), 0);
  wait_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::deleted);

  write_file(file, "{\"v\":5}");
  wait_events(2);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, Kind::content);
  EXPECT_EQ(events[1].bytes, "{\"v\":5}");
}

TEST_F(ConfigFileSourceTest, IgnoresOtherFilesAndUnchangedRewrites) {
  src->read_current();
  write_file(dir + "/other.json", "x");
  write_file(file, "{\"v\":1}");  // same bytes: nothing to report
  expect_quiet();
  write_file(file, "{\"v\":6}");
  wait_events(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].bytes, "{\"v\":6}");
}

TEST_F(ConfigFileSourceTest, UnreadableFileIsAnErrorNotADeletion) {
  src->read_current();
  // Root reads mode-000 files: read as "nobody" (fsuid is per thread; a non-zero fsuid drops the
  // DAC-override capabilities, going back to 0 restores them).
  ASSERT_EQ(::chmod(file.c_str(), 0), 0);
  write_file(dir + "/.tmp", "{}");
  ASSERT_EQ(::chmod((dir + "/.tmp").c_str(), 0), 0);
  ASSERT_EQ(::rename((dir + "/.tmp").c_str(), file.c_str()), 0);
  ::setfsuid(65534);
  wait_events(1);
  ::setfsuid(0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, Kind::error);
  EXPECT_NE(events[0].detail.find("Permission denied"), std::string::npos) << events[0].detail;
}

}  // namespace
}  // namespace flowrelay::linux_host
