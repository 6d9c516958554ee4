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

/// Matcher internals that tests switch to reach every code path; the defaults are the fast ones.
struct MatcherOptions {
  bool flatten = true;    // per-interval hit lists (else a segment-tree walk per lookup)
  bool hit_table = true;  // hash the hits (else sort them, as lookups with >128 hits always do)
};

/// A compiled, immutable rule set. Thread-safe for concurrent `verdict`/`explain` calls.
///
/// Matching semantics (shared with `matches_linear`, the reference):
/// - a field absent from a rule matches anything; a present field needs one list entry to match;
/// - v4-mapped IPv6 destinations (::ffff:a.b.c.d) are matched as the IPv4 address;
/// - `uids` needs the flow's uid, `apps` its signing id, `hosts` its hostname: unknown never matches;
/// - globs: `*` any run of characters (dots included), `?` one character; hosts compare lower-case.
///
/// Layout: per dimension (destination, port, uid, app, host) a bitset of the rules that leave it
/// unconstrained, and an index that lists the constrained rules matching a value: segment trees
/// over address and port intervals, hash maps for uids and for literal, prefix and suffix globs.
/// A lookup gathers the index hits (a handful), sorts them, and takes the first rule that every
/// dimension admits; the first rule open in every dimension is precomputed. Cost: the index walks
/// plus the hits, independent of how many rules never come near the flow.
class RuleSet {
 public:
  explicit RuleSet(const Config& config, MatcherOptions options = {});
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
  MatcherOptions options_;
  std::unique_ptr<Index> index_;
};

/// The plain reference: does `rule` match `flow`? (Linear scans use this; the property test
/// checks RuleSet against it.)
bool matches_linear(const Rule& rule, const relay::FlowMeta& flow);

/// Glob match: `*` any run (possibly empty), `?` exactly one character; byte-wise.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace flowrelay::control
