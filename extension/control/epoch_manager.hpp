#pragma once
// Verdict epochs: every accepted configuration gets the next number; rejected ones change nothing.

#include "extension/control/clock.hpp"
#include "extension/control/config.hpp"
#include "extension/control/platform.hpp"
#include "extension/control/rule_set.hpp"
#include "extension/control/shared_slot.hpp"
#include "relay/flow_meta.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>

namespace flowrelay::control {

/// One accepted configuration and its compiled rules. Immutable; share it by shared_ptr.
struct Epoch {
  relay::EpochId id = 0;
  WallTime accepted_at{};
  std::string source;  // "file:/etc/flowrelay.json", "push:control-socket", ...
  std::uint64_t content_hash = 0;
  std::shared_ptr<const Config> config;
  std::shared_ptr<const RuleSet> rules;
};

/// What happened to one submission, for the history that `flowrelay epochs` shows.
struct EpochEvent {
  enum class Kind : std::uint8_t {
    accepted,      // a new epoch
    unchanged,     // same content as the running epoch: no new epoch
    rejected,      // invalid: the running epoch stays; `error` says why
    source_error,  // the source could not deliver (file deleted, unreadable): epoch stays
  };
  Kind kind = Kind::accepted;
  relay::EpochId epoch = 0;  // the new epoch, or the one that stays running (0: none yet)
  WallTime at{};
  std::string source;
  std::uint64_t content_hash = 0;  // 0 where no config was parsed
  std::string error;
  std::size_t rules = 0;  // accepted only
};

const char* to_string(EpochEvent::Kind k);

/// Owns the running epoch and the history. Drive it from one thread (the control thread); only
/// `current()` may be called from any thread, e.g. by flow sources that need the live rule set.
class EpochManager {
 public:
  EpochManager(PlatformCaps platform, const Clock& clock, std::size_t history_limit = 256);

  /// Parses, validates and (if new) accepts `text`. Never throws for bad input: a rejection comes
  /// back as an event with its error, and the running epoch is kept.
  EpochEvent submit(std::string_view text, std::string source);
  /// Accepts a config built in code (e.g. an embedded default). Its `content_hash` decides
  /// "unchanged" as for text; a hash of 0 (not parsed from text) always makes a new epoch.
  EpochEvent submit(Config config, std::string source);
  /// Records that a source failed to deliver (e.g. the watched file was deleted).
  EpochEvent record_source_error(std::string source, std::string error);

  /// The running epoch; null before the first accepted config.
  std::shared_ptr<const Epoch> current() const { return current_.load(); }
  relay::EpochId current_id() const;
  /// Oldest first; bounded by `history_limit`.
  const std::deque<EpochEvent>& history() const { return history_; }
  const PlatformCaps& platform() const { return platform_; }

 private:
  EpochEvent record(EpochEvent e);
  EpochEvent reject(std::string source, std::string error);

  PlatformCaps platform_;
  const Clock& clock_;
  std::size_t history_limit_;
  SharedSlot<const Epoch> current_;
  relay::EpochId next_id_ = 1;
  std::deque<EpochEvent> history_;
};

}  // namespace flowrelay::control
