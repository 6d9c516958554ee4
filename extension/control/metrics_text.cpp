#include "extension/control/metrics_text.hpp"

#include <cstdio>

namespace flowrelay::control {

namespace {

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& name, const std::string& labels, double value) {
    char v[64];
    std::snprintf(v, sizeof v, "%.17g", value);
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += v;
    out_ += '\n';
  }
  void histogram(const char* name, const std::string& labels, const relay::metrics::HistogramValues& h) {
    std::uint64_t cumulative = 0;
    const std::string sep = labels.empty() ? "" : labels + ",";
    for (std::size_t i = 0; i < relay::metrics::kBounds.size(); ++i) {
      cumulative += h.buckets[i];
      char le[32];
      std::snprintf(le, sizeof le, "%g", relay::metrics::kBounds[i]);
      sample(std::string(name) + "_bucket", sep + "le=\"" + le + "\"", static_cast<double>(cumulative));
    }
    sample(std::string(name) + "_bucket", sep + "le=\"+Inf\"", static_cast<double>(h.count));
    sample(std::string(name) + "_sum", labels, h.sum);
    sample(std::string(name) + "_count", labels, static_cast<double>(h.count));
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

MetricsInput relay_metrics(const relay::Relay& relay, const relay::Reactor& reactor) {
  MetricsInput in;
  in.counters = relay.counters();
  in.traffic = relay.traffic();
  in.dials = relay::metrics::collect();
  in.pool = reactor.pool_stats();
  in.buffer_bytes = reactor.buffer_memory();
  return in;
}

std::string prometheus_text(const MetricsInput& in) {
  Exposition x;
  const auto& c = in.counters;
  const auto& t = in.traffic;

  x.family("flowrelay_flows_active", "gauge", "Flows running now, by protocol and verdict.");
  x.sample("flowrelay_flows_active", R"(proto="tcp",verdict="claim")", static_cast<double>(t.active_tcp));
  x.sample("flowrelay_flows_active", R"(proto="udp",verdict="claim")", static_cast<double>(t.active_udp));
  if (in.bypassed) {
    x.sample("flowrelay_flows_active", R"(proto="tcp",verdict="bypass")", static_cast<double>(in.bypassed->first));
    x.sample("flowrelay_flows_active", R"(proto="udp",verdict="bypass")", static_cast<double>(in.bypassed->second));
  }
  x.family("flowrelay_flows_total", "counter", "Claimed flows adopted by the relay.");
  x.sample("flowrelay_flows_total", R"(proto="tcp",via="direct")", static_cast<double>(c.adopted - c.adopted_udp));
  x.sample("flowrelay_flows_total", R"(proto="udp",via="direct")", static_cast<double>(c.adopted_udp));
  x.family("flowrelay_bytes_total", "counter", "Payload bytes relayed: up is app to destination.");
  x.sample("flowrelay_bytes_total", R"(direction="up",via="direct")", static_cast<double>(t.bytes_up));
  x.sample("flowrelay_bytes_total", R"(direction="down",via="direct")", static_cast<double>(t.bytes_down));
  x.family("flowrelay_dial_seconds", "histogram", "Time from connect() to connected, successful TCP dials.");
  for (const auto& v : in.dials.vias) x.histogram("flowrelay_dial_seconds", "via=\"" + std::string(v.via) + "\"", v.dial);
  x.family("flowrelay_dial_failures_total", "counter", "TCP dials that failed, by way out and reason.");
  for (const auto& v : in.dials.vias)
    for (std::size_t i = 0; i < relay::metrics::kDialFailureKinds; ++i)
      x.sample("flowrelay_dial_failures_total",
               "via=\"" + std::string(v.via) + R"(",reason=")" +
                   relay::metrics::to_string(static_cast<relay::metrics::DialFailure>(i)) + "\"",
               static_cast<double>(v.failures[i]));
  x.family("flowrelay_drops_total", "counter", "Flows refused and datagrams dropped, by reason.");
  x.sample("flowrelay_drops_total", R"(reason="flow_limit_tcp")", static_cast<double>(c.rejected - c.rejected_udp));
  x.sample("flowrelay_drops_total", R"(reason="flow_limit_udp")", static_cast<double>(c.rejected_udp));
  x.sample("flowrelay_drops_total", R"(reason="udp_datagram")", static_cast<double>(t.udp_dropped));
  for (const auto& [reason, n] : in.drops)
    x.sample("flowrelay_drops_total", "reason=\"" + reason + "\"", static_cast<double>(n));
  x.family("flowrelay_flows_released_total", "counter", "Flows the relay closed on purpose (reclaim, drain).");
  x.sample("flowrelay_flows_released_total", "", static_cast<double>(c.released));
  x.family("flowrelay_flows_idle_expired_total", "counter", "Flows closed by their idle timeout.");
  x.sample("flowrelay_flows_idle_expired_total", "", static_cast<double>(c.idle_expired));
  x.family("flowrelay_buffer_waits_total", "counter", "Reads put off because the buffer budget was spent.");
  x.sample("flowrelay_buffer_waits_total", "", static_cast<double>(c.buffer_waits));
  if (in.epoch) {
    x.family("flowrelay_epoch", "gauge", "The verdict epoch in force.");
    x.sample("flowrelay_epoch", "", static_cast<double>(*in.epoch));
  }
  if (in.cycles) {
    x.family("flowrelay_reclaim_cycle_seconds", "histogram", "Reclaim cycles, start to finish, by policy.");
    for (const auto& [policy, h] : *in.cycles)
      x.histogram("flowrelay_reclaim_cycle_seconds", std::string("policy=\"") + to_string(policy) + "\"", h);
  }
  x.family("flowrelay_pool_bytes", "gauge", "Memory the chunk pools' slabs hold.");
  x.sample("flowrelay_pool_bytes", "", static_cast<double>(in.buffer_bytes));
  x.family("flowrelay_pool_chunks", "gauge", "Pool chunks by size class and state.");
  static constexpr const char* kClass[] = {"small", "large", "header"};
  for (std::size_t i = 0; i < buffers::kSizeClasses; ++i) {
    x.sample("flowrelay_pool_chunks", std::string("class=\"") + kClass[i] + "\",state=\"live\"",
             static_cast<double>(in.pool.classes[i].live));
    x.sample("flowrelay_pool_chunks", std::string("class=\"") + kClass[i] + "\",state=\"free\"",
             static_cast<double>(in.pool.classes[i].free));
  }
  return x.take();
}

}  // namespace flowrelay::control
