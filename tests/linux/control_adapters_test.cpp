// The header-only seams to the control plane: InotifyConfigSource and nft_spec_from_config.
#include "extension/linux/control_socket.hpp"
#include "extension/linux/inotify_config_source.hpp"
#include "extension/linux/run_command.hpp"
#include "extension/linux/nft_spec_from_config.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <thread>
#include <vector>

namespace flowrelay::linux_host {
namespace {

TEST(InotifyConfigSource, DeliversCurrentContentOnStartThenChangesAsConfigEvents) {
  char tmpl[] = "/tmp/flowrelay-cfg-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl, file = dir + "/f.json";
  auto write = [](const std::string& p, const std::string& s) {
    FILE* f = std::fopen(p.c_str(), "w");
    std::fputs(s.c_str(), f);
    std::fclose(f);
  };
  write(file, "A");
  std::vector<control::ConfigEvent> got;
  {
    InotifyConfigSource src(file);
    control::ConfigSource& as_source = src;
    as_source.start([&](control::ConfigEvent e) { got.push_back(std::move(e)); });
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].kind, control::ConfigEvent::Kind::content);
    EXPECT_EQ(got[0].bytes, "A");
    EXPECT_EQ(got[0].source, "file:" + file);

    write(dir + "/.tmp", "B");
    ASSERT_EQ(::rename((dir + "/.tmp").c_str(), file.c_str()), 0);
    pollfd p{src.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    src.handle_events();
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].bytes, "B");

    as_source.stop();
    ::unlink(file.c_str());
    ASSERT_EQ(::poll(&p, 1, 5000), 1);
    src.handle_events();
    EXPECT_EQ(got.size(), 2u);  // nothing after stop()
  }
  std::system(("rm -rf '" + dir + "'").c_str());
}

TEST(NftSpecFromConfig, CarriesRulesMarksAndEpoch) {
  control::Config c;
  c.default_verdict = control::Verdict::bypass;
  c.linux_settings = {.tproxy_port = 7000, .fwmark = 3, .route_table = 100, .bypass_mark = 77, .run_as = {},
                      .gateway = {.interfaces = {"br0"}, .sources = {{boost::asio::ip::make_address("10.9.0.0"), 24}}}};
  control::Rule r;
  r.name = "web";
  r.verdict = control::Verdict::claim;
  r.proto = control::ProtoMatch::tcp;
  r.dst = {{boost::asio::ip::make_address("203.0.113.0"), 24}};
  r.ports = {{443, 443}, {8000, 8099}};
  r.uids = {1000};
  c.rules = {r};
  auto s = nft_spec_from_config(c, 9, 1234);
  EXPECT_EQ(s.tproxy_port, 7000);
  EXPECT_EQ(s.fwmark, 3u);
  EXPECT_EQ(s.bypass_mark, 77u);
  EXPECT_EQ(s.epoch, 9u);
  ASSERT_EQ(s.rules.size(), 1u);
  EXPECT_EQ(s.rules[0].verdict, Verdict::claim);
  EXPECT_EQ(s.rules[0].proto, ProtoMatch::tcp);
  EXPECT_EQ(s.rules[0].dst[0].to_string(), "203.0.113.0/24");
  EXPECT_EQ(s.rules[0].ports[1].hi, 8099);
  const std::string t = render(s);
  EXPECT_NE(t.find("tproxy ip to 127.0.0.1:7000 meta mark set meta mark & 0xffffffb0 | 0x00000003"), std::string::npos) << t;
  EXPECT_NE(t.find("meta skuid { 1000 } ct mark set ct mark & 0x0000ffff | 0x80090000 return comment \"web\""),
            std::string::npos) << t;
  EXPECT_NE(t.find("iifname { \"br0\" } ip saddr { 10.9.0.0/24 } goto gateway"), std::string::npos) << t;

  c.rules[0].hosts = {"*.example.com"};
  EXPECT_THROW(nft_spec_from_config(c, 9, 1234), std::invalid_argument);
}

/// A daemon that answers `flows` with `answer`, on a socket of its own.
class FakeDaemon {
 public:
  explicit FakeDaemon(std::string answer)
      : FakeDaemon(ControlServer::Handler([a = std::move(answer)](std::string_view) { return a; })) {}
  explicit FakeDaemon(ControlServer::Handler handler)
      : server_(io_, path_, std::move(handler)), thread_([this] { io_.run(); }) {}
  ~FakeDaemon() {
    boost::asio::post(io_, [this] { server_.close(); });
    thread_.join();
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_ = "/tmp/flowrelay-fake-" + std::to_string(::getpid()) + ".sock";
  boost::asio::io_context io_;
  ControlServer server_;
  std::thread thread_;
};

TEST(ControlServer, TheCommandIsTheRequestLineLessTrailingCrLf) {
  FakeDaemon daemon(ControlServer::Handler([](std::string_view cmd) { return "[" + std::string(cmd) + "]"; }));
  for (const auto& [request, seen] : std::vector<std::pair<std::string, std::string>>{
           {"flows", "[flows]"}, {"epochs\r", "[epochs]"}, {"epochs-table\r\r", "[epochs-table]"},
           {" flows ", "[ flows ]"}, {"", "[]"}}) {
    std::string error;
    EXPECT_EQ(control_request(daemon.path(), request, error).value_or(error), seen) << request;
  }
}

TEST(FlowsCommand, AMalformedAnswerIsAnErrorOrADashNeverACrash) {
  struct Case {
    const char* answer;
    int rc;
    const char* shows;
  };
  const Case cases[] = {
      {"not json", 1, "bad answer from the daemon"},
      {"[1, 2]", 1, "not a flows object"},
      {R"({"flows": 7})", 1, "not a flows object"},
      // Rows of the wrong type or fields missing or mistyped: shown as "-" or as they came.
      {R"({"epoch": [], "flows": [1, {"id": "x", "bytes_up": null}, {}]})", 0, "x "},
  };
  for (const auto& c : cases) {
    FakeDaemon daemon(c.answer);
    std::ostringstream out, err;
    EXPECT_EQ(flows_command(daemon.path(), false, out, err), c.rc) << c.answer;
    EXPECT_NE((out.str() + err.str()).find(c.shows), std::string::npos) << c.answer << ": " << out.str() << err.str();
  }
}

TEST(ControlServer, AnOversizedRequestIsCutOffWithoutAnAnswerAndOthersAreServed) {
  FakeDaemon daemon(R"({"epoch": 1, "claimed": 0, "bypassed": 0, "flows": []})");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", daemon.path().c_str());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  const std::string big(8192, 'f');  // twice the 4 KiB limit, and no end of line
  (void)::send(fd, big.data(), big.size(), MSG_NOSIGNAL);
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1) << "the server kept an oversized request open";
  char c;
  EXPECT_LE(::recv(fd, &c, 1, 0), 0);  // closed (or reset), no answer
  ::close(fd);
  std::ostringstream out, err;
  EXPECT_EQ(flows_command(daemon.path(), false, out, err), 0) << err.str();
}

}  // namespace
}  // namespace flowrelay::linux_host
