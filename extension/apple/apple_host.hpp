#pragma once
// control::ProviderHost on macOS. Everything runs on the provider's control thread (the io_context
// given here), and completions are called there too.
//
//   apply_epoch         network settings for the epoch (setTunnelNetworkSettings:), then new flows
//                       are decided by its rules
//   release             claimed flows that now bypass are closed after the drain grace: NE cannot
//                       hand a live flow back to the system, the app's reconnect is answered NO
//   close_bypassed      unsupported: there is no public call to close a flow answered NO, so the
//                       controller falls back to a restart and says so in its cycle log
//   cancel_and_restart  cancelProxyWithError:; the ledger starts afresh, the restart is remembered
//                       in ProviderMemory for the next instance's rate limit

#include "extension/apple/provider_shell.hpp"
#include "extension/apple/shared_ledger.hpp"
#include "extension/control/provider_host.hpp"
#include "extension/control/shared_slot.hpp"
#include "relay/relay.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <functional>
#include <memory>

namespace flowrelay::apple {

struct AppleHostCounters {
  std::uint64_t settings_applied = 0;
  std::uint64_t settings_failed = 0;
  std::uint64_t released = 0;
  std::uint64_t restarts = 0;
};

class AppleHost final : public control::ProviderHost {
 public:
  /// `after_completion` runs on the control thread after every asynchronous completion (the
  /// provider re-arms its control timer there).
  AppleHost(boost::asio::io_context& control, relay::Relay& relay, SharedLedger& ledger, ProviderShell& shell,
            ProviderMemory& memory, const control::Clock& clock, std::function<void()> after_completion);
  ~AppleHost() override;

  control::HostCapabilities capabilities() const override { return {false, false, true}; }
  std::vector<relay::FlowMeta> claimed_flows() override;
  void apply_epoch(std::shared_ptr<const control::Epoch> epoch, control::HostCompletion done) override;
  void release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace,
               control::HostCompletion done) override;
  void close_bypassed(std::vector<relay::FlowMeta> flows, control::HostCompletion done) override;
  void cancel_and_restart(control::HostCompletion done) override;

  /// The epoch whose network settings are installed; null before the first. Any thread: this is
  /// what handleNewFlow: decides with.
  std::shared_ptr<const control::Epoch> applied() const { return applied_.load(); }
  /// Set once cancel_and_restart asked the system to stop this instance: answer NO from then on.
  bool cancelling() const { return cancelling_.load(std::memory_order_acquire); }
  const AppleHostCounters& counters() const { return counters_; }

 private:
  boost::asio::io_context& io_;
  relay::Relay& relay_;
  SharedLedger& ledger_;
  ProviderShell& shell_;
  ProviderMemory& memory_;
  const control::Clock& clock_;
  std::function<void()> after_completion_;
  control::SharedSlot<const control::Epoch> applied_;
  std::atomic<bool> cancelling_{false};
  AppleHostCounters counters_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace flowrelay::apple
