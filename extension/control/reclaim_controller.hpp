#pragma once
// Carries reclaim plans out through a ProviderHost, with policy, fallbacks and a restart rate limit.

#include "extension/control/bypassed_flows.hpp"
#include "extension/control/clock.hpp"
#include "extension/control/config.hpp"
#include "extension/control/epoch_manager.hpp"
#include "extension/control/provider_host.hpp"
#include "extension/control/reclaim_planner.hpp"
#include "relay/metrics.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flowrelay::control {

/// One reclaim cycle as `flowrelay epochs` shows it.
struct CycleRecord {
  enum class Outcome : std::uint8_t {
    running,
    done,       // every planned move happened (or nothing needed moving)
    partial,    // some flows could not be moved; see `errors`
    deferred,   // a restart is needed but rate-limited: it runs at `restart_due` (see next cycle)
    failed,     // the host failed as a whole (apply_epoch, restart); the epoch may not be applied
    timed_out,  // the host did not answer within ControllerOptions::op_timeout
  };
  std::uint64_t id = 0;
  relay::EpochId from = 0;
  relay::EpochId to = 0;
  ReclaimPolicy policy = ReclaimPolicy::surgical;
  std::string trigger;  // "epoch", "deferred restart"
  WallTime started_at{};
  std::chrono::microseconds plan_time{0};  // wall-clock cost of planning (measured, not injected)
  std::chrono::milliseconds duration{0};   // start to finish on the controller's clock
  std::size_t claimed_seen = 0;
  std::size_t bypassed_seen = 0;
  std::size_t planned_release = 0;
  std::size_t planned_reclaim = 0;
  std::size_t released = 0;
  std::size_t reclaimed = 0;  // closed singly, or covered by a restart
  std::size_t failed = 0;     // flows the host could not move
  bool restarted = false;
  bool fell_back = false;  // surgical could not close singly: restart instead
  std::optional<WallTime> restart_due;
  std::vector<std::string> errors;  // at most 16, then "... and N more"
  Outcome outcome = Outcome::running;
};

const char* to_string(CycleRecord::Outcome o);

/// Tunables that are not in the config file.
struct ControllerOptions {
  std::chrono::milliseconds op_timeout{30000};  // a host operation not answered by then (release: plus
                                                // its drain grace) ends the cycle as timed out
  std::size_t log_limit = 256;                  // cycles kept for `flowrelay epochs`
  /// The last restart before this controller existed: on macOS a restart ends the provider
  /// instance, and the rate limit must hold for the next one too.
  std::optional<SteadyTime> last_restart;
};

/// Drives reclaim cycles. Single-threaded and clock-driven, so tests run it with a ManualClock and
/// a recording host; the daemon runs it on its control thread.
///
/// Driving:
/// - `on_epoch(epoch)` for every accepted epoch (wire ConfigWatcher::Callbacks::on_accepted here);
/// - `tick()` whenever `next_deadline()` passes (deferred restarts, host timeouts);
/// - host completions (ProviderHost contract: once each, on this thread, sync or async).
///
/// A cycle: apply_epoch(new) -> plan(applied, new, host.claimed_flows(), bypassed.snapshot()) ->
/// act per the new epoch's `reclaim.policy`:
/// - keep: nothing more (new verdicts apply to new flows only);
/// - surgical: release(plan.release, drain) and close_bypassed(plan.reclaim) together; a host
///   that cannot close singly (capabilities, or an `unsupported` answer) falls back to a restart;
/// - restart: release(plan.release), and cancel_and_restart only when plan.reclaim is non-empty.
/// A restart is never closer than `min_restart_interval_ms` to the previous one: it is deferred,
/// and every change until then coalesces into the one restart at the deadline (which re-plans and
/// skips the restart if nothing needs it any more). When a restart runs, the releases are left to
/// it. An epoch arriving during a cycle waits for the cycle to finish, then the next cycle plans
/// against the newest epoch (intermediate epochs are skipped). Every cycle lands in `cycles()`.
class ReclaimController {
 public:
  ReclaimController(ProviderHost& host, BypassedFlows& bypassed, const Clock& clock, ControllerOptions options = {});
  ~ReclaimController();
  ReclaimController(const ReclaimController&) = delete;
  ReclaimController& operator=(const ReclaimController&) = delete;

  void on_epoch(std::shared_ptr<const Epoch> epoch);
  void tick();
  std::optional<SteadyTime> next_deadline() const;

  bool busy() const { return run_ != nullptr; }
  /// The epoch the host last applied successfully (0: none).
  relay::EpochId applied_epoch() const { return applied_ ? applied_->id : 0; }
  bool restart_pending() const { return restart_due_.has_value(); }
  /// Finished cycles, oldest first, bounded by `log_limit`; the running one is `current_cycle()`.
  const std::deque<CycleRecord>& cycles() const { return log_; }
  /// Durations of every finished cycle by policy, over the controller's life (not bounded like
  /// cycles()): flowrelay_reclaim_cycle_seconds.
  const std::map<ReclaimPolicy, relay::metrics::HistogramValues>& cycle_seconds() const { return cycle_seconds_; }
  const CycleRecord* current_cycle() const;

 private:
  struct Run;
  void start_cycle(std::string trigger);
  /// Runs `fn`; false when it threw while cycle `cycle` still runs (the error is recorded; the
  /// caller finishes the cycle as failed).
  template <typename Fn>
  bool attempt(std::uint64_t cycle, const char* what, Fn&& fn);
  void on_applied(HostResult r);
  void act();
  void op_done();
  void restart_or_defer();
  void finish(CycleRecord::Outcome forced = CycleRecord::Outcome::running);
  void add_error(std::string e);
  HostCompletion guard(void (ReclaimController::*fn)(HostResult), std::chrono::milliseconds extra = {});
  void after_release(HostResult r);
  void after_close(HostResult r);
  void after_restart(HostResult r);

  ProviderHost& host_;
  BypassedFlows& bypassed_;
  const Clock& clock_;
  ControllerOptions options_;
  std::shared_ptr<const Epoch> applied_;
  std::shared_ptr<const Epoch> target_;
  std::shared_ptr<const Epoch> failed_target_;  // apply failed: wait for a newer epoch
  std::unique_ptr<Run> run_;
  std::uint64_t next_cycle_ = 1;
  std::optional<SteadyTime> last_restart_;
  std::optional<SteadyTime> restart_due_;
  std::deque<CycleRecord> log_;
  std::map<ReclaimPolicy, relay::metrics::HistogramValues> cycle_seconds_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // completions after destruction are dropped
};

}  // namespace flowrelay::control
