#include "tests/apple/sim_system.hpp"

#include "relay/egress.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>

#include <cstring>
#include <future>
#include <stdexcept>

namespace flowrelay::apple::sim {

using flowrelay::test::Fd;

// ---------------------------------------------------------------------------------------------
// World

namespace {

class MappedEgress final : public relay::Egress {
 public:
  MappedEgress(const World& world, std::chrono::milliseconds timeout) : world_(world), direct_({timeout, 0}) {}

  boost::asio::awaitable<relay::DialResult> dial_tcp(const relay::FlowMeta& meta,
                                                     boost::asio::any_io_executor ex) override {
    auto real = world_.resolve(meta.dst);
    if (!real) co_return relay::DialResult{boost::asio::error::host_unreachable, nullptr};
    relay::FlowMeta m = meta;
    m.dst = *real;
    co_return co_await direct_.dial_tcp(m, ex);
  }
  boost::system::error_code open_udp(boost::asio::ip::udp::socket& socket, const relay::Endpoint& dst) override {
    auto real = world_.resolve(dst);
    if (!real) return boost::asio::error::host_unreachable;
    return direct_.open_udp(socket, *real);
  }

 private:
  const World& world_;
  relay::DirectEgress direct_;
};

sockaddr_in v4(const relay::Endpoint& e) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(e.port);
  const auto bytes = e.address.to_v4().to_bytes();
  std::memcpy(&a.sin_addr, bytes.data(), 4);
  return a;
}

// A socket of the system's own, from 127.0.0.2 (so the far end can tell it from the relay).
Fd system_socket(int type, const relay::Endpoint& to) {
  Fd fd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.2", &from.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), sizeof from) != 0)
    throw std::runtime_error(std::string("bind 127.0.0.2: ") + std::strerror(errno));
  auto a = v4(to);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  return fd;
}

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

}  // namespace

void World::map(relay::Endpoint intended, relay::Endpoint real) {
  std::lock_guard lk(mu_);
  map_[intended] = real;
}

std::optional<relay::Endpoint> World::resolve(const relay::Endpoint& intended) const {
  std::lock_guard lk(mu_);
  auto it = map_.find(intended);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

std::unique_ptr<relay::Egress> World::egress(std::chrono::milliseconds connect_timeout) const {
  return std::make_unique<MappedEgress>(*this, connect_timeout);
}

// ---------------------------------------------------------------------------------------------
// TcpLineEcho

TcpLineEcho::TcpLineEcho() : listener_(flowrelay::test::tcp_listen()) {
  endpoint_ = {boost::asio::ip::make_address("127.0.0.1"), flowrelay::test::local_port(listener_.get())};
  if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  thread_ = std::thread([this] { serve(); });
}

TcpLineEcho::~TcpLineEcho() {
  char c = 0;
  (void)::write(wake_[1], &c, 1);
  thread_.join();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void TcpLineEcho::serve() {
  struct Conn {
    Fd fd;
    std::string peer;
    std::string pending;
  };
  std::vector<Conn> conns;
  for (;;) {
    std::vector<pollfd> fds{{wake_[0], POLLIN, 0}, {listener_.get(), POLLIN, 0}};
    for (auto& c : conns) fds.push_back({c.fd.get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) continue;
    if (fds[0].revents) return;
    if (fds[1].revents) {
      sockaddr_in a{};
      socklen_t len = sizeof a;
      Fd c(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&a), &len, SOCK_CLOEXEC));
      char peer[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, &a.sin_addr, peer, sizeof peer);
      if (c) conns.push_back({std::move(c), peer, {}});
    }
    for (std::size_t i = 2; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      auto& c = conns[i - 2];
      char buf[4096];
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n <= 0) {
        c.fd.reset();
        continue;
      }
      c.pending.append(buf, std::size_t(n));
      for (auto nl = c.pending.find('\n'); nl != std::string::npos; nl = c.pending.find('\n')) {
        std::string reply = c.peer;
        reply += ' ';
        reply.append(c.pending, 0, nl + 1);
        c.pending.erase(0, nl + 1);
        ::send(c.fd.get(), reply.data(), reply.size(), MSG_NOSIGNAL);
      }
    }
    std::erase_if(conns, [](const Conn& c) { return !c.fd; });
  }
}

// ---------------------------------------------------------------------------------------------
// The app's view of its flows

struct SimSystem::Carried {
  Fd fd;
  std::atomic<bool> closed{false};
  void close() {
    closed = true;
    ::shutdown(fd.get(), SHUT_RDWR);
  }
};

namespace {

class ClaimedTcp final : public AppTcp {
 public:
  explicit ClaimedTcp(std::shared_ptr<SimTcp> sim) : sim_(std::move(sim)) {}
  ~ClaimedTcp() override {
    if (!sim_->ended()) sim_->app_shutdown_write();
  }
  bool claimed() const override { return true; }
  std::optional<std::string> ask(const std::string& line) override {
    if (sim_->ended()) return std::nullopt;
    sim_->app_send(line + "\n");
    return sim_->app_read_line();
  }

 private:
  std::shared_ptr<SimTcp> sim_;
};

class CarriedTcp final : public AppTcp {
 public:
  explicit CarriedTcp(std::shared_ptr<SimSystem::Carried> c) : c_(std::move(c)) {}
  bool claimed() const override { return false; }
  std::optional<std::string> ask(const std::string& line) override {
    if (c_->closed) return std::nullopt;
    const std::string out = line + "\n";
    if (::send(c_->fd.get(), out.data(), out.size(), MSG_NOSIGNAL) != ssize_t(out.size())) return std::nullopt;
    std::string got;
    char ch;
    while (readable(c_->fd.get(), 10000) && ::recv(c_->fd.get(), &ch, 1, 0) == 1) {
      if (ch == '\n') return got;
      got += ch;
    }
    return std::nullopt;
  }

 private:
  std::shared_ptr<SimSystem::Carried> c_;
};

class ClaimedUdp final : public AppUdp {
 public:
  ClaimedUdp(std::shared_ptr<SimUdp> sim, relay::Endpoint dst) : sim_(std::move(sim)), dst_(dst) {}
  ~ClaimedUdp() override { sim_->app_close(); }
  bool claimed() const override { return true; }
  std::optional<std::string> ask(const std::string& payload) override {
    sim_->app_send(payload, dst_);
    auto r = sim_->wait_reply(++asked_);
    if (!r) return std::nullopt;
    if (r->from != dst_) return "reply from " + r->from.to_string() + ", not " + dst_.to_string();
    return r->payload;
  }

 private:
  std::shared_ptr<SimUdp> sim_;
  relay::Endpoint dst_;
  std::size_t asked_ = 0;
};

class CarriedUdp final : public AppUdp {
 public:
  explicit CarriedUdp(std::shared_ptr<SimSystem::Carried> c) : c_(std::move(c)) {}
  bool claimed() const override { return false; }
  std::optional<std::string> ask(const std::string& payload) override {
    if (c_->closed) return std::nullopt;
    ::send(c_->fd.get(), payload.data(), payload.size(), 0);
    if (!readable(c_->fd.get(), 5000) || c_->closed) return std::nullopt;
    char buf[2048];
    ssize_t n = ::recv(c_->fd.get(), buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    return std::string(buf, std::size_t(n));
  }

 private:
  std::shared_ptr<SimSystem::Carried> c_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// SimSystem

SimSystem::SimSystem(World& world, std::string config_json, Options options)
    : world_(world), options_(std::move(options)), env_(std::make_shared<SimEnv>(options_.delivery)),
      config_(std::move(config_json)) {
  if (!options_.provider.make_egress)
    options_.provider.make_egress = [this](const control::Config& c) { return world_.egress(c.limits.connect_timeout); };
  system_thread_ = std::thread([this] {
    std::unique_lock lk(qmu_);
    for (;;) {
      qcv_.wait(lk, [&] { return qstop_ || !queue_.empty(); });
      if (queue_.empty()) return;
      auto fn = std::move(queue_.front());
      queue_.erase(queue_.begin());
      lk.unlock();
      fn();
      lk.lock();
    }
  });
}

SimSystem::~SimSystem() {
  {
    std::lock_guard lk(qmu_);
    qstop_ = true;
  }
  qcv_.notify_all();
  system_thread_.join();
  std::unique_ptr<ProviderCore> last;
  {
    std::lock_guard lk(mu_);
    last = std::move(provider_);
    for (auto& c : carried_)
      if (auto p = c.lock()) p->close();
  }
  last.reset();
}

void SimSystem::run_system(std::function<void()> fn) {
  {
    std::lock_guard lk(qmu_);
    queue_.push_back(std::move(fn));
  }
  qcv_.notify_all();
}

std::string SimSystem::start() {
  std::unique_lock lk(mu_);
  return start_locked(lk);
}

std::string SimSystem::start_locked(std::unique_lock<std::mutex>& lk) {
  auto core = std::make_unique<ProviderCore>(*this, memory_, options_.provider);
  const std::string config = config_;
  lk.unlock();
  std::promise<std::string> started;
  core->start(config, [&started](std::string error) { started.set_value(std::move(error)); });
  auto error = started.get_future().get();
  if (!error.empty()) {
    core.reset();
    lk.lock();
    return error;
  }
  lk.lock();
  // Starting a transparent proxy closes every flow the system carries: apps come back through it.
  for (auto& c : carried_)
    if (auto p = c.lock()) p->close();
  carried_.clear();
  provider_ = std::move(core);
  running_ = true;
  cv_.notify_all();
  return {};
}

void SimSystem::save_configuration(std::string json) {
  std::lock_guard lk(mu_);
  config_ = json;
  run_system([this, json = std::move(json)] {
    std::lock_guard lk(mu_);
    if (provider_) provider_->push_config(json);  // KVO on protocolConfiguration
  });
}

relay::FlowMeta SimSystem::meta_for(relay::Proto proto, relay::Endpoint dst, const AppInfo& app,
                                    std::string hostname) const {
  relay::FlowMeta m;
  m.proto = proto;
  m.dst = dst;
  m.hostname = std::move(hostname);
  m.app_identity.signing_id = app.signing_id;
  m.app_identity.pid = app.pid;
  m.app_identity.uid = app.uid;
  return m;
}

std::unique_ptr<AppTcp> SimSystem::connect_tcp(relay::Endpoint dst, AppInfo app, std::string hostname) {
  auto meta = meta_for(relay::Proto::tcp, dst, app, std::move(hostname));
  {
    std::lock_guard lk(mu_);
    if (provider_ && running_ && settings_installed_ && offers(settings_, meta)) {
      auto sim = std::make_shared<SimTcp>(env_);
      if (provider_->handle_new_tcp_flow(meta, sim->ops())) {
        handed_tcp_.push_back(sim);
        return std::make_unique<ClaimedTcp>(sim);
      }
    }
  }
  auto real = world_.resolve(dst);
  if (!real) throw std::runtime_error("no far end for " + dst.to_string());
  auto c = std::make_shared<Carried>();
  c->fd = system_socket(SOCK_STREAM, *real);
  std::lock_guard lk(mu_);
  carried_.push_back(c);
  return std::make_unique<CarriedTcp>(c);
}

std::unique_ptr<AppUdp> SimSystem::open_udp(relay::Endpoint dst, AppInfo app) {
  auto meta = meta_for(relay::Proto::udp, dst, app, {});
  {
    std::lock_guard lk(mu_);
    if (provider_ && running_ && settings_installed_ && offers(settings_, meta)) {
      auto sim = std::make_shared<SimUdp>(env_);
      if (provider_->handle_new_udp_flow(meta, sim->ops())) {
        handed_udp_.push_back(sim);
        return std::make_unique<ClaimedUdp>(sim, dst);
      }
    }
  }
  auto real = world_.resolve(dst);
  if (!real) throw std::runtime_error("no far end for " + dst.to_string());
  auto c = std::make_shared<Carried>();
  c->fd = system_socket(SOCK_DGRAM, *real);
  std::lock_guard lk(mu_);
  carried_.push_back(c);
  return std::make_unique<CarriedUdp>(c);
}

ProviderCore* SimSystem::provider() {
  std::lock_guard lk(mu_);
  return provider_.get();
}

NetworkSettings SimSystem::settings() const {
  std::lock_guard lk(mu_);
  return settings_;
}

std::size_t SimSystem::restarts() const {
  std::lock_guard lk(mu_);
  return restarts_;
}

bool SimSystem::wait_restarts(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return restarts_ >= n && running_; });
}

std::vector<std::chrono::steady_clock::time_point> SimSystem::cancels() const {
  std::lock_guard lk(mu_);
  return cancels_;
}

void SimSystem::apply_network_settings(const NetworkSettings& settings, std::function<void(std::string)> done) {
  {
    std::lock_guard lk(mu_);
    settings_ = settings;
    settings_installed_ = true;
  }
  // On the system's flow queues, not on run_system's: that one may be busy starting the provider.
  env_->deliver([done = std::move(done)] { done(""); });
}

void SimSystem::cancel_proxy(const std::string&) {
  {
    std::lock_guard lk(mu_);
    cancels_.push_back(std::chrono::steady_clock::now());
  }
  run_system([this] {
    std::unique_ptr<ProviderCore> old;
    std::vector<std::shared_ptr<SimTcp>> tcp;
    std::vector<std::shared_ptr<SimUdp>> udp;
    {
      std::lock_guard lk(mu_);
      old = std::move(provider_);
      running_ = false;
      settings_installed_ = false;
      for (auto& w : handed_tcp_)
        if (auto p = w.lock()) tcp.push_back(p);
      for (auto& w : handed_udp_)
        if (auto p = w.lock()) udp.push_back(p);
      handed_tcp_.clear();
      handed_udp_.clear();
    }
    if (old) old->stop();  // stopProxyWithReason:
    for (auto& f : tcp) f->system_close();  // the provider's flows end with it
    for (auto& f : udp) f->system_close();
    old.reset();
    std::unique_lock lk(mu_);
    ++restarts_;
    const auto error = start_locked(lk);  // the container app starts it again
    if (!error.empty()) ADD_FAILURE() << "the provider did not start again: " << error;
    cv_.notify_all();
  });
}

}  // namespace flowrelay::apple::sim
