#include "extension/forward/forward_command.hpp"

#include "extension/control/metrics_server.hpp"
#include "extension/control/metrics_text.hpp"
#include "extension/forward/forward_source.hpp"
#include "relay/egress.hpp"
#include "relay/proxy_egress.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <system_error>

namespace flowrelay::forward {

int run_forward(const ForwardCommand& cmd) {
  const auto listen = relay::parse_endpoint(cmd.listen);
  const auto to = relay::parse_endpoint(cmd.to);
  if (!listen) {
    std::fprintf(stderr, "flowrelay forward: --listen %s is not ADDR:PORT\n", cmd.listen.c_str());
    return 2;
  }
  if (!to || to->port == 0) {
    std::fprintf(stderr, "flowrelay forward: --to %s is not ADDR:PORT\n", cmd.to.c_str());
    return 2;
  }

  // Signals first, so no thread started below can take SIGTERM before it is handled.
  boost::asio::io_context main_io;
  boost::asio::signal_set signals(main_io, SIGINT, SIGTERM);
  signals.async_wait([&main_io](const boost::system::error_code& ec, int sig) {
    if (!ec) spdlog::info("signal {}: draining", sig);
    main_io.stop();  // the metrics server would keep the loop alive
  });

  relay::Reactor reactor(cmd.threads);
  // Directly, or through an upstream proxy (never falling back to direct when it fails).
  std::unique_ptr<relay::Egress> egress;
  if (cmd.via.empty()) {
    egress = std::make_unique<relay::DirectEgress>(relay::DirectEgressOptions{cmd.connect_timeout, cmd.mark});
  } else {
    auto proxy = relay::parse_proxy_url(cmd.via);
    if (!proxy) {
      std::fprintf(stderr, "flowrelay forward: --via %s is not socks5://ADDR:PORT or http://ADDR:PORT\n", cmd.via.c_str());
      return 2;
    }
    if (cmd.udp) {
      std::fprintf(stderr, "flowrelay forward: --via with --udp: UDP through a proxy is not supported yet\n");
      return 2;
    }
    proxy->connect_timeout = cmd.connect_timeout;
    proxy->mark = cmd.mark;
    egress = std::make_unique<relay::ProxyEgress>(*proxy);
  }
  relay::RelayOptions options;
  options.splice = cmd.splice;
  relay::Relay relay(reactor, *egress, options);
  ForwardSource source(reactor, relay, {*listen, *to, cmd.udp});
  try {
    source.start();
  } catch (const std::system_error& e) {
    std::fprintf(stderr, "flowrelay forward: %s\n", e.what());
    return 1;
  }
  // Prometheus, served from this (signal) thread: a scrape never runs on a reactor shard.
  std::unique_ptr<control::MetricsServer> metrics;
  if (!cmd.metrics_listen.empty()) {
    try {
      metrics = std::make_unique<control::MetricsServer>(
          main_io, cmd.metrics_listen, [&] { return control::prometheus_text(control::relay_metrics(relay, reactor)); });
    } catch (const std::system_error& e) {
      std::fprintf(stderr, "flowrelay forward: %s\n", e.what());
      return 1;
    }
  }
  reactor.start();
  main_io.run();  // until a signal
  if (metrics) metrics->close();

  source.stop();
  relay.drain(std::chrono::steady_clock::now() + cmd.drain);
  const auto c = relay.counters();
  spdlog::info("stopped: {} flows relayed, {} dial failures", c.adopted, c.dial_failures);
  reactor.stop();
  return 0;
}

}  // namespace flowrelay::forward
