#include "extension/control/epoch_report.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdio>
#include <sstream>

namespace flowrelay::control {

namespace json = boost::json;

std::string format_time(WallTime t) {
  using namespace std::chrono;
  auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  long long days = ms >= 0 ? ms / 86'400'000 : (ms - 86'399'999) / 86'400'000;
  long long rem = ms - days * 86'400'000;
  // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
  long long z = days + 719468;
  long long era = (z >= 0 ? z : z - 146096) / 146097;
  long long doe = z - era * 146097;
  long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  long long y = yoe + era * 400;
  long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  long long mp = (5 * doy + 2) / 153;
  long long d = doy - (153 * mp + 2) / 5 + 1;
  long long m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  char buf[128];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ", y, m, d, rem / 3'600'000,
                rem / 60'000 % 60, rem / 1000 % 60, rem % 1000);
  return buf;
}

namespace {
std::string hash_hex(std::uint64_t h) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
}  // namespace

json::value to_json(const EpochEvent& e) {
  json::object o;
  o["epoch"] = e.epoch;
  o["kind"] = to_string(e.kind);
  o["at"] = format_time(e.at);
  o["source"] = e.source;
  o["content_hash"] = e.content_hash ? json::value(hash_hex(e.content_hash)) : json::value(nullptr);
  o["rules"] = e.rules;
  o["error"] = e.error.empty() ? json::value(nullptr) : json::value(e.error);
  return o;
}

json::value to_json(const CycleRecord& c) {
  json::object o;
  o["id"] = c.id;
  o["from"] = c.from;
  o["to"] = c.to;
  o["policy"] = to_string(c.policy);
  o["trigger"] = c.trigger;
  o["started_at"] = format_time(c.started_at);
  o["plan_us"] = c.plan_time.count();
  o["duration_ms"] = c.duration.count();
  o["claimed_seen"] = c.claimed_seen;
  o["bypassed_seen"] = c.bypassed_seen;
  o["planned"] = json::object{{"release", c.planned_release}, {"reclaim", c.planned_reclaim}};
  o["done"] = json::object{{"release", c.released}, {"reclaim", c.reclaimed}};
  o["failed"] = c.failed;
  o["restarted"] = c.restarted;
  o["fell_back"] = c.fell_back;
  o["restart_due"] = c.restart_due ? json::value(format_time(*c.restart_due)) : json::value(nullptr);
  json::array errors;
  for (auto& e : c.errors) errors.emplace_back(e);
  o["errors"] = std::move(errors);
  o["outcome"] = to_string(c.outcome);
  return o;
}

json::value epochs_json(const EpochManager& epochs, const ReclaimController* controller) {
  json::object o;
  auto id = epochs.current_id();
  o["current"] = id ? json::value(id) : json::value(nullptr);
  json::array history;
  for (auto& e : epochs.history()) history.push_back(to_json(e));
  o["history"] = std::move(history);
  json::array cycles;
  if (controller) {
    for (auto& c : controller->cycles()) cycles.push_back(to_json(c));
    if (auto* running = controller->current_cycle()) cycles.push_back(to_json(*running));
  }
  o["cycles"] = std::move(cycles);
  return o;
}

std::string epochs_table(const EpochManager& epochs, const ReclaimController* controller) {
  std::ostringstream o;
  char line[512];
  o << "current epoch: " << epochs.current_id() << "\n\n";
  std::snprintf(line, sizeof line, "%-6s %-12s %-24s %-16s %-6s %s\n", "EPOCH", "KIND", "AT", "HASH", "RULES",
                "SOURCE / ERROR");
  o << line;
  for (auto& e : epochs.history()) {
    std::string tail = e.source + (e.error.empty() ? "" : ": " + e.error);
    std::snprintf(line, sizeof line, "%-6llu %-12s %-24s %-16s %-6zu %s\n", static_cast<unsigned long long>(e.epoch),
                  to_string(e.kind), format_time(e.at).c_str(), e.content_hash ? hash_hex(e.content_hash).c_str() : "-",
                  e.rules, tail.c_str());
    o << line;
  }
  if (!controller) return o.str();
  o << "\n";
  std::snprintf(line, sizeof line, "%-6s %-9s %-9s %-10s %-15s %-15s %-7s %-9s %-10s %s\n", "CYCLE", "EPOCHS",
                "POLICY", "OUTCOME", "RELEASED", "RECLAIMED", "FAILED", "RESTART", "TOOK", "NOTES");
  o << line;
  auto row = [&](const CycleRecord& c) {
    std::string epochs_s = std::to_string(c.from) + "->" + std::to_string(c.to);
    std::string rel = std::to_string(c.released) + "/" + std::to_string(c.planned_release);
    std::string rec = std::to_string(c.reclaimed) + "/" + std::to_string(c.planned_reclaim);
    std::string restart = c.restarted ? "yes" : c.restart_due ? "deferred" : "no";
    std::string took = std::to_string(c.duration.count()) + " ms";
    std::string notes = c.trigger;
    if (c.fell_back) notes += "; fell back to restart";
    if (c.restart_due) notes += "; restart due " + format_time(*c.restart_due);
    if (!c.errors.empty()) notes += "; " + c.errors.front() + (c.errors.size() > 1 ? " (+more)" : "");
    std::snprintf(line, sizeof line, "%-6llu %-9s %-9s %-10s %-15s %-15s %-7zu %-9s %-10s %s\n",
                  static_cast<unsigned long long>(c.id), epochs_s.c_str(), to_string(c.policy), to_string(c.outcome),
                  rel.c_str(), rec.c_str(), c.failed, restart.c_str(), took.c_str(), notes.c_str());
    o << line;
  };
  for (auto& c : controller->cycles()) row(c);
  if (auto* running = controller->current_cycle()) row(*running);
  return o.str();
}

}  // namespace flowrelay::control
