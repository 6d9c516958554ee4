#pragma once
// The Prometheus text exposition (format 0.0.4) of a relay and its control plane: the families of
// DESIGN.md, "Observability". Built at scrape time from counters the data path keeps without locks.

#include "buffers/chunk_pool.hpp"
#include "extension/control/config.hpp"
#include "relay/metrics.hpp"
#include "relay/relay.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace flowrelay::control {

struct MetricsInput {
  relay::RelayCounters counters;
  relay::RelayTraffic traffic;
  relay::metrics::Totals dials;
  buffers::PoolStats pool;
  std::size_t buffer_bytes = 0;  // the pools' slabs
  std::optional<relay::EpochId> epoch;
  const std::map<ReclaimPolicy, relay::metrics::HistogramValues>* cycles = nullptr;
  std::optional<std::pair<std::size_t, std::size_t>> bypassed;  // live bypassed flows: tcp, udp
  std::vector<std::pair<std::string, std::uint64_t>> drops;       // source-specific: reason, count
};

/// The relay's and the reactor's part of the input; the caller adds the control plane's.
MetricsInput relay_metrics(const relay::Relay& relay, const relay::Reactor& reactor);

std::string prometheus_text(const MetricsInput& in);

}  // namespace flowrelay::control
