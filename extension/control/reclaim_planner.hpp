#pragma once
// The pure half of a reclaim: which live flows a new epoch moves, and whether that needs a restart.

#include "extension/control/epoch_manager.hpp"
#include "relay/flow_meta.hpp"

#include <cstddef>
#include <span>
#include <vector>

namespace flowrelay::control {

/// What a platform host can do to single flows. Linux: both closes (SOCK_DESTROY for TCP, a
/// conntrack re-mark for UDP), no restart. macOS: no single closes, restart (cancel-and-restart).
struct HostCapabilities {
  bool close_bypassed_tcp = false;
  bool close_bypassed_udp = false;
  bool restart = false;
  bool can_close(relay::Proto p) const { return p == relay::Proto::tcp ? close_bypassed_tcp : close_bypassed_udp; }
};

/// The flows a new epoch moves. Flows whose placement already agrees with the new verdict are in
/// neither list.
struct ReclaimPlan {
  relay::EpochId from = 0;  // 0: nothing applied before
  relay::EpochId to = 0;
  std::vector<relay::FlowMeta> release;  // claimed now, new verdict bypass: hand back to the OS
  std::vector<relay::FlowMeta> reclaim;  // bypassed now, new verdict claim: pull into the relay
  /// `reclaim` holds a flow the host cannot close singly: only a restart brings it back.
  bool restart_needed = false;
  std::size_t claimed_seen = 0;
  std::size_t bypassed_seen = 0;
  /// Moved flows that were already out of place under the old epoch (left there by `keep`, or by
  /// a cycle that failed) rather than flipped by this change.
  std::size_t stale = 0;
};

/// Pure: no I/O, no clock. Compares each live flow's placement with its verdict under `to`
/// (placement, not the old verdict, decides: a flow left in place by `keep` is moved when a later
/// epoch runs `surgical`). `from` (may be null) only labels moved flows as flipped or stale.
/// `claimed` and `bypassed` should be disjoint.
ReclaimPlan plan(const Epoch* from, const Epoch& to, std::span<const relay::FlowMeta> claimed,
                 std::span<const relay::FlowMeta> bypassed, const HostCapabilities& caps);

}  // namespace flowrelay::control
