#include "extension/linux/run_command.hpp"

#include "extension/control/config.hpp"
#include "extension/control/control_plane.hpp"
#include "extension/control/epoch_report.hpp"
#include "extension/linux/control_socket.hpp"
#include "extension/linux/inotify_config_source.hpp"
#include "extension/linux/linux_bypassed_flows.hpp"
#include "extension/linux/linux_host.hpp"
#include "extension/linux/nft_table.hpp"
#include "extension/linux/policy_routes.hpp"
#include "extension/linux/tproxy_source.hpp"
#include "relay/egress.hpp"
#include "relay/log.hpp"
#include "relay/reactor.hpp"
#include "relay/relay.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace flowrelay::linux_host {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto l = relay::named_logger("daemon");
  return l;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = ss.str();
  return true;
}

/// Removes the table and routes on every exit path the process can catch (normal return, an
/// exception unwinding through run_daemon).
struct Installed {
  NftTable* nft = nullptr;
  PolicyRoutes* routes = nullptr;
  ~Installed() {
    try {
      if (nft != nullptr && nft->remove()) log()->info("nftables table removed");
    } catch (const std::exception& e) {
      log()->error("removing the nftables table: {}", e.what());
    }
    try {
      if (routes != nullptr) {
        routes->remove();
        log()->info("policy routes removed");
      }
    } catch (const std::exception& e) {
      log()->error("removing policy routes: {}", e.what());
    }
  }
};

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
                                 {"state", s.state}});
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
                                   {"state", "carried by the OS"}});
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
                                         {"restarts", hc.restarts}}}};
  if (!error.empty()) out["bypassed_error"] = error;
  return out;
}

}  // namespace

std::string socket_from_config(const std::string& config_path) {
  std::string text;
  if (!config_path.empty() && read_file(config_path, text)) {
    try {
      return control::parse_config(text, control::PlatformCaps::for_linux()).control_socket;
    } catch (const std::exception&) {
    }
  }
  return control::Config{}.control_socket;
}

int run_daemon(const RunOptions& o) {
  const char* me = "flowrelay run";
  std::string text;
  if (!read_file(o.config_path, text)) {
    std::fprintf(stderr, "%s: cannot read %s: %s\n", me, o.config_path.c_str(), std::strerror(errno));
    return 2;
  }
  control::Config config;
  try {
    config = control::parse_config(text, control::PlatformCaps::for_linux());
  } catch (const control::ConfigError& e) {
    std::fprintf(stderr, "%s: %s: %s\n", me, o.config_path.c_str(), e.what());
    return 2;
  }
  const auto& lx = config.linux_settings;

  // Signals first: no thread started below may take SIGTERM before it is handled.
  asio::io_context io;
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);

  NftTable nft;
  try {
    if (auto t = nft.installed()) {
      const bool alive = t->owner_pid && *t->owner_pid > 0 && ::kill(static_cast<pid_t>(*t->owner_pid), 0) == 0;
      std::string who = t->owner_pid ? "pid " + std::to_string(*t->owner_pid) + (alive ? " (still running)" : " (not running)")
                                     : std::string("an unknown owner");
      std::string epoch = t->epoch ? std::to_string(*t->epoch) : std::string("unknown");
      if (!o.replace) {
        std::fprintf(stderr,
                     "%s: a stale flowrelay table is installed in this network namespace (table inet flowrelay, "
                     "owner %s, epoch %s): a crashed run left it, or another flowrelay runs here. "
                     "Pass --replace to remove it and take over.\n",
                     me, who.c_str(), epoch.c_str());
        return 1;
      }
      log()->warn("replacing a stale table inet flowrelay (owner {}, epoch {})", who, epoch);
      nft.remove();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: nftables: %s (needs CAP_NET_ADMIN in this network namespace)\n", me, e.what());
    return 1;
  }

  relay::Reactor reactor(o.threads);
  relay::DirectEgress egress({config.limits.connect_timeout, lx.bypass_mark});
  relay::RelayOptions ro;
  ro.tcp_idle_timeout = config.limits.tcp_idle_timeout;
  ro.udp_idle_timeout = config.limits.udp_idle_timeout;
  ro.flow_buffer_bytes = config.limits.flow_buffer_bytes;
  ro.max_flows = config.limits.max_flows;
  relay::Relay relay(reactor, egress, ro);

  Installed installed;  // declared after the relay: removed before the relay goes away
  std::unique_ptr<LinuxBypassedFlows> bypassed;
  try {
    bypassed = std::make_unique<LinuxBypassedFlows>(relay, lx.bypass_mark);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: sock_diag/conntrack: %s\n", me, e.what());
    return 1;
  }

  asio::steady_timer timer(io);
  std::function<void()> arm;
  LinuxHost host(io, relay, *bypassed, nft, {lx, ::getpid(), [&] { arm(); }});
  TproxySource source(reactor, relay,
                      {lx.tproxy_port, true, static_cast<std::size_t>(config.limits.max_flows), lx.bypass_mark,
                       [&host] { return host.applied_epoch(); }});
  try {
    source.start();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s (needs CAP_NET_ADMIN for IP_TRANSPARENT)\n", me, e.what());
    return 1;
  }
  PolicyRoutes routes({lx.fwmark, lx.route_table});
  try {
    installed.routes = &routes;
    routes.install();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: policy routes: %s\n", me, e.what());
    return 1;
  }
  reactor.start();

  control::SystemClock clock;
  control::ControlPlane cp(control::PlatformCaps::for_linux(), host, *bypassed, clock);
  // The control logger already reports each outcome; `flowrelay epochs` shows the history.
  cp.on_report([](const control::EpochEvent& e) {
    log()->debug("config from {} {}: epoch {} stays", e.source, control::to_string(e.kind), e.epoch);
  });
  arm = [&] {
    auto d = cp.next_deadline();
    if (!d) return;
    timer.expires_at(*d);
    timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      cp.tick();
      arm();
    });
  };

  std::unique_ptr<InotifyConfigSource> file;
  try {
    file = std::make_unique<InotifyConfigSource>(o.config_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: watching %s: %s\n", me, o.config_path.c_str(), e.what());
    return 1;
  }
  installed.nft = &nft;
  cp.watcher().add_source(*file);
  cp.watcher().flush();
  if (cp.controller().applied_epoch() == 0) {
    std::string why = "the first epoch was not applied";
    if (!cp.epochs().history().empty() && !cp.epochs().history().back().error.empty())
      why = cp.epochs().history().back().error;
    if (!cp.controller().cycles().empty() && !cp.controller().cycles().back().errors.empty())
      why = cp.controller().cycles().back().errors.front();
    std::fprintf(stderr, "%s: %s\n", me, why.c_str());
    file->stop();
    source.stop();
    reactor.stop();
    return 1;
  }
  arm();

  asio::posix::stream_descriptor inotify(io, ::fcntl(file->fd(), F_DUPFD_CLOEXEC, 0));
  std::function<void()> watch = [&] {
    inotify.async_wait(asio::posix::stream_descriptor::wait_read, [&](const boost::system::error_code& ec) {
      if (ec) return;
      file->handle_events();
      arm();
      watch();
    });
  };
  watch();

  std::unique_ptr<ControlServer> control;
  try {
    control = std::make_unique<ControlServer>(io, config.control_socket, [&](std::string_view cmd) -> std::string {
      if (cmd == "flows") return json::serialize(flows_json(relay, *bypassed, host, source)) + "\n";
      if (cmd == "epochs") return json::serialize(control::epochs_json(cp.epochs(), &cp.controller())) + "\n";
      if (cmd == "epochs-table") return control::epochs_table(cp.epochs(), &cp.controller());
      return "{\"error\": \"unknown command\"}\n";
    });
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "%s: %s\n", me, e.what());
    file->stop();
    source.stop();
    reactor.stop();
    return 1;
  }

  bool stopping = false;
  std::function<void()> on_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        log()->info("SIGHUP: re-reading {}", o.config_path);
        file->reread();
        cp.watcher().flush();
        arm();
        on_signal();
        return;
      }
      log()->info("signal {}: draining", sig);
      stopping = true;
      io.stop();
    });
  };
  on_signal();
  log()->info("running: epoch {}, control socket {}", host.applied_epoch(), config.control_socket);
  io.run();

  // Shutdown: stop claiming, let flows finish within drain_ms (the table still routes them), then
  // the table and routes go (Installed), then the reactor.
  file->stop();
  control->close();
  source.stop();
  const auto epoch = cp.epochs().current();
  const auto drain = epoch ? epoch->config->reclaim.drain : config.reclaim.drain;
  relay.drain(std::chrono::steady_clock::now() + drain);
  const auto c = relay.counters();
  log()->info("stopped: {} flows relayed, {} released, {} dial failures", c.adopted, c.released, c.dial_failures);
  return stopping ? 0 : 1;
}

namespace {

std::string str(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

}  // namespace

int flows_command(const std::string& socket_path, bool as_json, std::ostream& out, std::ostream& err) {
  std::string error;
  auto answer = control_request(socket_path, "flows", error);
  if (!answer) {
    err << "flowrelay flows: " << error << "\n";
    return 1;
  }
  if (as_json) {
    out << *answer;
    return 0;
  }
  json::value v;
  try {
    v = json::parse(*answer);
  } catch (const std::exception& e) {
    err << "flowrelay flows: bad answer from the daemon: " << e.what() << "\n";
    return 1;
  }
  const auto& o = v.as_object();
  out << "epoch " << str(o.at("epoch")) << ": " << str(o.at("claimed")) << " claimed, " << str(o.at("bypassed"))
      << " bypassed\n";
  out << std::left << std::setw(20) << "ID" << std::setw(5) << "PROTO" << " " << std::setw(46) << "SOURCE"
      << std::setw(46) << "DESTINATION" << std::setw(8) << "VERDICT" << std::setw(6) << "EPOCH" << std::setw(12)
      << "UP" << std::setw(12) << "DOWN" << "STATE\n";
  for (const auto& f : o.at("flows").as_array()) {
    const auto& r = f.as_object();
    out << std::left << std::setw(20) << str(r.at("id")) << std::setw(5) << str(r.at("proto")) << " " << std::setw(46)
        << str(r.at("src")) << std::setw(46) << str(r.at("dst")) << std::setw(8) << str(r.at("verdict"))
        << std::setw(6) << str(r.at("epoch")) << std::setw(12) << str(r.at("bytes_up")) << std::setw(12)
        << str(r.at("bytes_down")) << str(r.at("state")) << "\n";
  }
  return 0;
}

int epochs_command(const std::string& socket_path, bool as_json, std::ostream& out, std::ostream& err) {
  std::string error;
  auto answer = control_request(socket_path, as_json ? "epochs" : "epochs-table", error);
  if (!answer) {
    err << "flowrelay epochs: " << error << "\n";
    return 1;
  }
  out << *answer;
  return 0;
}

}  // namespace flowrelay::linux_host
