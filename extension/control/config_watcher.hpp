#pragma once
// Turns config sources (a watched file, pushed bytes) into epochs: debounced, validated, reported.

#include "extension/control/clock.hpp"
#include "extension/control/epoch_manager.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flowrelay::control {

/// What a source reports. A source sends the whole file content every time (never a diff).
struct ConfigEvent {
  enum class Kind : std::uint8_t {
    content,  // `bytes` is the new content (file written or renamed into place, or pushed)
    deleted,  // the file is gone; the running epoch stays and the deletion is reported
    error,    // the source could not read (EACCES, EIO, ...): `detail` says what; epoch stays
  };
  Kind kind = Kind::content;
  std::string source;  // names the source in history and logs, e.g. "file:/etc/flowrelay.json"
  std::string bytes;
  std::string detail;
};

using ConfigSink = std::function<void(ConfigEvent)>;

/// Where configs come from. The contract is small on purpose:
/// - `start(sink)`: begin delivering; the source may deliver the current content at once.
/// - deliver every change as one `ConfigEvent` through the sink, ON THE WATCHER'S THREAD (a source
///   that waits elsewhere, e.g. an inotify fd, posts to that thread first). Bursts are fine: the
///   watcher debounces, so a source need not coalesce (e.g. report each IN_CLOSE_WRITE/IN_MOVED_TO).
/// - watch the directory, not the inode: editors write a temp file and rename it over the target;
///   report the target's content after such a rename, and `deleted` when it is unlinked.
/// - `stop()`: no deliveries after it returns.
/// The Linux inotify file source lives in extension/linux; PushSource below serves macOS KVO on
/// `protocolConfiguration` and the control socket.
class ConfigSource {
 public:
  virtual ~ConfigSource() = default;
  virtual void start(ConfigSink sink) = 0;
  virtual void stop() = 0;
};

/// A source fed by calls: `push(bytes)` delivers content synchronously to the started sink.
class PushSource final : public ConfigSource {
 public:
  explicit PushSource(std::string name) : name_(std::move(name)) {}
  void start(ConfigSink sink) override { sink_ = std::move(sink); }
  void stop() override { sink_ = nullptr; }
  /// False when not started.
  bool push(std::string bytes);

 private:
  std::string name_;
  ConfigSink sink_;
};

/// Debounces config events and submits the latest one to the EpochManager.
///
/// Driving (single thread, no timers of its own):
/// - events arrive through `on_event` (sources call it via the sink given to them by `add_source`);
/// - the owner calls `tick()` whenever `next_deadline()` has passed (an asio steady_timer in the
///   daemon; `ManualClock::advance` + `tick()` in tests).
/// Debounce: each event restarts the quiet period (`reclaim.debounce_ms` of the running epoch,
/// 250 ms before the first); a burst longer than 8 quiet periods is cut and applied anyway, so a
/// file rewritten continuously still converges. Only the latest event of a burst counts, whatever
/// its source. Outcomes: accepted -> `on_accepted(epoch)`; rejected, unchanged, deleted or
/// unreadable -> `on_report(event)` with the running epoch kept. Both also land in the history.
class ConfigWatcher {
 public:
  struct Callbacks {
    std::function<void(const std::shared_ptr<const Epoch>&)> on_accepted;
    std::function<void(const EpochEvent&)> on_report;
  };

  ConfigWatcher(EpochManager& epochs, const Clock& clock, Callbacks callbacks);
  ~ConfigWatcher();
  ConfigWatcher(const ConfigWatcher&) = delete;
  ConfigWatcher& operator=(const ConfigWatcher&) = delete;

  /// Starts `source` with a sink into this watcher. The owner stops its sources; a delivery that
  /// arrives after the watcher is gone is dropped, so either may be destroyed first.
  void add_source(ConfigSource& source);
  void on_event(ConfigEvent event);
  /// Applies the pending event if its quiet period is over.
  void tick();
  /// Applies the pending event now (SIGHUP, an explicit reload request).
  void flush();
  /// When `tick()` next has work; nullopt when nothing is pending.
  std::optional<SteadyTime> next_deadline() const;
  bool pending() const { return pending_.has_value(); }

 private:
  std::chrono::milliseconds debounce() const;
  void apply(ConfigEvent event);

  EpochManager& epochs_;
  const Clock& clock_;
  Callbacks callbacks_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // sinks check it before calling in
  std::optional<ConfigEvent> pending_;
  SteadyTime burst_start_{};
  SteadyTime deadline_{};
};

}  // namespace flowrelay::control
