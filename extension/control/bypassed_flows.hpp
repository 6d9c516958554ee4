#pragma once
// Flows the OS carries for us (verdict bypass): the planner needs them to find flows to reclaim.

#include "extension/control/clock.hpp"
#include "relay/flow_meta.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

namespace flowrelay::control {

/// A view of the live bypassed flows. Linux implements it over the socket table (sock_diag) minus
/// the claimed flows; platforms that cannot list sockets use BypassLedger. Called on the control
/// thread when a reclaim cycle plans; a snapshot may be slightly stale (the host copes with flows
/// that ended in between).
class BypassedFlows {
 public:
  virtual ~BypassedFlows() = default;
  virtual std::vector<relay::FlowMeta> snapshot() = 0;
};

/// Counters of a BypassLedger.
struct LedgerStats {
  std::size_t entries = 0;
  std::uint64_t recorded = 0;
  std::uint64_t dropped_full = 0;  // evicted, oldest first, because the ledger was full
  std::uint64_t dropped_aged = 0;  // expired by age
  std::uint64_t forgotten = 0;     // removed because the host saw them end or reclaimed them
};

/// A bounded record of bypass verdicts (on macOS: each `handleNewFlow` that answered NO), for
/// platforms where bypassed flows are invisible afterwards. Entries leave when the host says the
/// flow ended (`forget`), when they grow older than `max_age`, or, oldest first, when more than
/// `max_entries` are held; every drop is counted. Recording an id again refreshes it.
/// Not thread-safe: use it from the control thread (or guard it).
class BypassLedger final : public BypassedFlows {
 public:
  BypassLedger(const Clock& clock, std::size_t max_entries, std::chrono::steady_clock::duration max_age);

  void record(const relay::FlowMeta& flow);
  bool forget(relay::FlowId id);
  /// After a cancel-and-restart every flow comes back through the flow source: start afresh.
  void clear();
  void expire();
  std::vector<relay::FlowMeta> snapshot() override;  // expires first
  const LedgerStats& stats() const { return stats_; }

 private:
  struct Entry {
    relay::FlowMeta meta;
    SteadyTime seen;
  };
  const Clock& clock_;
  std::size_t max_entries_;
  std::chrono::steady_clock::duration max_age_;
  std::list<Entry> order_;  // oldest first
  std::unordered_map<relay::FlowId, std::list<Entry>::iterator> by_id_;
  LedgerStats stats_;
};

}  // namespace flowrelay::control
