#pragma once
// A recording ProviderHost that simulates what a platform would do to the flows it is asked to
// move, so that later cycles plan against a realistic world. Completions are immediate unless
// `async` is set, in which case they are parked until the test calls `complete_next()`.

#include "extension/control/bypassed_flows.hpp"
#include "extension/control/epoch_manager.hpp"
#include "extension/control/provider_host.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <deque>
#include <string>
#include <system_error>
#include <vector>

namespace flowrelay::control::testing_support {

inline relay::FlowMeta make_flow(relay::FlowId id, relay::Proto proto, const char* dst, std::uint16_t port) {
  relay::FlowMeta f;
  f.id = id;
  f.proto = proto;
  f.app = {boost::asio::ip::make_address("192.0.2.10"), static_cast<std::uint16_t>(40000 + id)};
  f.dst = {boost::asio::ip::make_address(dst), port};
  return f;
}

class FakeBypassed final : public BypassedFlows {
 public:
  std::vector<relay::FlowMeta> flows;
  bool throws = false;  // a failing conntrack / sock_diag dump
  std::vector<relay::FlowMeta> snapshot() override {
    if (throws) throw std::system_error(ENOBUFS, std::generic_category(), "conntrack dump");
    return flows;
  }
};

class FakeHost final : public ProviderHost {
 public:
  explicit FakeHost(FakeBypassed& bypassed) : bypassed_(bypassed) {}

  HostCapabilities caps{true, true, true};
  bool async = false;
  bool close_answers_unsupported = false;
  bool fail_apply = false;
  /// Throws std::system_error from this call, as a netlink failure below a real host would:
  /// "apply", "claimed", "snapshot", "release", "close" or "restart"; empty: never.
  std::string throw_in;
  std::vector<relay::FlowMeta> claimed;
  std::vector<std::string> calls;  // "apply 2", "release 3,4 grace 2000", "close 5", "restart"
  std::vector<relay::EpochId> applied;
  int restarts = 0;

  HostCapabilities capabilities() const override { return caps; }
  std::vector<relay::FlowMeta> claimed_flows() override {
    maybe_throw("claimed");
    return claimed;
  }

  void apply_epoch(std::shared_ptr<const Epoch> epoch, HostCompletion done) override {
    calls.push_back("apply " + std::to_string(epoch->id));
    maybe_throw("apply");
    if (fail_apply) return finish(std::move(done), {HostResult::Status::failed, 0, {}, "nft: table busy"});
    current_ = epoch;
    applied.push_back(epoch->id);
    finish(std::move(done), {});
  }

  void release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace, HostCompletion done) override {
    calls.push_back("release " + ids(flows) + " grace " + std::to_string(grace.count()));
    maybe_throw("release");
    for (auto& f : flows) {
      std::erase_if(claimed, [&](const relay::FlowMeta& c) { return c.id == f.id; });
      bypassed_.flows.push_back(f);  // the OS carries it from now on
    }
    finish(std::move(done), {HostResult::Status::ok, flows.size(), {}, {}});
  }

  void close_bypassed(std::vector<relay::FlowMeta> flows, HostCompletion done) override {
    calls.push_back("close " + ids(flows));
    maybe_throw("close");
    if (close_answers_unsupported)
      return finish(std::move(done), {HostResult::Status::unsupported, 0, {}, "no SOCK_DESTROY"});
    for (auto& f : flows) {
      std::erase_if(bypassed_.flows, [&](const relay::FlowMeta& b) { return b.id == f.id; });
      claimed.push_back(f);  // the app reconnects (TCP) or its next datagram lands (UDP)
    }
    finish(std::move(done), {HostResult::Status::ok, flows.size(), {}, {}});
  }

  void cancel_and_restart(HostCompletion done) override {
    calls.push_back("restart");
    maybe_throw("restart");
    ++restarts;
    // Every flow closes and comes back through the flow source under the running epoch.
    std::vector<relay::FlowMeta> all = claimed;
    all.insert(all.end(), bypassed_.flows.begin(), bypassed_.flows.end());
    claimed.clear();
    bypassed_.flows.clear();
    for (auto& f : all) (current_->rules->verdict(f) == Verdict::claim ? claimed : bypassed_.flows).push_back(f);
    finish(std::move(done), {});
  }

  std::size_t parked() const { return parked_.size(); }
  void complete_next() {
    auto done = std::move(parked_.front());
    parked_.pop_front();
    done.first(std::move(done.second));
  }
  static std::string ids(const std::vector<relay::FlowMeta>& flows) {
    std::vector<relay::FlowId> v;
    for (auto& f : flows) v.push_back(f.id);
    std::sort(v.begin(), v.end());
    std::string s;
    for (auto id : v) {
      if (!s.empty()) s += ',';
      s += std::to_string(id);
    }
    return s;
  }

 private:
  void maybe_throw(const std::string& where) const {
    if (throw_in == where) throw std::system_error(EINVAL, std::generic_category(), "sock_diag dump");
  }
  void finish(HostCompletion done, HostResult r) {
    if (async) parked_.emplace_back(std::move(done), std::move(r));
    else done(std::move(r));
  }
  FakeBypassed& bypassed_;
  std::shared_ptr<const Epoch> current_;
  std::deque<std::pair<HostCompletion, HostResult>> parked_;
};

}  // namespace flowrelay::control::testing_support
