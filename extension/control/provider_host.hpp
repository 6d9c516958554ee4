#pragma once
// What the reclaim controller asks of a platform: the seam between portable policy and OS calls.

#include "extension/control/epoch_manager.hpp"
#include "extension/control/reclaim_planner.hpp"
#include "relay/flow_meta.hpp"
#include "relay/relay.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace flowrelay::control {

/// How one host operation ended.
struct HostResult {
  enum class Status : std::uint8_t {
    ok,           // everything done (per-flow `failures` may still list flows that had ended)
    unsupported,  // the host cannot do this at all (e.g. close_bypassed on macOS): nothing done
    failed,       // the operation failed as a whole; `detail` says why
  };
  Status status = Status::ok;
  std::size_t done = 0;  // flows acted on
  std::vector<std::pair<relay::FlowId, std::string>> failures;  // flows that could not be moved
  std::string detail;
};

/// Called exactly once per operation, on the controller's thread; it may run before the call
/// that started the operation returns (synchronous hosts) or later (asynchronous ones).
using HostCompletion = std::function<void(HostResult)>;

/// A platform's flow source and flow mover. The Linux host implements these with nftables,
/// sock_diag and conntrack; the macOS host with NETransparentProxyProvider.
class ProviderHost {
 public:
  virtual ~ProviderHost() = default;
  virtual HostCapabilities capabilities() const = 0;
  /// The flows the relay holds now (the controller plans against them).
  virtual std::vector<relay::FlowMeta> claimed_flows() = 0;
  /// Make `epoch` decide new flows from now on (Linux: swap the rule set, re-mark nothing).
  virtual void apply_epoch(std::shared_ptr<const Epoch> epoch, HostCompletion done) = 0;
  /// Hand claimed flows back to the OS; in-flight data gets `grace` to drain before closing.
  virtual void release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace, HostCompletion done) = 0;
  /// Close (TCP) or re-mark (UDP) bypassed flows so that they come back claimed. May answer
  /// `unsupported`; the controller then falls back to a restart.
  virtual void close_bypassed(std::vector<relay::FlowMeta> flows, HostCompletion done) = 0;
  /// Cancel and restart the provider: every flow closes and comes back through the flow source
  /// under the running epoch. The host clears whatever bypass ledger it keeps.
  virtual void cancel_and_restart(HostCompletion done) = 0;
};

/// What every host's release() does once the drain grace is over: close each flow in the relay
/// (its app reconnects and meets the new epoch's verdict), log it under `logger`, and say which had
/// ended on their own already.
HostResult release_flows(relay::Relay& relay, const std::vector<relay::FlowMeta>& flows, relay::EpochId epoch,
                         spdlog::logger& logger);

}  // namespace flowrelay::control
