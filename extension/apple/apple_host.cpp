#include "extension/apple/apple_host.hpp"

#include "extension/apple/log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

namespace flowrelay::apple {

namespace asio = boost::asio;
using control::HostResult;

AppleHost::AppleHost(asio::io_context& control, relay::Relay& relay, SharedLedger& ledger, ProviderShell& shell,
                     ProviderMemory& memory, const control::Clock& clock, std::function<void()> after_completion)
    : io_(control), relay_(relay), ledger_(ledger), shell_(shell), memory_(memory), clock_(clock),
      after_completion_(std::move(after_completion)) {}

AppleHost::~AppleHost() = default;

std::vector<relay::FlowMeta> AppleHost::claimed_flows() {
  std::vector<relay::FlowMeta> out;
  for (auto& s : relay_.snapshot()) out.push_back(std::move(s.meta));
  return out;
}

void AppleHost::apply_epoch(std::shared_ptr<const control::Epoch> epoch, control::HostCompletion done) {
  auto settings = network_settings_for(*epoch->config);
  if (settings.collapsed)
    logger()->warn("epoch {}: the claim rules need too many network rules; including every destination of their "
                   "protocols and deciding each flow in handleNewFlow:",
                   epoch->id);
  const auto count = settings.included.size();
  // The shell answers on a queue of its own; the controller hears it on the control thread.
  shell_.apply_network_settings(settings, [this, alive = std::weak_ptr<int>(alive_), epoch, count,
                                           done = std::move(done)](std::string error) mutable {
    asio::post(io_, [this, alive, epoch = std::move(epoch), count, done = std::move(done),
                     error = std::move(error)]() mutable {
      if (alive.expired()) return;
      HostResult r;
      if (error.empty()) {
        applied_.store(epoch);
        ++counters_.settings_applied;
        r.done = 1;
        logger()->info("epoch {}: network settings applied ({} included rules)", epoch->id, count);
      } else {
        ++counters_.settings_failed;
        r.status = HostResult::Status::failed;
        r.detail = "setTunnelNetworkSettings: " + error;
        logger()->error("epoch {}: {}", epoch->id, r.detail);
      }
      done(std::move(r));
      if (after_completion_) after_completion_();
    });
  });
}

void AppleHost::release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace,
                        control::HostCompletion done) {
  auto timer = std::make_shared<asio::steady_timer>(io_, grace);
  timer->async_wait([this, timer, flows = std::move(flows), done = std::move(done),
                     alive = std::weak_ptr<int>(alive_)](const boost::system::error_code&) {
    if (alive.expired()) return;
    const auto epoch = applied();
    auto r = control::release_flows(relay_, flows, epoch ? epoch->id : 0, *logger());
    counters_.released += r.done;
    done(std::move(r));
    if (after_completion_) after_completion_();
  });
}

void AppleHost::close_bypassed(std::vector<relay::FlowMeta>, control::HostCompletion done) {
  HostResult r;
  r.status = HostResult::Status::unsupported;
  r.detail = "macOS has no public call to close a flow the provider answered NO";
  done(std::move(r));
}

void AppleHost::cancel_and_restart(control::HostCompletion done) {
  const auto epoch = applied();
  std::string why = "flowrelay: epoch " + std::to_string(epoch ? epoch->id : 0) +
                    " claims flows the system carries; restarting the provider brings them back";
  ++counters_.restarts;
  memory_.note_restart(clock_.now(), why);
  cancelling_.store(true, std::memory_order_release);
  ledger_.clear();
  HostResult r;
  r.done = relay_.active();
  logger()->warn("epoch {}: cancelProxyWithError: ({} claimed flows close; every flow comes back through "
                 "handleNewFlow: when the provider starts again)",
                 epoch ? epoch->id : 0, r.done);
  shell_.cancel_proxy(why);
  done(std::move(r));
}

}  // namespace flowrelay::apple
