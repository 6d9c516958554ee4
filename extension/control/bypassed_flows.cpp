#include "extension/control/bypassed_flows.hpp"

namespace flowrelay::control {

BypassLedger::BypassLedger(const Clock& clock, std::size_t max_entries, std::chrono::steady_clock::duration max_age)
    : clock_(clock), max_entries_(max_entries == 0 ? 1 : max_entries), max_age_(max_age) {}

void BypassLedger::record(const relay::FlowMeta& flow) {
  ++stats_.recorded;
  if (auto it = by_id_.find(flow.id); it != by_id_.end()) {
    order_.erase(it->second);
    by_id_.erase(it);
  }
  order_.push_back({flow, clock_.now()});
  by_id_[flow.id] = std::prev(order_.end());
  while (order_.size() > max_entries_) {
    by_id_.erase(order_.front().meta.id);
    order_.pop_front();
    ++stats_.dropped_full;
  }
  stats_.entries = order_.size();
}

bool BypassLedger::forget(relay::FlowId id) {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  order_.erase(it->second);
  by_id_.erase(it);
  ++stats_.forgotten;
  stats_.entries = order_.size();
  return true;
}

void BypassLedger::clear() {
  stats_.forgotten += order_.size();
  order_.clear();
  by_id_.clear();
  stats_.entries = 0;
}

void BypassLedger::expire() {
  const auto now = clock_.now();
  while (!order_.empty() && now - order_.front().seen > max_age_) {
    by_id_.erase(order_.front().meta.id);
    order_.pop_front();
    ++stats_.dropped_aged;
  }
  stats_.entries = order_.size();
}

std::vector<relay::FlowMeta> BypassLedger::snapshot() {
  expire();
  std::vector<relay::FlowMeta> out;
  out.reserve(order_.size());
  for (auto& e : order_) out.push_back(e.meta);
  return out;
}

}  // namespace flowrelay::control
