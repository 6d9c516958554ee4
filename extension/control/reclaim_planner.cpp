#include "extension/control/reclaim_planner.hpp"

namespace flowrelay::control {

ReclaimPlan plan(const Epoch* from, const Epoch& to, std::span<const relay::FlowMeta> claimed,
                 std::span<const relay::FlowMeta> bypassed, const HostCapabilities& caps) {
  ReclaimPlan p;
  p.from = from ? from->id : 0;
  p.to = to.id;
  p.claimed_seen = claimed.size();
  p.bypassed_seen = bypassed.size();
  const RuleSet& now = *to.rules;
  const RuleSet* before = from ? from->rules.get() : nullptr;
  for (const auto& f : claimed) {
    if (now.verdict(f) != Verdict::bypass) continue;
    if (before && before->verdict(f) == Verdict::bypass) ++p.stale;
    p.release.push_back(f);
  }
  for (const auto& f : bypassed) {
    if (now.verdict(f) != Verdict::claim) continue;
    if (before && before->verdict(f) == Verdict::claim) ++p.stale;
    if (!caps.can_close(f.proto)) p.restart_needed = true;
    p.reclaim.push_back(f);
  }
  return p;
}

}  // namespace flowrelay::control
