#pragma once
// `flowrelay run`: the composition root of Linux transparent mode. One class owns every part the
// daemon builds; its members are declared in the order they are torn down (C++ destroys them in
// reverse), it is started by start() and stopped by one stop() that every exit path reaches.

#include "extension/control/clock.hpp"
#include "extension/control/config.hpp"
#include "extension/control/rule_egress.hpp"
#include "extension/linux/nft_table.hpp"
#include "extension/linux/run_command.hpp"
#include "relay/egress.hpp"
#include "relay/reactor.hpp"
#include "relay/relay.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace flowrelay::control {
class ControlPlane;
class MetricsServer;
}

namespace flowrelay::linux_host {

class ControlServer;
class InotifyConfigSource;
class LinuxBypassedFlows;
class LinuxHost;
class PolicyRoutes;
class TproxySource;

class Daemon {
 public:
  Daemon(RunOptions options, control::Config config);
  ~Daemon();  // stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Installs the table, routes and sockets, drops privileges and applies the first epoch. 0, or
  /// the exit code after saying on stderr what could not start (1).
  int start();
  /// Serves until SIGTERM or SIGINT (SIGHUP re-reads the config). The exit code: 0.
  int serve();
  /// Stops claiming, drains, removes the table and routes this daemon installed. Idempotent and
  /// noexcept: every exit path (a return, an exception unwinding, a caught signal) ends here.
  void stop() noexcept;

 private:
  void fail(const std::string& what) const;
  void raise_open_files_limit();
  bool take_over_table();
  void start_control_plane();
  void arm_timer();
  void reverify();
  void watch_config();
  void on_signal();
  std::string command(std::string_view cmd);
  std::string metrics();  // the Prometheus text

  // Declared in teardown order: what is declared later is destroyed first.
  RunOptions options_;
  control::Config config_;
  boost::asio::io_context io_;  // the control thread: this one
  boost::asio::signal_set signals_;
  NftTable nft_;
  relay::Reactor reactor_;
  control::RuleEgress egress_;  // per rule: direct or an upstream (`via`)
  relay::Relay relay_;
  std::unique_ptr<LinuxBypassedFlows> bypassed_;
  boost::asio::steady_timer timer_;
  std::unique_ptr<LinuxHost> host_;
  std::unique_ptr<TproxySource> source_;
  std::unique_ptr<PolicyRoutes> routes_;
  boost::asio::steady_timer reverify_timer_;  // its handler uses host_ and routes_: goes before them
  control::SystemClock clock_;
  std::unique_ptr<control::ControlPlane> plane_;
  std::unique_ptr<InotifyConfigSource> file_;
  std::optional<boost::asio::posix::stream_descriptor> inotify_;
  std::unique_ptr<ControlServer> control_;
  std::unique_ptr<control::MetricsServer> metrics_;

  bool stopped_ = false;
  std::uint64_t handler_errors_ = 0;  // exceptions caught at the top of the control loop
};

}  // namespace flowrelay::linux_host
