#pragma once
// The control plane assembled: epochs, the config watcher and the reclaim controller, wired so
// that every accepted epoch starts a reclaim cycle. One object for the daemon to own and drive.

#include "extension/control/bypassed_flows.hpp"
#include "extension/control/clock.hpp"
#include "extension/control/config_watcher.hpp"
#include "extension/control/epoch_manager.hpp"
#include "extension/control/platform.hpp"
#include "extension/control/provider_host.hpp"
#include "extension/control/reclaim_controller.hpp"

#include <functional>
#include <optional>

namespace flowrelay::control {

/// Owns EpochManager, ConfigWatcher and ReclaimController and connects them. Single-threaded:
/// the daemon adds its sources (`watcher().add_source(...)`), then on its control thread calls
/// `tick()` whenever `next_deadline()` passes (re-arming one steady_timer after every call into
/// the control plane, since any of them may move the deadline). Host completions and source
/// deliveries must arrive on that thread too. At startup, after adding a source that delivers
/// the current file at once (InotifyConfigSource does), call `watcher().flush()` so the first
/// epoch does not wait out the debounce.
class ControlPlane {
 public:
  ControlPlane(PlatformCaps platform, ProviderHost& host, BypassedFlows& bypassed, const Clock& clock,
               ControllerOptions options = {});
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  EpochManager& epochs() { return epochs_; }
  const EpochManager& epochs() const { return epochs_; }
  ConfigWatcher& watcher() { return watcher_; }
  ReclaimController& controller() { return controller_; }
  const ReclaimController& controller() const { return controller_; }

  /// Called for every submission that did not make a new epoch (rejected, unchanged, source
  /// errors): the daemon logs it and may show it on the control socket. Optional.
  void on_report(std::function<void(const EpochEvent&)> f) { report_ = std::move(f); }

  void tick();
  std::optional<SteadyTime> next_deadline() const;

 private:
  EpochManager epochs_;
  ReclaimController controller_;
  ConfigWatcher watcher_;
  std::function<void(const EpochEvent&)> report_;
};

}  // namespace flowrelay::control
