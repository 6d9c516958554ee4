#include "extension/control/check_config.hpp"

#include "tests/support/in_child.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace flowrelay::control {
namespace {

namespace fs = std::filesystem;

struct ControlCheckConfig : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("flowrelay-check-config-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::string write(const std::string& text) {
    auto p = (dir / "flowrelay.json").string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  std::ostringstream out, err;
};

TEST_F(ControlCheckConfig, ValidFileExitsZeroWithASummary) {
  auto path = write(R"({"default": "bypass", "rules": [
      {"name": "web", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24", "2001:db8::/32"],
       "ports": [443, "8000-8099"], "uids": [1000]},
      {"verdict": "bypass", "ports": [22]}],
    "reclaim": {"policy": "restart"}, "linux": {"fwmark": 16}})");
  EXPECT_EQ(check_config_command(path, out, err, PlatformCaps::for_linux()), 0);
  EXPECT_EQ(err.str(), "");
  const std::string s = out.str();
  EXPECT_NE(s.find(path + ": valid for linux"), std::string::npos) << s;
  EXPECT_NE(s.find("rules: 2"), std::string::npos) << s;
  EXPECT_NE(s.find("web"), std::string::npos) << s;
  EXPECT_NE(s.find("203.0.113.0/24 +1"), std::string::npos) << s;
  EXPECT_NE(s.find("443,8000-8099"), std::string::npos) << s;
  EXPECT_NE(s.find("uids 1000"), std::string::npos) << s;
  EXPECT_NE(s.find("rules[1]"), std::string::npos) << s;
  EXPECT_NE(s.find("reclaim: restart"), std::string::npos) << s;
  EXPECT_NE(s.find("fwmark 0x10"), std::string::npos) << s;
  EXPECT_LE(std::count(s.begin(), s.end(), '\n'), 24);  // one screen
}

TEST_F(ControlCheckConfig, InvalidFileExitsTwoWithThePathOfTheFault) {
  auto path = write(R"({"rules": [{"verdict": "claim", "ports": [70000]}]})");
  EXPECT_EQ(check_config_command(path, out, err, PlatformCaps::for_linux()), 2);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(), path + ": rules[0].ports[0]: 70000 is not a port (1-65535)\n");
}

TEST_F(ControlCheckConfig, PlatformDecidesValidity) {
  auto path = write(R"({"rules": [{"verdict": "claim", "hosts": ["*.example.com"]}]})");
  EXPECT_EQ(check_config_command(path, out, err, PlatformCaps::for_apple()), 0);
  EXPECT_EQ(check_config_command(path, out, err, PlatformCaps::for_linux()), 2);
  EXPECT_NE(err.str().find("rules[0].hosts: not supported on linux"), std::string::npos);
}

TEST_F(ControlCheckConfig, MissingFileExitsTwo) {
  EXPECT_EQ(check_config_command((dir / "nope.json").string(), out, err), 2);
  EXPECT_NE(err.str().find("cannot read"), std::string::npos);
}

TEST_F(ControlCheckConfig, LongRuleListsAreCutToOneScreen) {
  std::string rules;
  for (int i = 0; i < 50; ++i) rules += std::string(i ? "," : "") + R"({"verdict": "claim", "ports": [)" + std::to_string(i + 1) + "]}";
  auto path = write(R"({"rules": [)" + rules + "]}");
  EXPECT_EQ(check_config_command(path, out, err, PlatformCaps::for_linux()), 0);
  EXPECT_NE(out.str().find("... and 30 more rules"), std::string::npos);
}

// DESIGN.md "Security model": the config path must be a regular file, read with a size cap and
// without blocking. Each case runs in a child with a deadline and a memory cap: a FIFO must not
// hang check-config, /dev/zero must not be read until memory runs out.
TEST_F(ControlCheckConfig, ADirectoryAFifoDevZeroOrAnOversizedFileExitsTwoPromptlyWithTheReason) {
  const auto fifo = (dir / "fifo.json").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string json = R"({"rules": []})";
  const auto big = write(json + std::string((std::size_t{2} << 20) - json.size(), ' '));
  ASSERT_EQ(fs::file_size(big), std::size_t{2} << 20);
  const std::pair<std::string, std::string> cases[] = {
      {dir.string(), "is a directory"},
      {fifo, "is not a regular file (a FIFO)"},
      {"/dev/zero", "is not a regular file (a character device)"},
      {big, "is 2 MiB, over the 1 MiB limit"},
  };
  for (const auto& [path, why] : cases) {
    SCOPED_TRACE(path);
    auto got = test::in_child_within(5000, [&] {
      std::ostringstream o, e;
      const int rc = check_config_command(path, o, e, PlatformCaps::for_linux());
      return std::to_string(rc) + "|" + o.str() + "|" + e.str();
    });
    EXPECT_EQ(got.value_or("(no answer within 5 s, or out of memory)"), "2||" + path + ": " + why + "\n");
  }
}

}  // namespace
}  // namespace flowrelay::control
