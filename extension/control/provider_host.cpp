#include "extension/control/provider_host.hpp"

namespace flowrelay::control {

HostResult release_flows(relay::Relay& relay, const std::vector<relay::FlowMeta>& flows, relay::EpochId epoch,
                         spdlog::logger& logger) {
  HostResult r;
  const std::string reason = "released: epoch " + std::to_string(epoch) + " bypasses it";
  for (const auto& f : flows) {
    if (relay.release(f.id, reason)) {
      ++r.done;
      logger.info("flow {} epoch {}: released ({} {} -> {})", f.id, epoch, relay::to_string(f.proto), f.app.to_string(),
                  f.dst.to_string());
    } else {
      r.failures.emplace_back(f.id, "ended before its release");
    }
  }
  return r;
}

}  // namespace flowrelay::control
