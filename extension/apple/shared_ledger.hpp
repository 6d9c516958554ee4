#pragma once
// The bypass ledger as the provider uses it: handleNewFlow: records its NO answers on the system's
// queues while the control thread plans against the ledger, so one lock guards it.

#include "extension/control/bypassed_flows.hpp"

#include <mutex>

namespace flowrelay::apple {

class SharedLedger final : public control::BypassedFlows {
 public:
  SharedLedger(const control::Clock& clock, std::size_t max_entries, std::chrono::steady_clock::duration max_age)
      : ledger_(clock, max_entries, max_age) {}

  void record(const relay::FlowMeta& flow) {
    std::lock_guard lk(mu_);
    ledger_.record(flow);
  }
  /// After a cancel-and-restart every flow comes back through handleNewFlow:.
  void clear() {
    std::lock_guard lk(mu_);
    ledger_.clear();
  }
  std::vector<relay::FlowMeta> snapshot() override {
    std::lock_guard lk(mu_);
    return ledger_.snapshot();
  }
  control::LedgerStats stats() const {
    std::lock_guard lk(mu_);
    return ledger_.stats();
  }

 private:
  mutable std::mutex mu_;
  control::BypassLedger ledger_;
};

}  // namespace flowrelay::apple
