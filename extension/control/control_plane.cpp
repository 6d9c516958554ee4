#include "extension/control/control_plane.hpp"

#include <algorithm>

namespace flowrelay::control {

ControlPlane::ControlPlane(PlatformCaps platform, ProviderHost& host, BypassedFlows& bypassed, const Clock& clock,
                           ControllerOptions options)
    : epochs_(platform, clock),
      controller_(host, bypassed, clock, options),
      watcher_(epochs_, clock,
               {[this](const std::shared_ptr<const Epoch>& e) { controller_.on_epoch(e); },
                [this](const EpochEvent& e) {
                  if (report_) report_(e);
                }}) {}

void ControlPlane::tick() {
  watcher_.tick();
  controller_.tick();
}

std::optional<SteadyTime> ControlPlane::next_deadline() const {
  auto a = watcher_.next_deadline();
  auto b = controller_.next_deadline();
  if (a && b) return std::min(*a, *b);
  return a ? a : b;
}

}  // namespace flowrelay::control
