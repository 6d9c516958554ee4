#include "extension/control/config_file.hpp"

#include "tests/support/in_child.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace flowrelay::control {
namespace {

namespace fs = std::filesystem;

struct ControlConfigFile : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("flowrelay-config-file-" + std::to_string(::getpid()) + "-" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string write(const std::string& name, const std::string& bytes) {
    auto p = (dir / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  std::string fifo(const std::string& name) {
    auto p = (dir / name).string();
    EXPECT_EQ(::mkfifo(p.c_str(), 0600), 0);
    return p;
  }
};

/// read_config_file in a child with a deadline: "error|message|size", or "(timeout)".
std::string read_within(const std::string& path, std::size_t limit = kMaxConfigFileBytes) {
  auto got = test::in_child_within(5000, [&] {
    auto t = read_config_file(path, limit);
    return std::to_string(t.error) + "|" + t.message + "|" + std::to_string(t.bytes.size());
  });
  return got ? *got : "(timeout)";
}

TEST_F(ControlConfigFile, ReadsARegularFileWhole) {
  const auto p = write("c.json", R"({"rules": []})");
  auto t = read_config_file(p);
  ASSERT_TRUE(t) << t.message;
  EXPECT_EQ(t.bytes, R"({"rules": []})");
  EXPECT_EQ(t.message, "");
}

TEST_F(ControlConfigFile, ADirectoryIsNamedAsOne) {
  auto t = read_config_file(dir.string());
  EXPECT_FALSE(t);
  EXPECT_EQ(t.error, EISDIR);
  EXPECT_EQ(t.message, dir.string() + ": is a directory");
}

TEST_F(ControlConfigFile, AFifoWithoutAWriterIsRefusedAtOnce) {
  const auto p = fifo("c.json");
  EXPECT_EQ(read_within(p), std::to_string(EINVAL) + "|" + p + ": is not a regular file (a FIFO)|0");
}

TEST_F(ControlConfigFile, DevZeroIsRefusedNotReadForever) {
  EXPECT_EQ(read_within("/dev/zero"), std::to_string(EINVAL) + "|/dev/zero: is not a regular file (a character device)|0");
}

TEST_F(ControlConfigFile, AFileOverOneMebibyteIsRefusedWithItsSize) {
  const auto p = write("big.json", std::string(std::size_t{2} << 20, ' '));
  auto t = read_config_file(p);
  EXPECT_EQ(t.error, EFBIG);
  EXPECT_EQ(t.message, p + ": is 2 MiB, over the 1 MiB limit");
  EXPECT_TRUE(t.bytes.empty());
  // Exactly at the cap is fine; one byte over is not.
  EXPECT_TRUE(read_config_file(write("max.json", std::string(kMaxConfigFileBytes, ' '))));
  auto over = read_config_file(write("over.json", std::string(kMaxConfigFileBytes + 1, ' ')));
  EXPECT_EQ(over.message, (dir / "over.json").string() + ": is 1048577 bytes, over the 1 MiB limit");
}

// procfs files say size 0 and then deliver more: what stops the read is the cap, not fstat().
TEST_F(ControlConfigFile, ReadingStopsAtTheCapWhateverTheSizeSaid) {
  auto t = read_config_file("/proc/self/maps", 64);
  EXPECT_EQ(t.error, EFBIG);
  EXPECT_EQ(t.message, "/proc/self/maps: passed the 64 bytes limit while being read");
  EXPECT_TRUE(t.bytes.empty());
}

TEST_F(ControlConfigFile, ASymlinkToARegularFileIsFollowed) {
  const auto target = write("real.json", "{}");
  const auto link = (dir / "link.json").string();
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  auto t = read_config_file(link);
  ASSERT_TRUE(t) << t.message;
  EXPECT_EQ(t.bytes, "{}");
}

TEST_F(ControlConfigFile, ASymlinkToAFifoIsRefused) {
  const auto target = fifo("pipe");
  const auto link = (dir / "link.json").string();
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_EQ(read_within(link), std::to_string(EINVAL) + "|" + link + ": is not a regular file (a FIFO)|0");
}

TEST_F(ControlConfigFile, AMissingOrUnreadableFileSaysWhy) {
  const auto missing = (dir / "nope.json").string();
  auto t = read_config_file(missing);
  EXPECT_EQ(t.error, ENOENT);
  EXPECT_EQ(t.message, missing + ": cannot read: No such file or directory");

  const auto secret = write("secret.json", "{}");
  ASSERT_EQ(::chmod(secret.c_str(), 0), 0);
  // Root reads any file: check as nobody, in a child.
  auto as_nobody = test::in_child_within(5000, [&] {
    if (::getuid() == 0 && ::setuid(65534) != 0) return std::string("setuid failed");
    return read_config_file(secret).message;
  });
  ASSERT_TRUE(as_nobody.has_value());
  EXPECT_EQ(*as_nobody, secret + ": cannot read: Permission denied");
}

}  // namespace
}  // namespace flowrelay::control
