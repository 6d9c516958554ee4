#include "extension/control/check_config.hpp"

#include "extension/control/config_file.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>

namespace flowrelay::control {

namespace {

std::string join_cidrs(const std::vector<Cidr>& v) {
  if (v.empty()) return "any";
  std::string s = v[0].to_string();
  if (v.size() > 1) s.append(" +").append(std::to_string(v.size() - 1));
  return s;
}

std::string join_ports(const std::vector<PortRange>& v) {
  if (v.empty()) return "any";
  std::string s;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i == 3) {
      s.append(" +").append(std::to_string(v.size() - 3));
      return s;
    }
    if (i) s += ",";
    s += std::to_string(v[i].lo);
    if (v[i].hi != v[i].lo) {
      s += '-';
      s += std::to_string(v[i].hi);
    }
  }
  return s;
}

std::string identity(const Rule& r) {
  std::string s;
  auto add = [&](const char* what, std::string first, std::size_t n) {
    if (n == 0) return;
    if (!s.empty()) s += "; ";
    s += std::string(what) + " " + first + (n > 1 ? " +" + std::to_string(n - 1) : "");
  };
  add("uids", r.uids.empty() ? "" : std::to_string(r.uids[0]), r.uids.size());
  add("apps", r.apps.empty() ? "" : r.apps[0], r.apps.size());
  add("hosts", r.hosts.empty() ? "" : r.hosts[0], r.hosts.size());
  return s.empty() ? "-" : s;
}

std::string pad(std::string s, std::size_t w) {
  if (s.size() > w - 1) {  // keep one column free; mark a cut with '~'
    s.resize(w - 2);
    s.push_back('~');
  }
  s.resize(w, ' ');
  return s;
}

std::string hex(std::uint64_t v, int width) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%0*llx", width, static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

std::string config_summary(const Config& c, const PlatformCaps& platform) {
  std::ostringstream o;
  o << "valid for " << platform.name << " (content hash " << hex(c.content_hash, 16) << ")\n";
  o << "default: " << to_string(c.default_verdict) << "\n";
  o << "rules: " << c.rules.size() << (c.rules.empty() ? "\n" : " (first match wins)\n");
  if (!c.rules.empty()) {
    o << "  " << pad("#", 5) << pad("name", 18) << pad("verdict", 8) << pad("proto", 6) << pad("dst", 24)
      << pad("ports", 20) << "identity\n";
    const std::size_t shown = std::min<std::size_t>(c.rules.size(), 20);
    for (std::size_t i = 0; i < shown; ++i) {
      const Rule& r = c.rules[i];
      o << "  " << pad(std::to_string(i), 5) << pad(r.name, 18) << pad(to_string(r.verdict), 8)
        << pad(to_string(r.proto), 6) << pad(join_cidrs(r.dst), 24) << pad(join_ports(r.ports), 20) << identity(r)
        << "\n";
    }
    if (shown < c.rules.size()) o << "  ... and " << (c.rules.size() - shown) << " more rules\n";
  }
  const auto& rc = c.reclaim;
  o << "reclaim: " << to_string(rc.policy) << ", debounce " << rc.debounce.count() << " ms, drain "
    << rc.drain.count() << " ms, min restart interval " << rc.min_restart_interval.count() << " ms\n";
  const auto& l = c.limits;
  o << "limits: connect " << l.connect_timeout.count() << " ms, tcp idle " << l.tcp_idle_timeout.count()
    << " s, udp idle " << l.udp_idle_timeout.count() << " s, flow buffer " << l.flow_buffer_bytes
    << " B, max flows " << l.max_flows << " (UDP " << l.max_udp_flows << "), max buffered " << l.max_buffer_bytes
    << " B\n";
  const auto& x = c.linux_settings;
  o << "linux: tproxy port " << x.tproxy_port << ", fwmark 0x" << hex(x.fwmark, 1) << ", route table "
    << x.route_table << ", bypass mark 0x" << hex(x.bypass_mark, 1) << "\n";
  o << "claims: this host's own flows";
  if (x.gateway.enabled()) {
    std::string names, nets;
    for (const auto& n : x.gateway.interfaces) names += (names.empty() ? "" : ", ") + n;
    for (const auto& s : x.gateway.sources) nets += (nets.empty() ? "" : ", ") + s.to_string();
    o << "; gateway: forwarded traffic" << (names.empty() ? "" : " arriving on " + names)
      << (nets.empty() ? "" : std::string(names.empty() ? "" : " and") + " from " + nets);
  }
  o << "\n";
  o << "apple: offer " << (c.apple_settings.offer == AppleSettings::Offer::all ? "all flows" : "what claim rules match")
    << "\n";
  o << "control socket: " << c.control_socket << "; metrics: " << c.metrics_listen << "\n";
  return o.str();
}

int check_config_command(const std::string& path, std::ostream& out, std::ostream& err) {
  return check_config_command(path, out, err, PlatformCaps::native());
}

int check_config_command(const std::string& path, std::ostream& out, std::ostream& err, const PlatformCaps& platform) {
  const ConfigFileText file = read_config_file(path);
  if (!file) {
    err << file.message << "\n";
    return 2;
  }
  try {
    Config c = parse_config(file.bytes, platform);
    out << path << ": " << config_summary(c, platform);
    return 0;
  } catch (const ConfigError& e) {
    err << path << ": " << e.what() << "\n";
    return 2;
  }
}

}  // namespace flowrelay::control
