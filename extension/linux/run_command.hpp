#pragma once
// `flowrelay run --config FILE [--replace]`: Linux transparent mode in the current network
// namespace (DESIGN.md, "Command line"), and the control-socket clients `flowrelay flows` and
// `flowrelay epochs`.

#include <cstddef>
#include <iosfwd>
#include <string>

namespace flowrelay::linux_host {

struct RunOptions {
  std::string config_path;
  bool replace = false;     // take over a stale table (a crashed run's) instead of refusing
  std::size_t threads = 0;  // reactor threads; 0 = one per core
};

/// Runs the daemon until SIGTERM/SIGINT. Exit codes: 0 clean stop, 1 could not start (stale table,
/// missing capability, sockets), 2 invalid config.
int run_daemon(const RunOptions& options);

/// `flowrelay flows [--json]`: 0, or 1 when the daemon cannot be reached.
int flows_command(const std::string& socket_path, bool json, std::ostream& out, std::ostream& err);
/// `flows --watch`: the table redrawn every `seconds` until interrupted (or `frames` times, if > 0).
int flows_watch(const std::string& socket_path, double seconds, int frames, std::ostream& out, std::ostream& err);
/// `flowrelay epochs [--json]`.
int epochs_command(const std::string& socket_path, bool json, std::ostream& out, std::ostream& err);

/// Where the Debian package puts the daemon's config (extension/linux/packaging/).
inline constexpr const char* kPackagedConfig = "/etc/flowrelay/flowrelay.json";

/// The control socket named by a config file (its `control.socket`), or the default. With no
/// file named, the packaged config's when it exists.
std::string socket_from_config(const std::string& config_path);

}  // namespace flowrelay::linux_host
