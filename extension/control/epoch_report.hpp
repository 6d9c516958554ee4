#pragma once
// What `flowrelay epochs [--json]` shows: epoch history and reclaim cycles, as JSON and as a table.
// The daemon serves the JSON on its control socket; the CLI prints either form.

#include "extension/control/epoch_manager.hpp"
#include "extension/control/reclaim_controller.hpp"

#include <boost/json/value.hpp>

#include <deque>
#include <string>

namespace flowrelay::control {

/// {"epoch": 3, "kind": "accepted", "at": "2026-11-27T00:10:41.123Z", "source": "...",
///  "content_hash": "0123456789abcdef", "rules": 2, "error": null}
boost::json::value to_json(const EpochEvent& e);
/// {"id", "from", "to", "policy", "trigger", "started_at", "plan_us", "duration_ms", "claimed_seen",
///  "bypassed_seen", "planned": {"release", "reclaim"}, "done": {"release", "reclaim"}, "failed",
///  "restarted", "fell_back", "restart_due" (string or null), "errors": [...], "outcome"}
boost::json::value to_json(const CycleRecord& c);

/// {"current": <epoch id or null>, "history": [EpochEvent...], "cycles": [CycleRecord...]}
/// (cycles: finished ones oldest first, then the running one if any).
boost::json::value epochs_json(const EpochManager& epochs, const ReclaimController* controller);

/// The same as two human tables (epochs, then reclaim cycles), newest last.
std::string epochs_table(const EpochManager& epochs, const ReclaimController* controller);

/// "2026-11-27T00:10:41.123Z" (UTC, milliseconds).
std::string format_time(WallTime t);

}  // namespace flowrelay::control
