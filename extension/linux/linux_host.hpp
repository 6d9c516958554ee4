#pragma once
// control::ProviderHost on Linux: the nftables table per epoch, relay releases, SOCK_DESTROY for
// bypassed TCP flows and conntrack re-marks for UDP ones, and cancel-and-restart emulated by
// closing every flow in scope. Everything runs on the control thread (the io_context given here);
// completions are called there too.

#include "extension/control/config.hpp"
#include "extension/control/provider_host.hpp"
#include "extension/linux/linux_bypassed_flows.hpp"
#include "extension/linux/nft_table.hpp"
#include "relay/relay.hpp"

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

namespace flowrelay::linux_host {

struct LinuxHostOptions {
  /// The settings the listeners and routes were set up with; later epochs cannot move them.
  control::LinuxSettings linux_settings;
  std::int64_t owner_pid = 0;
  /// Called on the control thread after an asynchronous completion (re-arm the control timer).
  std::function<void()> after_completion;
  /// Readies what an epoch needs beside the table (the daemon: its upstreams) and returns how to
  /// put it in force once the table is in. Throwing fails the epoch before anything changes.
  std::function<std::function<void()>(const control::Epoch&)> prepare_epoch;
};

/// Counters of what the host did, for `flowrelay flows` and the demo.
struct LinuxHostCounters {
  std::uint64_t tables_applied = 0;
  std::uint64_t tcp_destroyed = 0;
  std::uint64_t udp_remarked = 0;
  std::uint64_t released = 0;
  std::uint64_t restarts = 0;
  std::uint64_t tables_reinstalled = 0;  // found gone or replaced under us, and put back
};

class LinuxHost final : public control::ProviderHost {
 public:
  LinuxHost(boost::asio::io_context& control_io, relay::Relay& relay, LinuxBypassedFlows& bypassed, NftTable& nft,
            LinuxHostOptions options);
  ~LinuxHost() override;

  control::HostCapabilities capabilities() const override { return {true, true, true}; }
  std::vector<relay::FlowMeta> claimed_flows() override;
  void apply_epoch(std::shared_ptr<const control::Epoch> epoch, control::HostCompletion done) override;
  void release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace,
               control::HostCompletion done) override;
  void close_bypassed(std::vector<relay::FlowMeta> flows, control::HostCompletion done) override;
  void cancel_and_restart(control::HostCompletion done) override;

  /// The epoch whose table is installed (0: none). Any thread: sources stamp claimed flows with it.
  relay::EpochId applied_epoch() const { return applied_id_.load(std::memory_order_acquire); }
  const LinuxHostCounters& counters() const { return counters_; }
  /// Puts the applied epoch's table back when it is gone or is not ours any more (`nft flush
  /// ruleset`, another tool). True when it had to. Control thread; throws what nftables throws.
  bool reverify();

 private:
  struct Moved {
    std::size_t done = 0;
    std::vector<std::pair<relay::FlowId, std::string>> failures;
    bool unavailable = false;
  };
  NftTableSpec spec_for(const control::Epoch& epoch) const;
  void move_bypassed(const BypassedFlow& f, std::uint32_t ct_mark, Moved& m);
  std::uint32_t mark_for(control::Verdict v) const;

  boost::asio::io_context& io_;
  relay::Relay& relay_;
  LinuxBypassedFlows& bypassed_;
  NftTable& nft_;
  LinuxHostOptions options_;
  std::shared_ptr<const control::Epoch> applied_;
  std::atomic<relay::EpochId> applied_id_{0};
  LinuxHostCounters counters_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace flowrelay::linux_host
