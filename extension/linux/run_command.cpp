#include "extension/linux/run_command.hpp"

#include "extension/control/config.hpp"
#include "extension/control/config_file.hpp"
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

#include <filesystem>
#include <thread>
#include <sstream>
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
#include <iomanip>
#include <iostream>

namespace flowrelay::linux_host {

namespace asio = boost::asio;
namespace json = boost::json;

std::string socket_from_config(const std::string& config_path) {
  // No config named: the packaged daemon's (/etc/flowrelay/flowrelay.json), if there is one.
  if (config_path.empty()) {
    std::error_code ec;
    if (std::filesystem::exists(kPackagedConfig, ec)) return socket_from_config(kPackagedConfig);
    return control::Config{}.control_socket;
  }
  if (const auto file = control::read_config_file(config_path)) {
    try {
      return control::parse_config(file.bytes, control::PlatformCaps::for_linux()).control_socket;
    } catch (const std::exception&) {
    }
  }
  return control::Config{}.control_socket;
}

namespace {

std::string str(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_null()) return "-";
  return json::serialize(v);
}

/// A field of the daemon's answer for the table: "-" when it is missing, whatever its type.
std::string field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr ? str(*v) : "-";
}

/// "12.3" for a number of milliseconds, "-" for none.
std::string millis(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_number()) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v->to_number<double>());
  return b;
}

/// "180/95" (app/upstream smoothed RTT, us) or "-".
std::string rtts(const json::object& o) {
  const auto* v = o.if_contains("rtt_us");
  if (v == nullptr || !v->is_object()) return "-";
  return field(v->get_object(), "app") + "/" + field(v->get_object(), "upstream");
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
  const auto* o = v.if_object();
  const auto* rows = o != nullptr && o->if_contains("flows") ? o->at("flows").if_array() : nullptr;
  if (rows == nullptr) {
    err << "flowrelay flows: bad answer from the daemon: not a flows object: " << answer->substr(0, 200) << "\n";
    return 1;
  }
  out << "epoch " << field(*o, "epoch") << ": " << field(*o, "claimed") << " claimed, " << field(*o, "bypassed")
      << " bypassed\n";
  out << std::left << std::setw(20) << "ID" << std::setw(5) << "PROTO" << " " << std::setw(46) << "SOURCE"
      << std::setw(46) << "DESTINATION" << std::setw(8) << "VERDICT" << std::setw(12) << "VIA" << std::setw(6) << "EPOCH" << std::setw(12)
      << "UP" << std::setw(12) << "DOWN" << std::setw(9) << "DIAL ms" << std::setw(16) << "RTT us app/up"
      << "STATE\n";
  static const json::object none;
  for (const auto& f : *rows) {
    const auto& r = f.is_object() ? f.get_object() : none;
    out << std::left << std::setw(20) << field(r, "id") << std::setw(5) << field(r, "proto") << " " << std::setw(46)
        << field(r, "src") << std::setw(46) << field(r, "dst") << std::setw(8) << field(r, "verdict") << std::setw(12)
        << field(r, "via") << std::setw(6)
        << field(r, "epoch") << std::setw(12) << field(r, "bytes_up") << std::setw(12) << field(r, "bytes_down")
        << std::setw(9) << millis(r, "dial_ms") << std::setw(16) << rtts(r) << field(r, "state") << "\n";
  }
  return 0;
}

int flows_watch(const std::string& socket_path, double seconds, int frames, std::ostream& out, std::ostream& err) {
  const auto period = std::chrono::duration<double>(seconds > 0 ? seconds : 1.0);
  for (int frame = 0; frames <= 0 || frame < frames; ++frame) {
    std::ostringstream table;
    const int rc = flows_command(socket_path, false, table, err);
    if (rc != 0) return rc;
    out << "\033[H\033[2J" << table.str() << std::flush;  // home, clear: redrawn like top
    if (frames > 0 && frame + 1 == frames) break;
    std::this_thread::sleep_for(period);
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
