#pragma once
// The portable heart of FlowRelayProvider. The .mm translates NE objects into calls on this class
// and nothing more; everything here builds and runs on Linux against the NE simulator.
//
//   startProxyWithOptions:   start(providerConfiguration as JSON): epoch 1, its network settings,
//                            the reactors
//   stopProxyWithReason:     stop(): no new flows, drain (the epoch's drain_ms), reactors down
//   handleNewFlow:           handle_new_tcp_flow(meta, ops): the compiled RuleSet decides with the
//                            signing id, uid/pid and remote hostname; NO answers go into the bypass
//                            ledger with their epoch; YES opens the flow and the relay adopts it;
//                            past limits.max_flows claimed flows the answer is NO, counted
//   handleNewUDPFlow:...     handle_new_udp_flow(meta, ops), likewise
//   KVO protocolConfiguration  push_config(JSON): debounced like a file edit; a new epoch may
//                            release flows, and reclaims through cancel-and-restart (AppleHost)
//   handleAppMessage:        app_message("flows" | "epochs"): JSON, as `flowrelay flows/epochs`
//
// Threads: the control plane runs on one control thread owned here; flows run on the reactor
// shards; the entry points above may be called from any thread (the system's queues).

#include "extension/apple/ne_flow_ops.hpp"
#include "extension/apple/provider_shell.hpp"
#include "extension/control/reclaim_controller.hpp"
#include "relay/egress.hpp"
#include "relay/flow_meta.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>

namespace flowrelay::control {
class ControlPlane;
}

namespace flowrelay::apple {

/// Tunables that are not in the config.
struct ProviderOptions {
  std::size_t threads = 0;  // reactor shards; 0: one per core
  /// Bypass ledger bounds: handleNewFlow: answers NO and never hears of the flow again, so entries
  /// leave by age, or oldest first past the count.
  std::size_t ledger_entries = 16384;
  std::chrono::steady_clock::duration ledger_age = std::chrono::hours(1);
  /// stopProxyWithReason: drains for the epoch's drain_ms, but never longer than this.
  std::chrono::milliseconds max_stop_drain{5000};
  control::ControllerOptions controller;  // `last_restart` is taken from ProviderMemory
  /// How claimed flows reach their destinations; null: straight there (relay::DirectEgress with
  /// the first epoch's connect timeout). Tests route through a map of their own.
  std::function<std::unique_ptr<relay::Egress>(const control::Config&)> make_egress;
};

/// handleNewFlow: answers over the provider's life. Any thread.
struct ProviderCounters {
  std::uint64_t offered_tcp = 0;
  std::uint64_t offered_udp = 0;
  std::uint64_t claimed_tcp = 0;
  std::uint64_t claimed_udp = 0;
  std::uint64_t bypassed = 0;     // NO: the rules say bypass (recorded in the ledger)
  std::uint64_t over_cap = 0;     // NO: limits.max_flows claimed flows are live already
  std::uint64_t not_running = 0;  // NO: not started yet, stopping, or restarting
};

class ProviderCore {
 public:
  ProviderCore(ProviderShell& shell, ProviderMemory& memory, ProviderOptions options = {});
  /// Stops first if running.
  ~ProviderCore();
  ProviderCore(const ProviderCore&) = delete;
  ProviderCore& operator=(const ProviderCore&) = delete;

  /// Parses the config, applies it as the first epoch (network settings included) and starts the
  /// reactors. `done(error)` runs once, on any thread: empty when the provider is ready for flows,
  /// else why it cannot start (a config error names its path).
  void start(std::string config_json, std::function<void(std::string error)> done);
  /// Answers NO to new flows, lets claimed flows finish within the epoch's drain_ms (at most
  /// ProviderOptions::max_stop_drain; not at all when the provider cancelled itself to restart),
  /// then resets the rest and stops. Blocks; idempotent. Call it off the control thread
  /// (stopProxyWithReason: runs it on a thread of its own).
  void stop();
  /// A new providerConfiguration (KVO). A rejected one keeps the running epoch.
  void push_config(std::string config_json);

  /// handleNewFlow: / handleNewUDPFlow:. `meta` carries what the system told: destination, the
  /// remote hostname, the app's signing id, pid and uid. True (YES): the flow is claimed and `ops`
  /// taken; false (NO): the system carries it. Any thread.
  bool handle_new_tcp_flow(relay::FlowMeta meta, std::unique_ptr<NeTcpFlowOps> ops);
  bool handle_new_udp_flow(relay::FlowMeta meta, std::unique_ptr<NeUdpFlowOps> ops);

  /// handleAppMessage: "flows" or "epochs" -> JSON (an {"error": ...} object otherwise).
  std::string app_message(std::string_view command);

  ProviderCounters counters() const;
  /// The epoch whose settings are installed; 0 when not running.
  relay::EpochId epoch() const;
  /// Started, not stopped, and not cancelling itself.
  bool running() const;

  /// Runs `fn(plane)` on the control thread and waits for it; false (and `fn` not run) when not
  /// running. For tests and app messages; never from the control thread itself.
  bool with_control_plane(const std::function<void(control::ControlPlane&)>& fn);

  struct Running;

 private:
  /// The verdict for an offered flow, with mu_ held shared: the Running that adopts it (a slot is
  /// reserved), or null for NO (counted; bypass verdicts recorded in the ledger).
  Running* decide(relay::FlowMeta& meta, relay::Proto proto);
  void after_control_event();
  void arm_timer();
  void check_started();
  void teardown(std::unique_ptr<Running> r);
  /// Runs `fn` on the control thread and waits for it.
  void on_control(const std::function<void()>& fn);

  ProviderShell& shell_;
  ProviderMemory& memory_;
  ProviderOptions options_;
  boost::asio::io_context control_io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{control_io_.get_executor()};
  std::thread control_thread_;

  mutable std::shared_mutex mu_;      // guards running_: written on the control thread, read by flows
  std::unique_ptr<Running> running_;  // null when not running
  std::atomic<bool> accepting_{false};

  struct Counters {
    std::atomic<std::uint64_t> offered_tcp{0}, offered_udp{0}, claimed_tcp{0}, claimed_udp{0}, bypassed{0},
        over_cap{0}, not_running{0};
  } counters_;
};

}  // namespace flowrelay::apple
