// flowrelay-bench: load generator and its own far end, for measuring relays side by side.
#include "load_client.hpp"
#include "load_server.hpp"

#include <CLI/CLI.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <exception>
#include <iostream>

namespace fb = flowrelay::bench;

namespace {

void add_client_options(CLI::App& app, fb::ClientOptions& o, bool& json, const char* flows_help) {
  app.add_option("-t,--target", o.target, "ADDR:PORT to connect to (the relay, or the server directly)")
      ->capture_default_str();
  app.add_option("-d,--duration", o.duration_s, "Seconds to run")->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("-n,--flows", o.flows, flows_help)->capture_default_str()->check(CLI::PositiveNumber);
  app.add_option("--threads", o.threads, "Client threads (one io_context each)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 256u));
  app.add_flag("--json", json, "One JSON object on one line instead of the table");
}

void print(const fb::Report& report, bool json) {
  if (json) report.print_json(std::cout);
  else report.print_table(std::cout);
  std::cout.flush();
}

int serve(const std::string& tcp, const std::string& udp, unsigned threads) {
  fb::LoadServer server({tcp, udp, threads});
  server.start();
  std::printf("flowrelay-bench serve: tcp %s (port %u), udp %s (port %u), %u thread(s); Ctrl-C stops\n",
              tcp.empty() ? "off" : tcp.c_str(), server.tcp_port(), udp.empty() ? "off" : udp.c_str(),
              server.udp_port(), threads);
  std::fflush(stdout);
  boost::asio::io_context signals_context(1);
  boost::asio::signal_set signals(signals_context, SIGINT, SIGTERM);
  signals.async_wait([](const boost::system::error_code&, int) {});
  signals_context.run();
  server.stop();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"flowrelay-bench: throughput, latency, connection rate, UDP and idle-flow memory of a relay "
               "(or of nothing: point --target at `flowrelay-bench serve` directly for the baseline)."};
  app.require_subcommand(1);
  bool json = false;

  std::string serve_tcp = "127.0.0.1:9000", serve_udp;
  unsigned serve_threads = 1;
  auto* serve_cmd = app.add_subcommand("serve", "Run the sink/echo/source TCP server and the UDP echo server");
  serve_cmd->add_option("--listen", serve_tcp, "TCP ADDR:PORT ('' = no TCP)")->capture_default_str();
  serve_cmd->add_option("--udp-listen", serve_udp, "UDP ADDR:PORT (default: same as --listen; '' with --no-udp)");
  bool no_udp = false;
  serve_cmd->add_flag("--no-udp", no_udp, "Do not serve UDP");
  serve_cmd->add_option("--threads", serve_threads, "Server threads")->capture_default_str()->check(CLI::Range(1u, 256u));

  fb::StreamOptions stream;
  std::string direction = "down";
  auto* stream_cmd = app.add_subcommand("stream", "Bulk throughput over N flows: Gbit/s total and per flow");
  add_client_options(*stream_cmd, stream, json, "Parallel flows");
  stream_cmd->add_option("--direction", direction, "up (client sends), down (server sends) or both")
      ->capture_default_str()
      ->check(CLI::IsMember({"up", "down", "both"}));
  stream_cmd->add_option("--chunk", stream.chunk_bytes, "Bytes per read/write call")->capture_default_str();

  fb::RrOptions rr;
  auto* rr_cmd = app.add_subcommand("rr", "Request/response on N flows: latency percentiles and rate");
  add_client_options(*rr_cmd, rr, json, "Flows, each with one request outstanding");
  // The request is written in full before the response is read: up to 64 KiB that always fits in
  // the socket buffers on the way, so client and server can never both wait on a full buffer.
  rr_cmd->add_option("-s,--size", rr.size, "Request and response bytes (<= 65536)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));

  fb::CpsOptions cps;
  auto* cps_cmd = app.add_subcommand("cps", "Connect, one round trip, server closes: connections/s and connect+first-byte latency");
  add_client_options(*cps_cmd, cps, json, "Concurrency (1 = sequential)");
  cps_cmd->add_option("-s,--size", cps.size, "Request and response bytes")->capture_default_str()->check(CLI::Range(1, 65535));

  fb::UdpOptions udp;
  auto* udp_cmd = app.add_subcommand("udp", "Datagrams: delivered rate, loss, reorder, round-trip latency");
  add_client_options(*udp_cmd, udp, json, "Client sockets (flows)");
  udp_cmd->add_option("-s,--size", udp.size, "Datagram bytes (>= 16)")->capture_default_str()->check(CLI::Range(16, 65507));
  udp_cmd->add_option("--rate", udp.rate, "Datagrams/s per flow (0 = open, window-limited)")->capture_default_str();
  udp_cmd->add_option("--window", udp.window, "Datagrams in flight per flow (0 = unbounded)")->capture_default_str();
  udp_cmd->add_option("--stall-ms", udp.stall_ms, "A full window without reply this long is counted lost")->capture_default_str();
  udp_cmd->add_option("--drain", udp.drain_s, "Seconds to wait for late replies")->capture_default_str();

  fb::HoldOptions hold;
  hold.flows = 1000;
  hold.duration_s = 30;
  auto* hold_cmd = app.add_subcommand("hold", "Open N flows (one round trip each) and hold them; memory of --pid per flow");
  add_client_options(*hold_cmd, hold, json, "Flows to open and hold");
  hold_cmd->get_option("--duration")->description("Seconds allowed for opening the flows");
  hold_cmd->add_option("--pid", hold.pid, "Process to measure before and after (VmRSS)");
  hold_cmd->add_flag("--tree", hold.tree, "Sum PSS over --pid and its descendants (relays that fork per flow)");
  hold_cmd->add_option("--hold", hold.hold_s, "Seconds to keep the flows open after measuring")->capture_default_str();
  hold_cmd->add_option("--parallel", hold.parallel, "Connects in flight while opening")->capture_default_str();

  CLI11_PARSE(app, argc, argv);

  std::signal(SIGPIPE, SIG_IGN);
  fb::raise_fd_limit();
  try {
    if (*serve_cmd) {
      if (no_udp) serve_udp.clear();
      else if (serve_udp.empty()) serve_udp = serve_tcp;
      return serve(serve_tcp, serve_udp, serve_threads);
    }
    if (*stream_cmd) {
      stream.direction = direction == "up" ? fb::Direction::up : direction == "both" ? fb::Direction::both : fb::Direction::down;
      auto result = fb::run_stream(stream);
      print(fb::to_report(stream, result), json);
      return result.errors == stream.flows ? 1 : 0;
    }
    if (*rr_cmd) {
      auto result = fb::run_rr(rr);
      print(fb::to_report(rr, result), json);
      return result.transactions == 0 ? 1 : 0;
    }
    if (*cps_cmd) {
      auto result = fb::run_cps(cps);
      print(fb::to_report(cps, result), json);
      return result.connections == 0 ? 1 : 0;
    }
    if (*udp_cmd) {
      auto result = fb::run_udp(udp);
      print(fb::to_report(udp, result), json);
      return result.received == 0 ? 1 : 0;
    }
    if (*hold_cmd) {
      auto result = fb::run_hold(hold);
      print(fb::to_report(hold, result), json);
      return result.opened == 0 ? 1 : 0;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flowrelay-bench: %s\n", e.what());
    return 2;
  }
  return 0;
}
