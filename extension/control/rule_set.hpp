#pragma once
// Rules compiled into a matcher: first match wins, fast with 10,000 rules.

#include "extension/control/config.hpp"
#include "relay/flow_meta.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace flowrelay::control {

/// Why a flow got its verdict: the deciding rule, or none when the default applied.
struct Explanation {
  Verdict verdict = Verdict::bypass;
  std::optional<std::size_t> rule_index;  // index into Config::rules
  std::string rule_name;                  // "default" when no rule matched
};

/// A compiled, immutable rule set. Thread-safe for concurrent `verdict`/`explain` calls.
///
/// Matching semantics (shared with `matches_linear`, the reference):
/// - a field absent from a rule matches anything; a present field needs one list entry to match;
/// - v4-mapped IPv6 destinations (::ffff:a.b.c.d) are matched as the IPv4 address;
/// - `uids` needs the flow's uid, `apps` its signing id, `hosts` its hostname: unknown never matches;
/// - globs: `*` any run of characters (dots included), `?` one character; hosts compare lower-case.
///
/// Layout: one bit per rule in each dimension (proto, destination, port, uid, app, host). Each
/// dimension keeps a bitset of the rules that leave it unconstrained plus an index (segment trees
/// over address and port intervals, hash maps for uids and literal globs) that yields the few
/// constrained rules matching a value. A lookup ORs those into a scratch bitset per dimension, ANDs
/// the dimensions and takes the lowest set bit: O(rules / 64) word operations plus the index walks.
class RuleSet {
 public:
  explicit RuleSet(const Config& config);
  ~RuleSet();
  RuleSet(RuleSet&&) noexcept;
  RuleSet& operator=(RuleSet&&) noexcept;

  Verdict verdict(const relay::FlowMeta& flow) const;
  Explanation explain(const relay::FlowMeta& flow) const;
  /// Index of the first matching rule, or nullopt when the default applies.
  std::optional<std::size_t> first_match(const relay::FlowMeta& flow) const;

  std::size_t size() const { return rules_.size(); }
  Verdict default_verdict() const { return default_; }
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  struct Index;
  std::vector<Rule> rules_;
  Verdict default_;
  std::unique_ptr<Index> index_;
};

/// The plain reference: does `rule` match `flow`? (Linear scans use this; the property test
/// checks RuleSet against it.)
bool matches_linear(const Rule& rule, const relay::FlowMeta& flow);

/// Glob match: `*` any run (possibly empty), `?` exactly one character; byte-wise.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace flowrelay::control
