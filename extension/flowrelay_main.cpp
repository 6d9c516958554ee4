// flowrelay: one binary, one subcommand per mode (DESIGN.md, "Command line").

#include "extension/control/check_config.hpp"
#include "extension/forward/forward_command.hpp"
#if defined(__linux__)
#include "extension/linux/demo_command.hpp"
#include "extension/linux/run_command.hpp"
#endif

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
  // splice(2) into a socket whose peer reset raises SIGPIPE (MSG_NOSIGNAL cannot be passed to it);
  // a relay must see EPIPE on that one flow, not die with every flow.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"flowrelay: a userspace relay for claimed flows"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error, off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));

  flowrelay::forward::ForwardCommand fwd;
  unsigned connect_ms = 5000;
  unsigned drain_ms = 5000;
  auto* forward = app.add_subcommand("forward", "relay every connection on ADDR:PORT to a fixed destination");
  forward->add_option("--listen", fwd.listen, "address to listen on, ADDR:PORT or [V6]:PORT")->required();
  forward->add_option("--to", fwd.to, "destination, ADDR:PORT")->required();
  forward->add_flag("--udp", fwd.udp, "forward UDP datagrams instead of TCP connections");
  forward->add_option("--threads", fwd.threads, "reactor threads (default: one per core)");
  forward->add_option("--connect-timeout-ms", connect_ms, "upstream connect timeout")->capture_default_str();
  forward->add_option("--drain-ms", drain_ms, "on SIGINT/SIGTERM, how long flows may finish")->capture_default_str();
  forward->add_option("--mark", fwd.mark, "SO_MARK for upstream sockets (Linux, needs CAP_NET_ADMIN)");
  forward->add_flag("--splice", fwd.splice, "move bulk bytes with splice(2) instead of pooled chunks (Linux)");
  forward->add_option("--metrics", fwd.metrics_listen, "serve Prometheus metrics on ADDR:PORT (GET /metrics)");
  forward->add_option("--via", fwd.via, "dial through an upstream proxy: socks5://ADDR:PORT or http://ADDR:PORT (TCP)");

  std::string config_path;
  auto* check = app.add_subcommand("check-config", "validate a config file: exit 0 and a summary, or 2 and the error");
  check->add_option("FILE", config_path, "config file (JSON)")->required();

#if defined(__linux__)
  flowrelay::linux_host::RunOptions run_opts;
  auto* run = app.add_subcommand("run", "Linux transparent mode in this network namespace: claim per FILE's rules");
  run->add_option("--config", run_opts.config_path, "config file (JSON), watched for changes")->required();
  run->add_flag("--replace", run_opts.replace, "take over a stale flowrelay table left by a crashed run");
  run->add_option("--threads", run_opts.threads, "reactor threads (default: one per core)");

  std::string socket_path, socket_config;
  bool flows_json = false, epochs_json = false;
  auto* flows = app.add_subcommand("flows", "ask the running daemon for its flows (claimed and bypassed)");
  flows->add_flag("--json", flows_json, "JSON instead of a table");
  double watch_seconds = 0;
  int watch_frames = 0;
  auto* watch = flows->add_option("--watch", watch_seconds, "redraw the table every SECONDS, like top (Ctrl-C ends)")
                    ->expected(0, 1)
                    ->default_str("1");
  flows->add_option("--frames", watch_frames, "with --watch: stop after N redraws")->needs(watch);
  flows->add_option("--socket", socket_path, "control socket (default: the config's control.socket; without --config, /etc/flowrelay/flowrelay.json's if it exists, else /run/flowrelay.sock)");
  flows->add_option("--config", socket_config, "read the control socket path from this config file");
  auto* epochs = app.add_subcommand("epochs", "ask the running daemon for its epoch history and reclaim cycles");
  epochs->add_flag("--json", epochs_json, "JSON instead of tables");
  epochs->add_option("--socket", socket_path, "control socket (default: as for flows)");
  epochs->add_option("--config", socket_config, "read the control socket path from this config file");

  flowrelay::linux_host::DemoOptions demo_opts;
  auto* demo = app.add_subcommand("demo", "the reclaim scenario in two private network namespaces (needs root)");
  demo->add_option("--flows", demo_opts.flows_per_kind, "long-lived flows per kind (TCP :443, TCP :80, UDP :5353) and family")
      ->capture_default_str();
  demo->add_option("--cycles", demo_opts.cycles,
                   "instead of the walk: N reclaim cycles A -> B -> A, then median and max reclaim latency");
#endif

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  if (forward->parsed()) {
    fwd.connect_timeout = std::chrono::milliseconds(connect_ms);
    fwd.drain = std::chrono::milliseconds(drain_ms);
    return flowrelay::forward::run_forward(fwd);
  }
  if (check->parsed()) return flowrelay::control::check_config_command(config_path, std::cout, std::cerr);
#if defined(__linux__)
  if (run->parsed()) return flowrelay::linux_host::run_daemon(run_opts);
  if (flows->parsed() || epochs->parsed()) {
    if (socket_path.empty()) socket_path = flowrelay::linux_host::socket_from_config(socket_config);
    if (flows->parsed() && watch->count() > 0)
      return flowrelay::linux_host::flows_watch(socket_path, watch_seconds > 0 ? watch_seconds : 1.0, watch_frames,
                                                std::cout, std::cerr);
    return flows->parsed() ? flowrelay::linux_host::flows_command(socket_path, flows_json, std::cout, std::cerr)
                           : flowrelay::linux_host::epochs_command(socket_path, epochs_json, std::cout, std::cerr);
  }
  if (demo->parsed()) return flowrelay::linux_host::demo_command(demo_opts, argv[0], std::cout, std::cerr);
#endif
  return 2;
}
