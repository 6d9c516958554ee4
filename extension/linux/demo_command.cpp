#include "extension/linux/demo_command.hpp"

#include "extension/linux/control_socket.hpp"

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <map>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay::linux_host {

namespace {

namespace json = boost::json;
using Clock = std::chrono::steady_clock;

std::atomic<bool> g_interrupted{false};
extern "C" void demo_on_signal(int) { g_interrupted.store(true); }

constexpr const char* kWorldV4 = "203.0.113.10";
constexpr const char* kWorldV6 = "2001:db8::10";

long ms_since(Clock::time_point t) {
  return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
}

// ---- namespaces --------------------------------------------------------------------------------

int open_current_netns() { return ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC); }

void bring_up_lo() {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ::ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  ::close(s);
}

/// An anonymous network namespace, alive while its fd (or a process inside) is.
class Netns {
 public:
  Netns() = default;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool create(std::string& why) {
    const int home = open_current_netns();
    if (home < 0) {
      why = std::string("cannot open this thread's network namespace: ") + std::strerror(errno);
      return false;
    }
    if (::unshare(CLONE_NEWNET) != 0) {
      why = std::string("unshare(CLONE_NEWNET) failed: ") + std::strerror(errno) +
            " (needs CAP_SYS_ADMIN, and a kernel and container that allow new network namespaces)";
      ::close(home);
      return false;
    }
    fd_ = open_current_netns();
    bring_up_lo();
    if (::setns(home, CLONE_NEWNET) != 0) std::abort();  // never go on in the wrong namespace
    ::close(home);
    return true;
  }
  int fd() const { return fd_; }
  std::string path() const { return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(fd_); }

 private:
  int fd_ = -1;
};

/// The calling thread inside `ns` until destruction.
class Inside {
 public:
  explicit Inside(const Netns& ns) : home_(open_current_netns()) {
    if (home_ < 0 || ::setns(ns.fd(), CLONE_NEWNET) != 0) throw std::runtime_error("setns into the demo namespace");
  }
  ~Inside() {
    if (::setns(home_, CLONE_NEWNET) != 0) std::abort();
    ::close(home_);
  }
  Inside(const Inside&) = delete;
  Inside& operator=(const Inside&) = delete;

 private:
  int home_;
};

/// Runs a set-up command (iproute2) in the calling thread's namespace; its output on failure.
bool sh(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = ::popen(("{\n" + cmd + "\n} 2>&1").c_str(), "r");
  if (p == nullptr) return false;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void write_knob(const char* path, const char* value) {
  if (FILE* f = std::fopen(path, "w")) {
    std::fputs(value, f);
    std::fclose(f);
  }
}

// ---- sockets -----------------------------------------------------------------------------------

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr make_addr(const std::string& ip, std::uint16_t port) {
  Addr a;
  if (ip.find(':') == std::string::npos) {
    auto& in = reinterpret_cast<sockaddr_in&>(a.ss);
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &in.sin_addr);
    a.len = sizeof(sockaddr_in);
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(a.ss);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip.c_str(), &in6.sin6_addr);
    a.len = sizeof(sockaddr_in6);
  }
  return a;
}

std::string local_string(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(ss);
    ::inet_ntop(AF_INET, &in.sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in.sin_port));
  }
  auto& in6 = reinterpret_cast<sockaddr_in6&>(ss);
  ::inet_ntop(AF_INET6, &in6.sin6_addr, buf, sizeof buf);
  return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6.sin6_port));
}

bool readable(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

// ---- the world: echo servers on :80 :443 (TCP) and :5353 (UDP), dual stack ----------------------

class EchoWorld {
 public:
  bool start(std::string& why) {
    auto listener = [](std::uint16_t port) {
      int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int one = 1, zero = 0;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
      auto a = make_addr("::", port);
      if (::bind(fd, a.sa(), a.len) != 0 || ::listen(fd, 4096) != 0) {
        ::close(fd);
        return -1;
      }
      return fd;
    };
    tcp_ = {listener(80), listener(443)};
    udp_ = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int zero = 0;
    ::setsockopt(udp_, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    auto a = make_addr("::", 5353);
    if (tcp_[0] < 0 || tcp_[1] < 0 || ::bind(udp_, a.sa(), a.len) != 0) {
      why = std::string("world servers: ") + std::strerror(errno);
      return false;
    }
    stop_ = ::eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { run(); });
    return true;
  }
  ~EchoWorld() {
    if (thread_.joinable()) {
      std::uint64_t one = 1;
      (void)!::write(stop_, &one, sizeof one);
      thread_.join();
    }
    for (int fd : conns_) ::close(fd);
    for (int fd : tcp_)
      if (fd >= 0) ::close(fd);
    if (udp_ >= 0) ::close(udp_);
    if (stop_ >= 0) ::close(stop_);
  }

 private:
  void run() {
    int ep = ::epoll_create1(EPOLL_CLOEXEC);
    auto add = [&](int fd) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    };
    for (int fd : tcp_) add(fd);
    add(udp_);
    add(stop_);
    std::vector<epoll_event> events(256);
    std::vector<char> buf(1 << 16);
    for (;;) {
      const int n = ::epoll_wait(ep, events.data(), int(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_) {
          ::close(ep);
          return;
        }
        if (fd == tcp_[0] || fd == tcp_[1]) {
          int c;
          while ((c = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            add(c);
            conns_.push_back(c);
          }
          continue;
        }
        if (fd == udp_) {
          for (;;) {
            sockaddr_storage from{};
            socklen_t len = sizeof from;
            const ssize_t k = ::recvfrom(udp_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
            if (k < 0) break;
            ::sendto(udp_, buf.data(), std::size_t(k), 0, reinterpret_cast<sockaddr*>(&from), len);
          }
          continue;
        }
        const ssize_t k = ::recv(fd, buf.data(), buf.size(), 0);
        if (k > 0) {
          std::size_t off = 0;
          while (off < std::size_t(k)) {
            const ssize_t w = ::send(fd, buf.data() + off, std::size_t(k) - off, MSG_NOSIGNAL);
            if (w > 0) {
              off += std::size_t(w);
            } else if (errno == EAGAIN) {
              pollfd p{fd, POLLOUT, 0};
              ::poll(&p, 1, 1000);
            } else {
              break;
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

  std::vector<int> tcp_;
  int udp_ = -1;
  int stop_ = -1;
  std::vector<int> conns_;
  std::thread thread_;
};

// ---- the apps: long-lived flows exchanging data, every byte checked ----------------------------

struct AppFlow {
  std::string ip;
  std::uint16_t port = 0;
  bool udp = false;
  int fd = -1;
  std::string local;
  std::uint64_t bytes_ok = 0;
  std::uint64_t bytes_lost = 0;  // echoed wrong, or (UDP) never echoed
  int closed = 0;                // TCP: closed under the app (then reconnected)
  std::uint64_t seq = 0;
};

class Apps {
 public:
  Apps(const Netns& app, std::vector<AppFlow> flows) : flows_(std::move(flows)), published_(flows_) {
    std::atomic<bool> opened{false};
    thread_ = std::thread([this, &app, &opened] {
      Inside in(app);
      for (std::size_t i = 0; i < flows_.size(); ++i) {
        open(flows_[i]);
        publish(i);
      }
      opened = true;
      while (!stop_.load()) {
        for (std::size_t i = 0; i < flows_.size() && !stop_.load(); ++i) {
          step(i);
          publish(i);
        }
      }
      for (auto& f : flows_)
        if (f.fd >= 0) ::close(f.fd);
    });
    while (!opened.load()) std::this_thread::yield();
  }
  ~Apps() { stop(); }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<AppFlow> flows() const {
    std::lock_guard lk(mu_);
    return published_;
  }

 private:
  void publish(std::size_t i) {
    std::lock_guard lk(mu_);
    published_[i] = flows_[i];
  }
  static std::string pattern(std::uint64_t seq, std::size_t n, std::size_t salt) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((seq * 131 + i * 7 + salt) & 0xff);
    return s;
  }
  static void open(AppFlow& f) {
    auto a = make_addr(f.ip, f.port);
    f.fd = ::socket(a.family(), (f.udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (::connect(f.fd, a.sa(), a.len) != 0) {
      ::close(f.fd);
      f.fd = -1;
      return;
    }
    f.local = local_string(f.fd);
  }
  void step(std::size_t i) {
    auto& f = flows_[i];
    if (f.fd < 0) {
      open(f);
      return;
    }
    const std::string msg = pattern(f.seq++, f.udp ? 200 : 1024, i);
    if (f.udp) {
      ::send(f.fd, msg.data(), msg.size(), 0);
      char buf[512];
      while (readable(f.fd, 500)) {
        const ssize_t k = ::recv(f.fd, buf, sizeof buf, 0);
        if (k <= 0) break;
        if (std::string(buf, std::size_t(k)) == msg) {
          f.bytes_ok += msg.size();
          return;
        }
      }
      f.bytes_lost += msg.size();
      return;
    }
    bool broken = ::send(f.fd, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size());
    std::string back;
    char buf[4096];
    while (!broken && back.size() < msg.size()) {
      if (!readable(f.fd, 3000)) {
        broken = true;
        break;
      }
      const ssize_t k = ::recv(f.fd, buf, std::min(sizeof buf, msg.size() - back.size()), 0);
      if (k <= 0) broken = true;
      else back.append(buf, std::size_t(k));
    }
    if (broken) {  // closed under the app (reclaimed, released): reconnect, as apps do
      ::close(f.fd);
      f.fd = -1;
      ++f.closed;
      open(f);
      return;
    }
    if (back == msg) f.bytes_ok += msg.size();
    else f.bytes_lost += msg.size();
  }

  std::vector<AppFlow> flows_;
  mutable std::mutex mu_;
  std::vector<AppFlow> published_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- the daemon --------------------------------------------------------------------------------

std::string config_json(int epoch_rules, const std::string& socket) {
  const std::string dst = R"("dst": ["203.0.113.0/24", "2001:db8::/32"])";
  std::string rules = R"({"name": "web-tls", "verdict": "claim", "proto": "tcp", )" + dst + R"(, "ports": [443]})";
  if (epoch_rules >= 2 && epoch_rules != 3)
    rules += R"(, {"name": "web-plain", "verdict": "claim", "proto": "tcp", )" + dst + R"(, "ports": [80]})";
  if (epoch_rules >= 2)
    rules += R"(, {"name": "mdns", "verdict": "claim", "proto": "udp", )" + dst + R"(, "ports": [5353]})";
  return R"({"default": "bypass", "rules": [)" + rules +
         R"(], "reclaim": {"policy": "surgical", "debounce_ms": 50, "drain_ms": 300}, "control": {"socket": ")" +
         socket + R"("}})";
}

void write_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
  }
  ::rename(tmp.c_str(), path.c_str());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Daemon {
 public:
  bool start(const Netns& ns, const std::string& self, const std::string& config, const std::string& log) {
    std::vector<std::string> args = {self, "--log-level", "warn", "run", "--config", config};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int ns_fd = ns.fd();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // the demo killed outright: the daemon still cleans up
      if (::getppid() != parent) ::_exit(122);
      if (::setns(ns_fd, CLONE_NEWNET) != 0) ::_exit(120);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(121);
    }
    ::close(log_fd);
    return pid_ > 0;
  }
  bool running() {
    if (pid_ <= 0) return false;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    return true;
  }
  /// SIGTERM and wait (the daemon drains and removes its table and routes).
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 100 && running(); ++i) ::poll(nullptr, 0, 50);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  ~Daemon() { stop(); }

 private:
  pid_t pid_ = -1;
};

json::value ask(const std::string& socket, const char* cmd) {
  std::string err;
  auto a = control_request(socket, cmd, err, 3000);
  if (!a) return nullptr;
  try {
    return json::parse(*a);
  } catch (...) {
    return nullptr;
  }
}

/// Flows are told apart by protocol, source AND destination: connect() shares an ephemeral port
/// between flows to different destinations.
std::string flow_key(const std::string& proto, const std::string& src, const std::string& dst) {
  return proto + " " + src + " > " + dst;
}

std::string flow_key(const AppFlow& f) {
  const std::string dst = f.ip.find(':') == std::string::npos ? f.ip + ":" + std::to_string(f.port)
                                                              : "[" + f.ip + "]:" + std::to_string(f.port);
  return flow_key(f.udp ? "udp" : "tcp", f.local, dst);
}

struct View {
  std::int64_t epoch = 0;
  std::size_t claimed = 0, bypassed = 0;
  std::uint64_t relayed = 0;  // bytes both ways through the live claimed flows
  std::map<std::string, std::pair<std::string, std::int64_t>> by_src;  // flow_key -> (verdict, epoch)
};

View view(const std::string& socket) {
  View v;
  auto j = ask(socket, "flows");
  if (!j.is_object()) return v;
  const auto& o = j.as_object();
  v.epoch = o.at("epoch").to_number<std::int64_t>();
  v.claimed = o.at("claimed").to_number<std::size_t>();
  v.bypassed = o.at("bypassed").to_number<std::size_t>();
  for (const auto& f : o.at("flows").as_array()) {
    const auto& r = f.as_object();
    const std::string verdict(r.at("verdict").as_string());
    if (verdict == "claim") {
      v.relayed += r.at("bytes_up").to_number<std::uint64_t>() + r.at("bytes_down").to_number<std::uint64_t>();
      const std::string st(r.at("state").as_string());
      if (st != "open" && st != "connecting") continue;
    }
    v.by_src[flow_key(std::string(r.at("proto").as_string()), std::string(r.at("src").as_string()),
                      std::string(r.at("dst").as_string()))] = {verdict, r.at("epoch").to_number<std::int64_t>()};
  }
  return v;
}

/// Every app flow matching `pick` is seen with `verdict` under `epoch`.
bool all_are(const View& v, const std::vector<AppFlow>& flows, const std::function<bool(const AppFlow&)>& pick,
             const char* verdict, std::int64_t epoch) {
  for (const auto& f : flows) {
    if (!pick(f)) continue;
    auto it = v.by_src.find(flow_key(f));
    if (it == v.by_src.end() || it->second.first != verdict || it->second.second != epoch) return false;
  }
  return true;
}

struct Step {
  std::string change;
  std::int64_t to = 0;
  std::size_t moved = 0;
  long took_ms = -1;  // file write -> last moved flow in place; -1: not within the deadline
  int untouched_interrupted = 0;
};

std::string human_bytes(std::uint64_t b) {
  char buf[32];
  if (b >= 10ull << 20) std::snprintf(buf, sizeof buf, "%.1f MiB", double(b) / (1 << 20));
  else if (b >= 10ull << 10) std::snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

}  // namespace

int demo_command(const DemoOptions& options, const std::string& /*self*/, std::ostream& out, std::ostream& err) {
  // What the demo needs, said exactly when it is missing.
  if (::geteuid() != 0) {
    err << "flowrelay demo: needs root: it creates two network namespaces (CAP_SYS_ADMIN) and installs nftables "
           "TPROXY rules and policy routes inside them (CAP_NET_ADMIN). Nothing outside those namespaces is touched. "
           "Run: sudo flowrelay demo\n";
    return 3;
  }
  std::string why, shout;
  if (!sh("ip -V", shout)) {
    err << "flowrelay demo: needs iproute2's `ip` on PATH to build the veth pair between its namespaces\n";
    return 3;
  }
  char exe[4096] = {};
  const ssize_t exe_n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (exe_n <= 0) {
    err << "flowrelay demo: cannot find its own binary (/proc/self/exe)\n";
    return 3;
  }
  const std::string self(exe, std::size_t(exe_n));

  struct sigaction sa{};
  sa.sa_handler = demo_on_signal;
  ::sigemptyset(&sa.sa_mask);
  struct sigaction old_int{}, old_term{};
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  struct Restore {
    struct sigaction i, t;
    ~Restore() {
      ::sigaction(SIGINT, &i, nullptr);
      ::sigaction(SIGTERM, &t, nullptr);
    }
  } restore{old_int, old_term};

  char tmpl[] = "/tmp/flowrelay-demo-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    err << "flowrelay demo: mkdtemp: " << std::strerror(errno) << "\n";
    return 1;
  }
  const std::string dir = tmpl;
  struct RemoveDir {
    std::string d;
    ~RemoveDir() {
      for (const char* f : {"/flowrelay.json", "/flowrelay.json.tmp", "/control.sock", "/daemon.log"})
        ::unlink((d + f).c_str());
      ::rmdir(d.c_str());
    }
  } remove_dir{dir};
  const std::string config = dir + "/flowrelay.json", socket = dir + "/control.sock", log = dir + "/daemon.log";

  // 1. Two namespaces joined by a veth pair: "app" (the host being proxied) and "world".
  Netns app, world;
  if (!app.create(why) || !world.create(why)) {
    err << "flowrelay demo: cannot create network namespaces: " << why << "\n";
    return 3;
  }
  const auto t_start = Clock::now();
  out << "flowrelay demo: app namespace (192.0.2.1, 2001:db8:1::1) <-veth-> world namespace (" << kWorldV4 << ", "
      << kWorldV6 << ")\n";
  try {
    for (const Netns* ns : {&world, &app}) {
      Inside in(*ns);
      write_knob("/proc/sys/net/ipv6/conf/default/accept_dad", "0");
      write_knob("/proc/sys/net/ipv6/conf/all/accept_dad", "0");
    }
    {
      Inside in(app);
      if (!sh("ip link add va index 10 type veth peer name vw index 20 netns " + world.path() +
                  " && ip addr add 192.0.2.1/24 dev va && ip -6 addr add 2001:db8:1::1/64 dev va nodad && "
                  "ip link set va up && ip route add default via 192.0.2.2 && "
                  "ip -6 route add default via 2001:db8:1::2",
              shout)) {
        err << "flowrelay demo: setting up the app namespace failed:\n" << shout;
        return 1;
      }
    }
    Inside in(world);
    if (!sh("ip addr add 192.0.2.2/24 dev vw && ip -6 addr add 2001:db8:1::2/64 dev vw nodad && "
            "ip link set vw up && ip addr add 203.0.113.10/32 dev lo && ip -6 addr add 2001:db8::10/128 dev lo nodad && "
            "ip route replace 192.0.2.0/24 dev vw proto kernel scope link src 203.0.113.10 && "
            "ip -6 route replace 2001:db8:1::/64 dev vw proto kernel metric 256 src 2001:db8::10",
            shout)) {
      err << "flowrelay demo: setting up the world namespace failed:\n" << shout;
      return 1;
    }
  } catch (const std::exception& e) {
    err << "flowrelay demo: " << e.what() << "\n";
    return 1;
  }
  EchoWorld echo;
  {
    Inside in(world);
    if (!echo.start(why)) {
      err << "flowrelay demo: " << why << "\n";
      return 1;
    }
  }

  // 2. The daemon, epoch A: claim TCP 443, bypass the rest.
  write_file(config, config_json(1, socket));
  Daemon daemon;
  if (!daemon.start(app, self, config, log)) {
    err << "flowrelay demo: fork: " << std::strerror(errno) << "\n";
    return 1;
  }
  const auto ready_by = Clock::now() + std::chrono::seconds(10);
  while (view(socket).epoch != 1) {
    if (!daemon.running() || Clock::now() > ready_by || g_interrupted) {
      err << "flowrelay demo: the daemon did not start" << (g_interrupted ? " (interrupted)" : "") << ":\n"
          << read_file(log);
      return g_interrupted ? 130 : 1;
    }
    ::poll(nullptr, 0, 20);
  }
  out << "flowrelay run --config " << config << " (pid in the app namespace), epoch 1 = A: claim tcp/443\n";

  // 3. Workloads: per family, long-lived TCP :443, TCP :80 and UDP :5353 flows.
  std::vector<AppFlow> flows;
  for (const char* ip : {kWorldV4, kWorldV6})
    for (std::size_t i = 0; i < options.flows_per_kind; ++i)
      for (auto [port, udp] : {std::pair<std::uint16_t, bool>{443, false}, {80, false}, {5353, true}}) {
        AppFlow f;
        f.ip = ip;
        f.port = port;
        f.udp = udp;
        flows.push_back(f);
      }
  Apps apps(app, flows);
  out << "apps: " << flows.size() << " flows (" << options.flows_per_kind
      << " per kind and family: tcp/443, tcp/80, udp/5353; IPv4 and IPv6), each exchanging data continuously\n\n";
  out << std::left << std::setw(8) << "TIME" << std::setw(7) << "EPOCH" << std::setw(9) << "CLAIMED" << std::setw(10)
      << "BYPASSED" << std::setw(14) << "RELAYED" << std::setw(8) << "LOST" << "EVENT\n";

  std::uint64_t lost_total = 0;
  bool quiet = false;
  auto line = [&](const std::string& event) {
    if (quiet) return;
    const View v = view(socket);
    std::uint64_t lost = 0;
    for (const auto& f : apps.flows()) lost += f.bytes_lost;
    lost_total = lost;
    char t[16];
    std::snprintf(t, sizeof t, "%.2fs", double(ms_since(t_start)) / 1000);
    out << std::left << std::setw(8) << t << std::setw(7) << v.epoch << std::setw(9) << v.claimed << std::setw(10)
        << v.bypassed << std::setw(14) << human_bytes(v.relayed) << std::setw(8) << human_bytes(lost) << event << "\n"
        << std::flush;
  };
  auto hold = [&](int ms) {
    const auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (Clock::now() < until && !g_interrupted) {
      ::poll(nullptr, 0, 250);  // the timeline's refresh period
      line("");
    }
  };

  auto is443 = [](const AppFlow& f) { return !f.udp && f.port == 443; };
  auto is80 = [](const AppFlow& f) { return !f.udp && f.port == 80; };
  auto isudp = [](const AppFlow& f) { return f.udp; };
  std::vector<Step> steps;
  bool ok = true;

  // Waits for the flows picked to be where epoch `to` puts them; prints the timeline meanwhile.
  auto change = [&](int rules, std::int64_t to, const std::string& what,
                    std::vector<std::pair<std::function<bool(const AppFlow&)>, const char*>> expect,
                    std::size_t moved) {
    Step s;
    s.change = what;
    s.to = to;
    s.moved = moved;
    std::map<std::string, int> before;
    for (const auto& f : apps.flows())
      if (is443(f)) before[flow_key(f)] = f.closed;
    write_file(config, config_json(rules, socket));
    const auto written = Clock::now();
    line("config written: " + what);
    auto next_line = Clock::now();
    while (!g_interrupted && ms_since(written) < 5000) {
      const View v = view(socket);
      const auto fl = apps.flows();
      bool done = v.epoch == to;
      for (auto& [pick, verdict] : expect) done = done && all_are(v, fl, pick, verdict, to);
      if (done) {
        s.took_ms = ms_since(written);
        break;
      }
      if (Clock::now() >= next_line) {
        line("");
        next_line = Clock::now() + std::chrono::milliseconds(250);
      }
      ::poll(nullptr, 0, 5);  // probe period while waiting for the reclaim
    }
    if (s.took_ms < 0) {  // say which flows did not get where they should, for the report
      const View v = view(socket);
      int shown = 0;
      for (const auto& f : apps.flows()) {
        for (auto& [pick, verdict] : expect) {
          if (!pick(f) || shown >= 5) continue;
          auto it = v.by_src.find(flow_key(f));
          const std::string got = it == v.by_src.end() ? std::string("not listed")
                                                       : it->second.first + " epoch " + std::to_string(it->second.second);
          if (it != v.by_src.end() && it->second.first == verdict && it->second.second == to) continue;
          err << "  epoch " << to << ": " << (f.udp ? "udp " : "tcp ") << f.local << " -> " << f.ip << ":" << f.port
              << " expected " << verdict << ", seen " << got << "\n";
          ++shown;
        }
      }
    }
    for (const auto& f : apps.flows())
      if (is443(f) && before.count(flow_key(f)) && f.closed != before[flow_key(f)]) ++s.untouched_interrupted;
    if (s.took_ms < 0) ok = false;
    if (s.untouched_interrupted != 0) ok = false;
    line(s.took_ms >= 0 ? "epoch " + std::to_string(to) + ": " + std::to_string(moved) + " flows moved, last in place " +
                              std::to_string(s.took_ms) + " ms after the write"
                        : "epoch " + std::to_string(to) + ": flows not in place within 5 s");
    steps.push_back(s);
  };

  hold(1000);
  const std::size_t per_kind = 2 * options.flows_per_kind;
  if (options.cycles > 0) {
    // The reclaim figure: A -> B reclaims every tcp/80 and udp/5353 flow, B -> A releases them.
    quiet = true;
    std::int64_t epoch = 1;
    std::vector<long> reclaim_ms;
    for (std::size_t c = 0; c < options.cycles && !g_interrupted; ++c) {
      change(2, ++epoch, "A -> B", {{is80, "claim"}, {isudp, "claim"}}, 2 * per_kind);
      reclaim_ms.push_back(steps.back().took_ms);
      if (g_interrupted) break;
      change(1, ++epoch, "B -> A", {{is80, "bypass"}, {isudp, "bypass"}}, 2 * per_kind);
    }
    quiet = false;
    std::vector<long> sorted;
    std::size_t missed = 0;
    for (long m : reclaim_ms) {
      if (m >= 0) sorted.push_back(m);
      else ++missed;
    }
    std::sort(sorted.begin(), sorted.end());
    if (!sorted.empty()) {
      out << "\nreclaim latency, file write -> last of " << 2 * per_kind << " bypassed flows claimed (" << per_kind
          << " tcp/80 destroyed and reconnected, " << per_kind << " udp/5353 re-marked), " << sorted.size()
          << " cycles: median " << sorted[sorted.size() / 2] << " ms, min " << sorted.front() << " ms, max "
          << sorted.back() << " ms; " << missed << " cycles not in place within 5 s (-1 below)\n";
      out << "all:";
      for (long m : reclaim_ms) out << " " << m;
      out << "\n";
    }
  } else {
    if (!g_interrupted)
      change(2, 2, "B also claims tcp/80 and udp/5353 (surgical: destroy tcp/80, re-mark udp/5353)",
             {{is80, "claim"}, {isudp, "claim"}}, 2 * per_kind);
    hold(1500);
    if (!g_interrupted)
      change(3, 3, "C narrows: tcp/80 bypasses again (released after drain_ms 300)", {{is80, "bypass"}}, per_kind);
    hold(1500);
  }

  // 4. The closing table, then everything goes: apps, daemon (removes its table and routes), world.
  const View final_view = view(socket);
  apps.stop();
  const auto fl = apps.flows();
  std::uint64_t ok_bytes = 0, lost = 0, lost443 = 0;
  int closed443 = 0;
  for (const auto& f : fl) {
    ok_bytes += f.bytes_ok;
    lost += f.bytes_lost;
    if (is443(f)) {
      lost443 += f.bytes_lost;
      closed443 += f.closed;
    }
  }
  (void)lost_total;
  out << "\n" << std::left << std::setw(72) << "CHANGE" << std::setw(7) << "EPOCH" << std::setw(7) << "MOVED"
      << std::setw(14) << "IN PLACE" << "TCP/443 INTERRUPTED\n";
  for (const auto& s : steps)
    out << std::left << std::setw(72) << s.change.substr(0, 71) << std::setw(7) << s.to << std::setw(7) << s.moved
        << std::setw(14) << (s.took_ms >= 0 ? std::to_string(s.took_ms) + " ms" : std::string("timed out"))
        << s.untouched_interrupted << "\n";
  out << "\nbytes echoed end to end: " << human_bytes(ok_bytes) << "; relayed by live claimed flows: "
      << human_bytes(final_view.relayed) << "; bytes lost: " << human_bytes(lost) << " (tcp/443: "
      << human_bytes(lost443) << ", interrupted " << closed443 << " times)\n";
  if (lost443 != 0 || closed443 != 0) ok = false;

  daemon.stop();
  const std::string daemon_log = read_file(log);
  if (g_interrupted) {
    out << "interrupted: stopped the apps and the daemon, removed the namespaces and " << dir << "\n";
    return 130;
  }
  if (!ok) {
    out << "RESULT: a check failed; daemon log:\n" << daemon_log;
    return 1;
  }
  out << "RESULT: every flipped flow moved within " << [&] {
    long m = 0;
    for (const auto& s : steps) m = std::max(m, s.took_ms);
    return m;
  }() << " ms of the file write; untouched flows kept every byte. Namespaces, table, routes and " << dir
      << " removed.\n";
  return 0;
}

}  // namespace flowrelay::linux_host
