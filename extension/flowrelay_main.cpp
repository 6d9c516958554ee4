// flowrelay: one binary, one subcommand per mode (DESIGN.md, "Command line").

#include "extension/control/check_config.hpp"
#include "extension/forward/forward_command.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

int main(int argc, char** argv) {
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

  std::string config_path;
  auto* check = app.add_subcommand("check-config", "validate a config file: exit 0 and a summary, or 2 and the error");
  check->add_option("FILE", config_path, "config file (JSON)")->required();

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
  return 2;
}
