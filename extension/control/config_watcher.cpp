#include "extension/control/config_watcher.hpp"

#include "extension/control/log.hpp"

#include <algorithm>

namespace flowrelay::control {

bool PushSource::push(std::string bytes) {
  if (!sink_) return false;
  sink_(ConfigEvent{ConfigEvent::Kind::content, name_, std::move(bytes), {}});
  return true;
}

ConfigWatcher::ConfigWatcher(EpochManager& epochs, const Clock& clock, Callbacks callbacks)
    : epochs_(epochs), clock_(clock), callbacks_(std::move(callbacks)) {}

ConfigWatcher::~ConfigWatcher() = default;

void ConfigWatcher::add_source(ConfigSource& source) {
  std::weak_ptr<int> alive = alive_;
  source.start([this, alive](ConfigEvent e) {
    if (!alive.expired()) on_event(std::move(e));
  });
}

std::chrono::milliseconds ConfigWatcher::debounce() const {
  auto e = epochs_.current();
  return e ? e->config->reclaim.debounce : ReclaimSettings{}.debounce;
}

void ConfigWatcher::on_event(ConfigEvent event) {
  const auto now = clock_.now();
  const auto quiet = debounce();
  if (!pending_) burst_start_ = now;
  pending_ = std::move(event);
  deadline_ = std::min(now + quiet, burst_start_ + 8 * quiet);
  if (quiet.count() == 0) tick();
}

void ConfigWatcher::tick() {
  if (pending_ && clock_.now() >= deadline_) flush();
}

void ConfigWatcher::flush() {
  if (!pending_) return;
  ConfigEvent e = std::move(*pending_);
  pending_.reset();
  apply(std::move(e));
}

std::optional<SteadyTime> ConfigWatcher::next_deadline() const {
  if (!pending_) return std::nullopt;
  return deadline_;
}

void ConfigWatcher::apply(ConfigEvent event) {
  EpochEvent outcome;
  switch (event.kind) {
    case ConfigEvent::Kind::content:
      outcome = epochs_.submit(event.bytes, event.source);
      break;
    case ConfigEvent::Kind::deleted:
      outcome = epochs_.record_source_error(event.source, "file deleted");
      break;
    case ConfigEvent::Kind::error:
      outcome = epochs_.record_source_error(event.source, event.detail.empty() ? "unreadable" : event.detail);
      break;
  }
  if (outcome.kind == EpochEvent::Kind::accepted) {
    if (callbacks_.on_accepted) callbacks_.on_accepted(epochs_.current());
  } else if (callbacks_.on_report) {
    callbacks_.on_report(outcome);
  }
}

}  // namespace flowrelay::control
