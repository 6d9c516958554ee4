#include "extension/linux/daemon.hpp"

#include "extension/control/metrics_server.hpp"
#include "extension/control/metrics_text.hpp"

#include "extension/control/config_file.hpp"
#include "extension/control/control_plane.hpp"
#include "extension/control/epoch_report.hpp"
#include "extension/control/metrics_server.hpp"
#include "extension/control/metrics_text.hpp"
#include "extension/linux/control_socket.hpp"
#include "extension/linux/inotify_config_source.hpp"
#include "extension/linux/linux_bypassed_flows.hpp"
#include "extension/linux/linux_host.hpp"
#include "extension/linux/policy_routes.hpp"
#include "extension/linux/privileges.hpp"
#include "extension/linux/tproxy_source.hpp"
#include "relay/log.hpp"
#include "relay/metrics.hpp"

#include <boost/json.hpp>

#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>

namespace flowrelay::linux_host {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto l = relay::named_logger("daemon");
  return l;
}

/// What could not start; start() prints it and returns 1.
struct StartError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

PolicyRouteSpec route_spec(const control::LinuxSettings& lx) {
  return PolicyRouteSpec{.fwmark = lx.fwmark, .table = lx.route_table, .fwmask = MetaMark::mask(lx.fwmark, lx.bypass_mark)};
}

relay::RelayOptions relay_options(const control::Config& c) {
  relay::RelayOptions o;
  o.tcp_idle_timeout = c.limits.tcp_idle_timeout;
  o.udp_idle_timeout = c.limits.udp_idle_timeout;
  o.flow_buffer_bytes = c.limits.flow_buffer_bytes;
  o.max_flows = c.limits.max_flows;
  o.max_udp_flows = c.limits.max_udp_flows;
  return o;
}

template <typename T>
json::value optional_json(const std::optional<T>& v) {
  if (!v) return nullptr;
  if constexpr (std::is_floating_point_v<T>) return std::round(*v * 1000) / 1000;  // microsecond resolution
  else return *v;
}

json::value flows_json(relay::Relay& relay, LinuxBypassedFlows& bypassed, const LinuxHost& host,
                       const TproxySource& source) {
  json::array flows;
  std::size_t claimed = 0, bypassed_n = 0;
  auto uid = [](const relay::FlowMeta& m) -> json::value {
    if (m.app_identity.uid) return *m.app_identity.uid;
    return nullptr;
  };
  auto snapshot = relay.snapshot();
  {
    std::vector<relay::FlowMeta> metas;
    for (const auto& s : snapshot) metas.push_back(s.meta);
    try {
      bypassed.add_uids(metas);
      for (std::size_t i = 0; i < metas.size(); ++i) snapshot[i].meta.app_identity = metas[i].app_identity;
    } catch (const std::exception&) {
    }
  }
  for (const auto& s : snapshot) {
    ++claimed;
    flows.push_back(json::object{{"id", s.meta.id},
                                 {"proto", relay::to_string(s.meta.proto)},
                                 {"src", s.meta.app.to_string()},
                                 {"dst", s.meta.dst.to_string()},
                                 {"verdict", "claim"},
                                 {"epoch", s.meta.epoch},
                                 {"uid", uid(s.meta)},
                                 {"bytes_up", s.bytes_up},
                                 {"bytes_down", s.bytes_down},
                                 {"state", s.state},
                                 {"via", s.via.empty() ? json::value(nullptr) : json::value(s.via)},
                                 {"dial_ms", optional_json(s.dial_ms)},
                                 {"first_byte_ms", optional_json(s.first_byte_ms)},
                                 {"rtt_us", json::object{{"app", optional_json(s.rtt_app_us)},
                                                         {"upstream", optional_json(s.rtt_upstream_us)}}},
                                 {"age_ms", optional_json(std::optional(s.age_ms))}});  // µs like the others: age >= first byte
  }
  std::string error;
  try {
    for (const auto& f : bypassed.list()) {
      ++bypassed_n;
      flows.push_back(json::object{{"id", f.meta.id},
                                   {"proto", relay::to_string(f.meta.proto)},
                                   {"src", f.meta.app.to_string()},
                                   {"dst", f.meta.dst.to_string()},
                                   {"verdict", "bypass"},
                                   {"epoch", f.meta.epoch},
                                   {"uid", uid(f.meta)},
                                   {"bytes_up", nullptr},
                                   {"bytes_down", nullptr},
                                   {"state", "carried by the OS"},
                                   {"via", nullptr},
                                   {"dial_ms", nullptr},
                                   {"first_byte_ms", nullptr},
                                   {"rtt_us", nullptr},
                                   {"age_ms", nullptr}});
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  const auto rc = relay.counters();
  const auto sc = source.counters();
  const auto& hc = host.counters();
  json::object out{{"epoch", host.applied_epoch()},
                   {"claimed", claimed},
                   {"bypassed", bypassed_n},
                   {"flows", std::move(flows)},
                   {"relay", json::object{{"adopted", rc.adopted},
                                          {"closed", rc.closed},
                                          {"dial_failures", rc.dial_failures},
                                          {"rejected", rc.rejected},
                                          {"rejected_udp", rc.rejected_udp},
                                          {"buffer_waits", rc.buffer_waits},
                                          {"idle_expired", rc.idle_expired},
                                          {"released", rc.released}}},
                   {"source", json::object{{"tcp_accepted", sc.tcp_accepted},
                                           {"udp_associations", sc.udp_associations},
                                           {"udp_datagrams", sc.udp_datagrams},
                                           {"udp_dropped_full", sc.udp_dropped_full},
                                           {"udp_reply_socket_failed", sc.udp_reply_socket_failed},
                                           {"not_diverted", sc.not_diverted}}},
                   {"host", json::object{{"tables_applied", hc.tables_applied},
                                         {"tcp_destroyed", hc.tcp_destroyed},
                                         {"udp_remarked", hc.udp_remarked},
                                         {"released", hc.released},
                                         {"restarts", hc.restarts},
                                         {"tables_reinstalled", hc.tables_reinstalled}}}};
  if (!error.empty()) out["bypassed_error"] = error;
  return out;
}


}  // namespace

Daemon::Daemon(RunOptions options, control::Config config)
    : options_(std::move(options)),
      config_(std::move(config)),
      signals_(io_, SIGINT, SIGTERM, SIGHUP),  // first: no thread started later may take them
      reactor_(options_.threads),
      egress_({config_.limits.connect_timeout, config_.linux_settings.bypass_mark}),
      relay_(reactor_, egress_, relay_options(config_)),
      timer_(io_),
      reverify_timer_(io_) {}

Daemon::~Daemon() { stop(); }

void Daemon::fail(const std::string& what) const { throw StartError(what); }

int Daemon::start() {
  const auto& lx = config_.linux_settings;
  try {
    raise_open_files_limit();
    if (!take_over_table()) return 1;
    try {
      bypassed_ = std::make_unique<LinuxBypassedFlows>(relay_, lx.bypass_mark);
    } catch (const std::exception& e) {
      fail(std::string("sock_diag/conntrack: ") + e.what());
    }
    host_ = std::make_unique<LinuxHost>(io_, relay_, *bypassed_, nft_,
                                        LinuxHostOptions{lx, ::getpid(), [this] { arm_timer(); },
                                                         [this](const control::Epoch& epoch) {
                                                           return [this, table = egress_.prepare(epoch)] {
                                                             egress_.install(table);
                                                           };
                                                         }});
    source_ = std::make_unique<TproxySource>(
        reactor_, relay_,
        TproxySourceOptions{lx.tproxy_port, true, static_cast<std::size_t>(config_.limits.max_udp_flows),
                            lx.bypass_mark, [h = host_.get()] { return h->applied_epoch(); }});
    try {
      source_->start();
    } catch (const std::system_error& e) {
      fail(std::string(e.what()) + " (needs CAP_NET_ADMIN for IP_TRANSPARENT)");
    }
    routes_ = std::make_unique<PolicyRoutes>(route_spec(lx));
    try {
      routes_->install();
    } catch (const std::exception& e) {
      fail(std::string("policy routes: ") + e.what());
    }
    for (const auto& family : routes_->preexisting_rules())
      log()->warn("policy routes: an identical `{} rule` (fwmark {:#x} lookup {}) was already there; it is "
                  "another tool's and stays after exit", family, lx.fwmark, lx.route_table);
    try {
      file_ = std::make_unique<InotifyConfigSource>(options_.config_path);
    } catch (const std::exception& e) {
      fail("watching " + options_.config_path + ": " + e.what());
    }
    try {
      control_ = std::make_unique<ControlServer>(io_, config_.control_socket,
                                                 [this](std::string_view cmd) { return command(cmd); });
    } catch (const std::system_error& e) {
      fail(e.what());
    }
    try {
      metrics_ = std::make_unique<control::MetricsServer>(io_, config_.metrics_listen, [this] { return metrics(); });
    } catch (const std::system_error& e) {
      fail(e.what());
    }
    // Everything that needed more than the kept capabilities is done; no thread runs yet.
    try {
      drop_privileges(lx.run_as);
    } catch (const std::exception& e) {
      fail(std::string("dropping privileges: ") + e.what());
    }
    log()->info("privileges: {}{}", capability_names(kept_capabilities()),
                lx.run_as.empty() ? std::string() : ", as user " + lx.run_as);
    reactor_.set_buffer_limit(config_.limits.max_buffer_bytes);
    reactor_.start();
    start_control_plane();
  } catch (const StartError& e) {
    std::fprintf(stderr, "flowrelay run: %s\n", e.what());
    stop();
    return 1;
  }
  return 0;
}

void Daemon::raise_open_files_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  const auto was = r.rlim_cur;
  r.rlim_cur = r.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &r) == 0)
    log()->info("open files limit raised from {} to {}", was, r.rlim_max);
  else
    log()->warn("open files limit stays {}: {}", was, std::strerror(errno));
}

namespace {

/// True when `pid` is a running flowrelay: a table's recorded owner (not a recycled pid).
bool flowrelay_alive(std::int64_t pid) {
  if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) != 0 && errno != EPERM)) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  if (!std::getline(in, comm)) return true;  // cannot tell: assume it is
  return comm.rfind("flowrelay", 0) == 0;
}

}  // namespace

// A table another run left: refuse, or (--replace) take over from a dead owner. A live owner is
// never displaced. Nothing here removes anything unless the owner is gone.
bool Daemon::take_over_table() {
  try {
    auto t = nft_.installed();
    if (!t) return true;
    const bool alive = t->owner_pid && flowrelay_alive(*t->owner_pid);
    const std::string who = t->owner_pid ? "pid " + std::to_string(*t->owner_pid) + (alive ? " (still running)" : " (not running)")
                                         : std::string("an unknown owner");
    const std::string epoch = t->epoch ? std::to_string(*t->epoch) : std::string("unknown");
    if (alive) {
      std::fprintf(stderr,
                   "flowrelay run: table inet flowrelay in this network namespace belongs to a running flowrelay "
                   "(owner %s, epoch %s); %s. Stop that one first.\n",
                   who.c_str(), epoch.c_str(),
                   options_.replace ? "--replace never displaces a live owner" : "refusing to start beside it");
      return false;
    }
    if (!options_.replace) {
      std::fprintf(stderr,
                   "flowrelay run: a stale flowrelay table is installed in this network namespace (table inet "
                   "flowrelay, owner %s, epoch %s): a crashed run left it. "
                   "Pass --replace to remove it and take over.\n",
                   who.c_str(), epoch.c_str());
      return false;
    }
    log()->warn("replacing a stale table inet flowrelay and its policy routes (owner {}, epoch {})", who, epoch);
    nft_.remove();
    PolicyRoutes(route_spec(config_.linux_settings)).remove_stale();
  } catch (const std::exception& e) {
    fail(std::string("nftables: ") + e.what() + " (needs CAP_NET_ADMIN in this network namespace)");
  }
  return true;
}

void Daemon::start_control_plane() {
  plane_ = std::make_unique<control::ControlPlane>(control::PlatformCaps::for_linux(), *host_, *bypassed_, clock_);
  // The control logger already reports each outcome; `flowrelay epochs` shows the history.
  plane_->on_report([](const control::EpochEvent& e) {
    log()->debug("config from {} {}: epoch {} stays", e.source, control::to_string(e.kind), e.epoch);
  });
  plane_->watcher().add_source(*file_);
  plane_->watcher().flush();
  auto& cp = *plane_;
  if (cp.controller().applied_epoch() == 0) {
    std::string why = "the first epoch was not applied";
    if (!cp.epochs().history().empty() && !cp.epochs().history().back().error.empty())
      why = cp.epochs().history().back().error;
    if (!cp.controller().cycles().empty() && !cp.controller().cycles().back().errors.empty())
      why = cp.controller().cycles().back().errors.front();
    fail(why);
  }
  arm_timer();
  reverify();
  inotify_.emplace(io_, ::fcntl(file_->fd(), F_DUPFD_CLOEXEC, 0));
  watch_config();
  on_signal();
}

void Daemon::arm_timer() {
  if (!plane_) return;
  auto d = plane_->next_deadline();
  if (!d) return;
  timer_.expires_at(*d);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    plane_->tick();
    arm_timer();
  });
}

// What it installed can vanish under it (`nft flush ruleset`, `ip rule flush`, another tool): look
// every two seconds, put back what is missing, say so.
void Daemon::reverify() {
  reverify_timer_.expires_after(std::chrono::seconds(2));
  reverify_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    try {
      host_->reverify();
      if (const int n = routes_->repair(); n > 0)
        log()->warn("policy routes: {} of the rules and routes this daemon added were gone; added again", n);
    } catch (const std::exception& e) {
      log()->error("re-verifying the table and routes: {}", e.what());
    }
    reverify();
  });
}

void Daemon::watch_config() {
  inotify_->async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
    if (ec) return;
    file_->handle_events();
    arm_timer();
    watch_config();
  });
}

void Daemon::on_signal() {
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig != SIGHUP) {
      log()->info("signal {}: draining", sig);
      ::sd_notify(0, "STOPPING=1\nSTATUS=draining");
      io_.stop();
      return;
    }
    log()->info("SIGHUP: re-reading {}", options_.config_path);
    ::sd_notify(0, "RELOADING=1");
    file_->reread();
    plane_->watcher().flush();
    ::sd_notifyf(0, "READY=1\nSTATUS=claiming, epoch %llu", static_cast<unsigned long long>(host_->applied_epoch()));
    arm_timer();
    on_signal();
  });
}

std::string Daemon::metrics() {
  control::MetricsInput in = control::relay_metrics(relay_, reactor_);
  if (plane_) {
    if (const auto e = plane_->epochs().current()) in.epoch = e->id;
    in.cycles = &plane_->controller().cycle_seconds();
  }
  try {
    std::size_t tcp = 0, udp = 0;
    for (const auto& m : bypassed_->snapshot()) (m.proto == relay::Proto::tcp ? tcp : udp) += 1;
    in.bypassed = std::pair{tcp, udp};
  } catch (const std::exception& e) {
    log()->debug("metrics: bypassed flows: {}", e.what());
  }
  if (source_) {
    const auto c = source_->counters();
    in.drops = {{"udp_socket_full", c.udp_dropped_full},
                {"udp_reply_socket_failed", c.udp_reply_socket_failed},
                {"not_diverted", c.not_diverted}};
  }
  return control::prometheus_text(in);
}

std::string Daemon::command(std::string_view cmd) {
  static const std::map<std::string_view, std::string (*)(Daemon&)> table{
      {"flows", [](Daemon& d) { return json::serialize(flows_json(d.relay_, *d.bypassed_, *d.host_, *d.source_)) + "\n"; }},
      {"epochs",
       [](Daemon& d) { return json::serialize(control::epochs_json(d.plane_->epochs(), &d.plane_->controller())) + "\n"; }},
      {"epochs-table", [](Daemon& d) { return control::epochs_table(d.plane_->epochs(), &d.plane_->controller()); }},
  };
  auto it = table.find(cmd);
  if (it == table.end() || !plane_) return "{\"error\": \"unknown command\"}\n";
  return it->second(*this);
}

int Daemon::serve() {
  log()->info("running: epoch {}, control socket {}", host_->applied_epoch(), config_.control_socket);
  // systemd (Type=notify): ready once the table, the routes and the sockets are in place.
  ::sd_notifyf(0, "READY=1\nSTATUS=claiming, epoch %llu", static_cast<unsigned long long>(host_->applied_epoch()));
  // The one loop of the control thread. A handler that throws (a netlink error the layers below
  // did not turn into a failed cycle) is logged and counted; the daemon goes on serving.
  for (;;) {
    try {
      io_.run();
      return 0;
    } catch (const std::exception& e) {
      ++handler_errors_;
      log()->error("control loop: {} (caught; still serving)", e.what());
    }
  }
}

void Daemon::stop() noexcept {
  if (stopped_) return;
  stopped_ = true;
  auto step = [](const char* what, const auto& fn) {
    try {
      fn();
    } catch (const std::exception& e) {
      log()->error("stopping: {}: {}", what, e.what());
    }
  };
  // Stop claiming; let flows finish within drain_ms (the table still routes them); then the table
  // and the routes go, while the relay still runs.
  step("re-verify timer", [&] { reverify_timer_.cancel(); });
  step("config watcher", [&] { if (file_) file_->stop(); });
  step("control socket", [&] { if (control_) control_->close(); });
  step("metrics", [&] { if (metrics_) metrics_->close(); });
  step("flow source", [&] { if (source_) source_->stop(); });
  step("drain", [&] {
    const auto epoch = plane_ ? plane_->epochs().current() : nullptr;
    const auto drain = epoch ? epoch->config->reclaim.drain : config_.reclaim.drain;
    relay_.drain(std::chrono::steady_clock::now() + drain);
  });
  step("nftables table", [&] {
    // Only the table that says it is ours: a daemon refused at start removes nobody's.
    auto t = nft_.installed();
    if (t && t->owner_pid == static_cast<std::int64_t>(::getpid()) && nft_.remove()) log()->info("nftables table removed");
  });
  step("policy routes", [&] {
    if (!routes_) return;
    routes_->remove();  // what install() added, nothing else
    log()->info("policy routes removed");
  });
  const auto c = relay_.counters();
  log()->info("stopped: {} flows relayed, {} released, {} dial failures", c.adopted, c.released, c.dial_failures);
}

int run_daemon(const RunOptions& o) {
  const control::ConfigFileText file = control::read_config_file(o.config_path);
  if (!file) {
    std::fprintf(stderr, "flowrelay run: %s\n", file.message.c_str());
    return 2;
  }
  control::Config config;
  try {
    config = control::parse_config(file.bytes, control::PlatformCaps::for_linux());
  } catch (const control::ConfigError& e) {
    std::fprintf(stderr, "flowrelay run: %s: %s\n", o.config_path.c_str(), e.what());
    return 2;
  }
  try {
    Daemon daemon(o, std::move(config));
    if (int rc = daemon.start(); rc != 0) return rc;
    return daemon.serve();  // ~Daemon stops it
  } catch (const std::exception& e) {
    // Unwinding ran ~Daemon: what it installed is gone.
    std::fprintf(stderr, "flowrelay run: %s\n", e.what());
    return 1;
  }
}

}  // namespace flowrelay::linux_host
