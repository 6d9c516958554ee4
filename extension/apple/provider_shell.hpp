#pragma once
// What the portable provider asks of the system around it, and what outlives one provider instance.
// FlowRelayProvider (the .mm) implements ProviderShell with its own NETransparentProxyProvider
// calls; tests/apple implements it with a simulated macOS.

#include "extension/apple/network_settings.hpp"
#include "extension/control/clock.hpp"

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

namespace flowrelay::apple {

class ProviderShell {
 public:
  virtual ~ProviderShell() = default;
  /// setTunnelNetworkSettings: with a NETransparentProxyNetworkSettings holding `settings`.
  /// `done(error)` runs once, on any thread; an empty error means the settings are in place.
  virtual void apply_network_settings(const NetworkSettings& settings, std::function<void(std::string error)> done) = 0;
  /// cancelProxyWithError:. The system then stops this provider (stopProxyWithReason:, every flow
  /// closes) and the container app, or an on-demand rule, starts it again. Must return without
  /// calling back into the provider.
  virtual void cancel_proxy(const std::string& reason) = 0;
};

/// What the extension process keeps across provider instances: a cancel-and-restart ends the
/// instance that asked for it, yet `min_restart_interval_ms` must hold across instances, and the
/// next instance should be able to show what the last one did. One per process (the .mm keeps a
/// static one); thread-safe.
class ProviderMemory {
 public:
  void note_restart(control::SteadyTime at, std::string why) {
    std::lock_guard lk(mu_);
    last_restart_ = at;
    last_restart_reason_ = std::move(why);
    ++restarts_;
  }
  std::optional<control::SteadyTime> last_restart() const {
    std::lock_guard lk(mu_);
    return last_restart_;
  }
  std::uint64_t restarts() const {
    std::lock_guard lk(mu_);
    return restarts_;
  }
  std::string last_restart_reason() const {
    std::lock_guard lk(mu_);
    return last_restart_reason_;
  }
  /// The epoch history and reclaim cycles of the instance that stopped last, as JSON.
  void set_previous_instance(std::string epochs_json) {
    std::lock_guard lk(mu_);
    previous_ = std::move(epochs_json);
  }
  std::string previous_instance() const {
    std::lock_guard lk(mu_);
    return previous_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<control::SteadyTime> last_restart_;
  std::string last_restart_reason_;
  std::uint64_t restarts_ = 0;
  std::string previous_;
};

}  // namespace flowrelay::apple
