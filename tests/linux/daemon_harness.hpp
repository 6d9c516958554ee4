#pragma once
// Test-only: the `flowrelay run` binary started inside a test's app namespace, echo servers in the
// world namespace, and app flows that exchange data continuously and check every byte.

#include "extension/linux/control_socket.hpp"
#include "tests/linux/tproxy_world.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <linux/capability.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

namespace flowrelay::linux_host::testing {

using Clock = std::chrono::steady_clock;

/// Polls `cond` until it holds or `ms` pass (a condition with a deadline, not a sleep).
inline bool eventually(const std::function<bool()>& cond, int ms = 5000, int step_ms = 10) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    if (cond()) return true;
    if (Clock::now() >= deadline) return false;
    ::poll(nullptr, 0, step_ms);  // pacing between probes of a condition
  }
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/flowrelay-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf " + path).c_str()); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

/// Writes `text` to `path` the way editors do: a temp file renamed over it.
inline void write_config(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  ::rename(tmp.c_str(), path.c_str());
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// A config claiming TCP to the world on `tcp_ports` and UDP on `udp_ports`.
inline std::string config_text(const std::string& policy, std::vector<int> tcp_ports, std::vector<int> udp_ports,
                               const std::string& socket, int drain_ms = 200) {
  auto list = [](const std::vector<int>& v) {
    std::string s;
    for (int p : v) s += (s.empty() ? "" : ", ") + std::to_string(p);
    return s;
  };
  std::string rules;
  if (!tcp_ports.empty())
    rules += R"({"name": "tcp", "verdict": "claim", "proto": "tcp", "dst": ["203.0.113.0/24", "2001:db8::/32"], "ports": [)" +
             list(tcp_ports) + "]}";
  if (!udp_ports.empty())
    rules += std::string(rules.empty() ? "" : ", ") +
             R"({"name": "udp", "verdict": "claim", "proto": "udp", "dst": ["203.0.113.0/24", "2001:db8::/32"], "ports": [)" +
             list(udp_ports) + "]}";
  return R"({"default": "bypass", "rules": [)" + rules + R"(], "reclaim": {"policy": ")" + policy +
         R"(", "debounce_ms": 50, "drain_ms": )" + std::to_string(drain_ms) +
         R"(, "min_restart_interval_ms": 1000}, "control": {"socket": ")" + socket + R"("}})";
}

/// How a service manager starts the daemon, as systemd would for flowrelay.service.
struct Launch {
  std::vector<std::string> env;       // added to the environment (e.g. NOTIFY_SOCKET=...)
  std::uint64_t bounding_set = ~0ull;  // capability bounding set (CapabilityBoundingSet=)
};

/// `flowrelay run` in the app namespace (forked, setns, exec).
class Daemon {
 public:
  /// `nofile_soft` > 0 starts the daemon with that soft open-files limit (the hard one unchanged).
  Daemon(const Netns& ns, std::string config, std::string socket, std::string log, std::vector<std::string> extra = {},
         rlim_t nofile_soft = 0, Launch launch = {})
      : socket_(std::move(socket)), log_(std::move(log)) {
    std::vector<std::string> args = {FLOWRELAY_BIN, "--log-level", ::getenv("FLOWRELAY_TEST_LOG") ? ::getenv("FLOWRELAY_TEST_LOG") : "info", "run", "--config", config};
    for (auto& a : extra) args.push_back(a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = launch.env;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int ns_fd = ns.fd();
    const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::setns(ns_fd, CLONE_NEWNET) != 0) ::_exit(120);
      if (nofile_soft > 0) {
        rlimit r{};
        ::getrlimit(RLIMIT_NOFILE, &r);
        r.rlim_cur = nofile_soft;
        if (::setrlimit(RLIMIT_NOFILE, &r) != 0) ::_exit(122);
      }
      for (int c = 0; c <= CAP_LAST_CAP; ++c)
        if ((launch.bounding_set & (1ull << c)) == 0 && ::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) ::_exit(123);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(121);
    }
    ::close(log_fd);
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  /// Waits until the control socket answers with an applied epoch; false if the daemon exited.
  bool wait_ready(int ms = 10000) {
    return eventually([&] {
      if (exited()) return true;
      auto e = epochs();
      return e.is_object() && !e.as_object().at("current").is_null();
    }, ms) && !exited();
  }
  bool exited() {
    if (pid_ <= 0) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      status_ = st;
      pid_ = -1;
      return true;
    }
    return false;
  }
  /// Exit status after the daemon ended (waits up to `ms`); -1 if it did not.
  int wait_exit(int ms = 10000) {
    if (!eventually([&] { return exited(); }, ms)) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  int terminate(int ms = 10000) {
    if (pid_ > 0) ::kill(pid_, SIGTERM);
    return wait_exit(ms);
  }
  void kill9() {
    if (pid_ > 0) ::kill(pid_, SIGKILL);
    wait_exit();
  }
  void hup() {
    if (pid_ > 0) ::kill(pid_, SIGHUP);
  }

  boost::json::value request(const std::string& cmd) const {
    std::string err;
    auto a = control_request(socket_, cmd, err, 5000);
    if (!a) return nullptr;
    try {
      return boost::json::parse(*a);
    } catch (...) {
      return nullptr;
    }
  }
  boost::json::value flows() const { return request("flows"); }
  boost::json::value epochs() const { return request("epochs"); }
  std::int64_t current_epoch() const {
    auto e = epochs();
    if (!e.is_object() || e.as_object().at("current").is_null()) return 0;
    return e.as_object().at("current").to_number<std::int64_t>();
  }
  std::string log() const { return read_text(log_); }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  std::string socket_;
  std::string log_;
};

/// Echo servers on the world's listeners (TCP :80 :443, UDP :5353), on one epoll thread.
class EchoWorld {
 public:
  explicit EchoWorld(const World& w) : stop_(::eventfd(0, EFD_CLOEXEC)) {
    listeners_ = {w.tcp80, w.tcp443};
    for (int fd : listeners_) ::listen(fd, 4096);  // World listens with 64: room for the scale test's bursts
    udp_ = w.udp5353;
    thread_ = std::thread([this] { run(); });
  }
  ~EchoWorld() {
    std::uint64_t one = 1;
    (void)!::write(stop_, &one, sizeof one);
    thread_.join();
    for (int fd : conns_) ::close(fd);
    ::close(stop_);
  }
  /// TCP connections accepted so far (relay upstreams and bypassed apps).
  std::size_t accepted() const { return accepted_.load(); }

 private:
  void run() {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    auto add = [&](int fd) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    };
    for (int fd : listeners_) {
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
      add(fd);
    }
    ::fcntl(udp_, F_SETFL, ::fcntl(udp_, F_GETFL) | O_NONBLOCK);
    add(udp_);
    add(stop_);
    std::vector<epoll_event> events(512);
    std::vector<char> buf(1 << 16);
    for (;;) {
      int n = ::epoll_wait(ep, events.data(), int(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_) {
          ::close(ep);
          return;
        }
        if (fd == listeners_[0] || fd == listeners_[1]) {
          int c;
          while ((c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            add(c);
            conns_.push_back(c);
            accepted_.fetch_add(1);
          }
          continue;
        }
        if (fd == udp_) {
          for (;;) {
            sockaddr_storage from{};
            socklen_t len = sizeof from;
            ssize_t k = ::recvfrom(udp_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (k < 0) break;
            ::sendto(udp_, buf.data(), std::size_t(k), 0, reinterpret_cast<sockaddr*>(&from), len);
          }
          continue;
        }
        ssize_t k = ::recv(fd, buf.data(), buf.size(), 0);
        if (k > 0) {
          std::size_t off = 0;
          while (off < std::size_t(k)) {
            ssize_t wr = ::send(fd, buf.data() + off, std::size_t(k) - off, MSG_NOSIGNAL);
            if (wr > 0) off += std::size_t(wr);
            else if (errno != EAGAIN) break;
            else {
              pollfd p{fd, POLLOUT, 0};
              ::poll(&p, 1, 1000);
            }
          }
        } else if (k == 0 || errno != EAGAIN) {
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          ::close(fd);
          std::erase(conns_, fd);
        }
      }
    }
  }

  int stop_;
  std::vector<int> listeners_;
  int udp_ = -1;
  std::vector<int> conns_;
  std::atomic<std::size_t> accepted_{0};
  std::thread thread_;
};

/// One app flow as the traffic loop keeps it.
struct AppFlow {
  std::string ip;
  std::uint16_t port = 0;
  bool udp = false;
  int fd = -1;
  std::string local;           // the current socket's endpoint, as the daemon shows it
  std::uint64_t bytes_ok = 0;  // echoed bytes that matched, over all its connections
  int reconnects = 0;          // TCP: closed under it and connected again
  int mismatches = 0;          // echoed bytes that differed (any is a failure)
  int lost = 0;                // UDP datagrams without an echo in time
  std::uint64_t seq = 0;
  Clock::time_point last_closed{};
  long max_connect_ms = 0;     // the slowest (re)connect
  long max_echo_ms = 0;        // the slowest echo
};

inline AppFlow app_flow(const std::string& ip, std::uint16_t port, bool udp = false) {
  AppFlow f;
  f.ip = ip;
  f.port = port;
  f.udp = udp;
  return f;
}

inline std::string endpoint_string(int fd) {
  auto a = local_addr(fd);
  char buf[INET6_ADDRSTRLEN] = {};
  if (a.family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(a.ss).sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(a.port());
  }
  ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(a.ss).sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(a.port());
}

/// A blocking TCP socket connected within `ms` (a dead daemon must fail a test fast, not after the
/// kernel's two minutes of SYN retries); -1 otherwise.
inline int tcp_connect_within(const std::string& ip, std::uint16_t port, int ms) {
  auto a = make_addr(ip, port);
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (::connect(fd, a.sa(), a.len) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  if (::poll(&p, 1, ms) != 1 || ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
    ::close(fd);
    return -1;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/// App flows in the app namespace exchanging data in rounds on their own thread: each round, every
/// flow sends a message and waits for its echo, comparing every byte. A TCP flow closed under it
/// (ECONNABORTED, reset, EOF) is counted and reconnected at once, as an app would.
class Traffic {
 public:
  Traffic(const Netns& app, std::vector<AppFlow> flows) : flows_(std::move(flows)), published_(flows_) {
    std::atomic<bool> opened{false};
    thread_ = std::thread([this, &app, &opened] {
      auto in = app.enter();
      for (std::size_t i = 0; i < flows_.size(); ++i) {
        open(flows_[i]);
        publish(i);
      }
      opened = true;
      while (!stop_.load()) round();
      for (auto& f : flows_)
        if (f.fd >= 0) ::close(f.fd);
    });
    while (!opened.load()) std::this_thread::yield();
  }
  ~Traffic() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::uint64_t rounds() const { return rounds_.load(); }
  /// Waits until `n` more rounds completed.
  bool wait_rounds(std::uint64_t n, int ms = 10000) {
    const auto target = rounds() + n;
    return eventually([&] { return rounds() >= target; }, ms, 5);
  }
  std::vector<AppFlow> flows() const {
    std::lock_guard lk(mu_);
    return published_;
  }

 private:
  static std::string pattern(std::uint64_t seq, std::size_t n, std::size_t salt) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seq * 131 + i * 7 + salt) & 0xff);
    return s;
  }
  void open(AppFlow& f) {
    if (f.udp) {
      auto a = make_addr(f.ip, f.port);
      f.fd = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
      ::connect(f.fd, a.sa(), a.len);
    } else {
      const auto t0 = Clock::now();
      f.fd = tcp_connect_within(f.ip, f.port, 3000);
      f.max_connect_ms = std::max<long>(
          f.max_connect_ms, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
    }
    f.local = f.fd >= 0 ? endpoint_string(f.fd) : "";
  }
  /// Copies flow i where flows() reads it; the lock is held only for the copy.
  void publish(std::size_t i) {
    std::lock_guard lk(mu_);
    published_[i] = flows_[i];
  }
  void round() {
    for (std::size_t i = 0; i < flows_.size(); ++i) {
      step(i);
      publish(i);
    }
    rounds_.fetch_add(1);
  }
  void step(std::size_t i) {
    {
      auto& f = flows_[i];
      if (f.fd < 0) {
        open(f);
        return;
      }
      const std::string msg = pattern(f.seq, f.udp ? 200 : 512, i);
      if (f.udp) {
        ::send(f.fd, msg.data(), msg.size(), 0);
        char buf[512];
        bool got = false;
        while (wait_readable(f.fd, 1000)) {
          ssize_t k = ::recv(f.fd, buf, sizeof buf, 0);
          if (k <= 0) break;
          if (std::string(buf, std::size_t(k)) == msg) {
            got = true;
            break;
          }  // a late echo of an earlier datagram: skip it
        }
        if (got) f.bytes_ok += msg.size();
        else ++f.lost;
        ++f.seq;
        return;
      }
      const auto t0 = Clock::now();
      bool broken = !send_all(f.fd, msg);
      std::string back;
      if (!broken) {
        back = recv_n(f.fd, msg.size(), 3000);
        broken = back.size() != msg.size();
      }
      if (broken) {
        // Closed under us (destroyed, released, restarted): count it and reconnect, as an app would.
        ::close(f.fd);
        f.fd = -1;
        ++f.reconnects;
        f.last_closed = Clock::now();
        open(f);
        return;
      }
      f.max_echo_ms = std::max<long>(
          f.max_echo_ms, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
      if (back == msg) f.bytes_ok += msg.size();
      else ++f.mismatches;
      ++f.seq;
    }
  }

  std::vector<AppFlow> flows_;  // the traffic thread's own
  mutable std::mutex mu_;
  std::vector<AppFlow> published_;  // what flows() returns
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> rounds_{0};
  std::thread thread_;
};

/// The daemon's view of one app endpoint: "claim"/"bypass" and the epoch, or empty when absent.
struct Seen {
  std::string verdict;
  std::int64_t epoch = -1;
};

/// Flows are told apart by source AND destination: connect() shares an ephemeral port between
/// flows to different destinations.
inline std::string flow_key(const std::string& src, const std::string& dst) { return src + " > " + dst; }

inline std::string flow_key(const AppFlow& f) {
  return flow_key(f.local, f.ip.find(':') == std::string::npos ? f.ip + ":" + std::to_string(f.port)
                                                               : "[" + f.ip + "]:" + std::to_string(f.port));
}

/// The daemon's flows of `proto`, by flow_key.
inline std::map<std::string, Seen> seen_by_src(const boost::json::value& flows, const std::string& proto) {
  std::map<std::string, Seen> out;
  if (!flows.is_object()) return out;
  for (const auto& f : flows.as_object().at("flows").as_array()) {
    const auto& o = f.as_object();
    if (o.at("proto").as_string() != proto) continue;
    if (o.at("state").is_string()) {
      const std::string st(o.at("state").as_string());
      if (o.at("verdict").as_string() == "claim" && st != "open" && st != "connecting") continue;  // closing
    }
    out[flow_key(std::string(o.at("src").as_string()), std::string(o.at("dst").as_string()))] = {std::string(o.at("verdict").as_string()), o.at("epoch").to_number<std::int64_t>()};
  }
  return out;
}

}  // namespace flowrelay::linux_host::testing
