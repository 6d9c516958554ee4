#include "extension/control/rule_set.hpp"

#include <algorithm>
#include <bit>
#include <compare>
#include <functional>
#include <string_view>
#include <type_traits>
#include <unordered_map>

namespace flowrelay::control {

namespace ip = boost::asio::ip;

bool glob_match(std::string_view p, std::string_view t) {
  // Iterative matcher with single-star backtracking: linear in practice, no recursion.
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) { ++pi; ++ti; }
    else if (pi < p.size() && p[pi] == '*') { star = pi++; mark = ti; }
    else if (star != std::string_view::npos) { pi = star + 1; ti = ++mark; }
    else return false;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

using relay::FlowMeta;

struct U128 {
  std::uint64_t hi = 0, lo = 0;
  friend auto operator<=>(const U128&, const U128&) = default;
};

// Keys for the interval indexes. A destination is normalised first: v4-mapped v6 -> v4.
ip::address normalise(const ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, a.to_v6());
  return a;
}

U128 to_u128(const ip::address_v6& a) {
  auto b = a.to_bytes();
  U128 r;
  for (int i = 0; i < 8; ++i) r.hi = (r.hi << 8) | b[i];
  for (int i = 8; i < 16; ++i) r.lo = (r.lo << 8) | b[i];
  return r;
}

std::uint32_t succ(std::uint32_t x) { return x + 1; }
bool is_max(std::uint32_t x) { return x == 0xFFFFFFFFu; }
U128 succ(U128 x) { return x.lo == ~0ULL ? U128{x.hi + 1, 0} : U128{x.hi, x.lo + 1}; }
bool is_max(U128 x) { return x.hi == ~0ULL && x.lo == ~0ULL; }

std::pair<std::uint32_t, std::uint32_t> v4_range(const Cidr& c) {
  std::uint32_t net = c.network.to_v4().to_uint();
  std::uint32_t host = c.prefix == 0 ? ~0u : (c.prefix == 32 ? 0u : (~0u >> c.prefix));
  return {net, net | host};
}
std::pair<U128, U128> v6_range(const Cidr& c) {
  U128 net = to_u128(c.network.to_v6());
  U128 host;
  int p = c.prefix;
  host.hi = p >= 64 ? 0 : (p == 0 ? ~0ULL : (~0ULL >> p));
  host.lo = p >= 128 ? 0 : (p <= 64 ? ~0ULL : (~0ULL >> (p - 64)));
  return {net, U128{net.hi | host.hi, net.lo | host.lo}};
}

std::string normalise_host(std::string_view h) {
  std::string s(h);
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (auto& c : s) if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');  // ASCII, locale-free
  return s;
}

/// Segment tree over the elementary intervals cut by every range's endpoints. Each range is stored
/// at O(log n) canonical nodes; a point query walks leaf -> root and visits every range holding it.
template <typename K>
class IntervalIndex {
 public:
  /// For 32-bit keys, `bucket_shift` enables a 64 Ki-entry table from `key >> shift` to the slice
  /// of interval starts to search: 16 for IPv4 (by /16), 0 for ports (direct).
  explicit IntervalIndex(int bucket_shift = -1) : shift_(bucket_shift) {}
  void add(K lo, K hi, std::uint32_t rule) { pending_.push_back({lo, hi, rule}); }
  bool empty() const { return pending_.empty() && ids_.empty(); }

  void build(bool allow_flat) {
    if (pending_.empty()) return;
    starts_.push_back(K{});
    for (auto& p : pending_) {
      starts_.push_back(p.lo);
      if (!is_max(p.hi)) starts_.push_back(succ(p.hi));
    }
    std::sort(starts_.begin(), starts_.end());
    starts_.erase(std::unique(starts_.begin(), starts_.end()), starts_.end());
    size_ = std::bit_ceil(starts_.size());
    std::vector<std::vector<std::uint32_t>> nodes(2 * size_);
    for (auto& p : pending_) {
      std::size_t a = static_cast<std::size_t>(std::lower_bound(starts_.begin(), starts_.end(), p.lo) - starts_.begin());
      std::size_t b = static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), p.hi) - starts_.begin()) - 1;
      for (std::size_t l = a + size_, r = b + size_ + 1; l < r; l >>= 1, r >>= 1) {
        if (l & 1) nodes[l++].push_back(p.rule);
        if (r & 1) nodes[--r].push_back(p.rule);
      }
    }
    // Flatten each leaf's root path into one contiguous list when that stays small (the usual
    // case: prefixes nest shallowly, port ranges overlap little). Heavily overlapping ranges would
    // make it quadratic; they keep the tree walk instead.
    std::size_t total = 0;
    for (std::size_t i = 0; i < starts_.size(); ++i)
      for (std::size_t n = i + size_; n >= 1; n >>= 1) total += nodes[n].size();
    flat_ = allow_flat && total <= std::max<std::size_t>(std::size_t{1} << 20, 8 * pending_.size());
    if (flat_) {
      offsets_.assign(starts_.size() + 1, 0);
      for (std::size_t i = 0; i < starts_.size(); ++i) {
        for (std::size_t n = i + size_; n >= 1; n >>= 1) ids_.insert(ids_.end(), nodes[n].begin(), nodes[n].end());
        offsets_[i + 1] = static_cast<std::uint32_t>(ids_.size());
      }
    } else {
      offsets_.assign(2 * size_ + 1, 0);
      for (std::size_t i = 0; i < nodes.size(); ++i) {
        offsets_[i + 1] = offsets_[i] + static_cast<std::uint32_t>(nodes[i].size());
        ids_.insert(ids_.end(), nodes[i].begin(), nodes[i].end());
      }
    }
    if constexpr (std::is_same_v<K, std::uint32_t>) {
      if (shift_ >= 0 && starts_.size() > 64) {
        bucket_.assign(65537, 0);
        std::size_t k = 0;
        for (std::uint32_t b = 0; b <= 65536; ++b) {
          while (k < starts_.size() && (starts_[k] >> shift_) < b) ++k;
          bucket_[b] = static_cast<std::uint32_t>(k);
        }
      }
    }
    pending_.clear();
    pending_.shrink_to_fit();
  }

  template <typename F>
  void query(K x, F&& f) const {
    if (starts_.empty()) return;
    auto first = starts_.begin(), last = starts_.end();
    if constexpr (std::is_same_v<K, std::uint32_t>) {
      if (!bucket_.empty()) {
        const std::uint32_t b = x >> shift_;
        first = starts_.begin() + bucket_[b];
        last = starts_.begin() + bucket_[b + 1];
      }
    }
    // starts_[0] is the smallest key, so there is always a start at or below x.
    std::size_t i = static_cast<std::size_t>(std::upper_bound(first, last, x) - starts_.begin()) - 1;
    if (flat_) {
      for (std::uint32_t k = offsets_[i]; k < offsets_[i + 1]; ++k) f(ids_[k]);
      return;
    }
    for (std::size_t n = i + size_; n >= 1; n >>= 1)
      for (std::uint32_t k = offsets_[n]; k < offsets_[n + 1]; ++k) f(ids_[k]);
  }

 private:
  struct Pending { K lo, hi; std::uint32_t rule; };
  std::vector<Pending> pending_;
  std::vector<K> starts_;
  int shift_ = -1;
  std::vector<std::uint32_t> bucket_;
  std::size_t size_ = 0;
  bool flat_ = false;  // offsets_ index leaves (flattened paths) instead of tree nodes
  std::vector<std::uint32_t> offsets_;
  std::vector<std::uint32_t> ids_;
};

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, std::vector<std::uint32_t>, StringHash, std::equal_to<>>;

/// Globs split by shape: literals and single-star prefix/suffix patterns are hash lookups; only
/// globs of any other shape are tried one by one.
class GlobIndex {
 public:
  void add(const std::string& pattern, std::uint32_t rule) {
    auto star = pattern.find('*');
    bool q = pattern.find('?') != std::string::npos;
    bool one_star = star != std::string::npos && pattern.find('*', star + 1) == std::string::npos;
    if (star == std::string::npos && !q) {
      exact_[pattern].push_back(rule);
    } else if (!q && one_star && star == pattern.size() - 1) {
      prefix_[pattern.substr(0, star)].push_back(rule);
      prefix_lens_.push_back(star);
    } else if (!q && one_star && star == 0) {
      suffix_[pattern.substr(1)].push_back(rule);
      suffix_lens_.push_back(pattern.size() - 1);
    } else {
      general_.push_back({pattern, rule});
    }
  }
  void build() {
    for (auto* v : {&prefix_lens_, &suffix_lens_}) {
      std::sort(v->begin(), v->end());
      v->erase(std::unique(v->begin(), v->end()), v->end());
    }
  }
  template <typename F>
  void query(std::string_view s, F&& f) const {
    auto emit = [&](const StringMap& m, std::string_view key) {
      if (auto it = m.find(key); it != m.end())
        for (auto r : it->second) f(r);
    };
    if (!exact_.empty()) emit(exact_, s);
    for (auto len : prefix_lens_) {
      if (len > s.size()) break;
      emit(prefix_, s.substr(0, len));
    }
    for (auto len : suffix_lens_) {
      if (len > s.size()) break;
      emit(suffix_, s.substr(s.size() - len));
    }
    for (auto& [p, r] : general_)
      if (glob_match(p, s)) f(r);
  }

 private:
  StringMap exact_, prefix_, suffix_;
  std::vector<std::size_t> prefix_lens_, suffix_lens_;
  std::vector<std::pair<std::string, std::uint32_t>> general_;
};

}  // namespace

bool matches_linear(const Rule& r, const FlowMeta& f) {
  if (r.proto == ProtoMatch::tcp && f.proto != relay::Proto::tcp) return false;
  if (r.proto == ProtoMatch::udp && f.proto != relay::Proto::udp) return false;
  if (!r.dst.empty()) {
    auto a = normalise(f.dst.address);
    if (std::none_of(r.dst.begin(), r.dst.end(), [&](const Cidr& c) { return c.contains(a); })) return false;
  }
  if (!r.ports.empty() &&
      std::none_of(r.ports.begin(), r.ports.end(),
                   [&](const PortRange& p) { return p.lo <= f.dst.port && f.dst.port <= p.hi; }))
    return false;
  if (!r.uids.empty()) {
    if (!f.app_identity.uid) return false;
    if (std::find(r.uids.begin(), r.uids.end(), *f.app_identity.uid) == r.uids.end()) return false;
  }
  if (!r.apps.empty()) {
    const auto& id = f.app_identity.signing_id;
    if (id.empty() || std::none_of(r.apps.begin(), r.apps.end(), [&](const std::string& p) { return glob_match(p, id); }))
      return false;
  }
  if (!r.hosts.empty()) {
    auto h = normalise_host(f.hostname);
    if (h.empty() || std::none_of(r.hosts.begin(), r.hosts.end(), [&](const std::string& p) { return glob_match(p, h); }))
      return false;
  }
  return true;
}

struct RuleSet::Index {
  std::size_t words = 0;
  std::vector<std::uint64_t> tcp, udp;  // rules that accept the protocol
  // One dimension: bits of rules that leave it unconstrained; `active` when any rule constrains it.
  struct Dim {
    std::vector<std::uint64_t> wildcard;
    bool active = false;
  };
  Dim dst, port, uid, app, host;
  // Lowest rule that every constrained dimension leaves open, per protocol: it matches any flow
  // of that protocol, so no lookup needs to look past it.
  std::optional<std::uint32_t> catch_all_tcp, catch_all_udp;
  IntervalIndex<std::uint32_t> v4{16}, ports{0};
  IntervalIndex<U128> v6;
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> uids;
  GlobIndex apps, hosts;
};

namespace {
void set_bit(std::vector<std::uint64_t>& b, std::uint32_t i) { b[i >> 6] |= std::uint64_t{1} << (i & 63); }
bool test_bit(const std::vector<std::uint64_t>& b, std::uint32_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
}  // namespace

RuleSet::RuleSet(const Config& config, MatcherOptions options)
    : rules_(config.rules), default_(config.default_verdict), options_(options), index_(std::make_unique<Index>()) {
  auto& x = *index_;
  const auto n = static_cast<std::uint32_t>(rules_.size());
  x.words = (n + 63) / 64;
  for (auto* v : {&x.tcp, &x.udp, &x.dst.wildcard, &x.port.wildcard, &x.uid.wildcard, &x.app.wildcard,
                  &x.host.wildcard})
    v->assign(x.words, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    const Rule& r = rules_[i];
    if (r.proto != ProtoMatch::udp) set_bit(x.tcp, i);
    if (r.proto != ProtoMatch::tcp) set_bit(x.udp, i);
    if (r.dst.empty()) set_bit(x.dst.wildcard, i);
    else x.dst.active = true;
    for (auto& c : r.dst) {
      if (c.network.is_v4()) {
        auto [lo, hi] = v4_range(c);
        x.v4.add(lo, hi, i);
      } else {
        auto [lo, hi] = v6_range(c);
        x.v6.add(lo, hi, i);
      }
    }
    if (r.ports.empty()) set_bit(x.port.wildcard, i);
    else x.port.active = true;
    for (auto& p : r.ports) x.ports.add(p.lo, p.hi, i);
    if (r.uids.empty()) set_bit(x.uid.wildcard, i);
    else x.uid.active = true;
    for (auto u : r.uids) x.uids[u].push_back(i);
    if (r.apps.empty()) set_bit(x.app.wildcard, i);
    else x.app.active = true;
    for (auto& a : r.apps) x.apps.add(a, i);
    if (r.hosts.empty()) set_bit(x.host.wildcard, i);
    else x.host.active = true;
    for (auto& h : r.hosts) x.hosts.add(h, i);
  }
  x.v4.build(options.flatten);
  x.v6.build(options.flatten);
  x.ports.build(options.flatten);
  x.apps.build();
  x.hosts.build();
  for (std::uint32_t i = 0; i < n; ++i) {
    bool open = true;
    for (const Index::Dim* d : {&x.dst, &x.port, &x.uid, &x.app, &x.host})
      open = open && (!d->active || test_bit(d->wildcard, i));
    if (!open) continue;
    if (!x.catch_all_tcp && test_bit(x.tcp, i)) x.catch_all_tcp = i;
    if (!x.catch_all_udp && test_bit(x.udp, i)) x.catch_all_udp = i;
  }
}

RuleSet::~RuleSet() = default;
RuleSet::RuleSet(RuleSet&&) noexcept = default;
RuleSet& RuleSet::operator=(RuleSet&&) noexcept = default;

namespace {

// Per-thread scratch for a lookup's index hits: rule -> bitmask of the dimensions that listed it.
// Open addressing over 256 slots, cleared by remembering the slots used; holds up to 128 rules,
// beyond which the lookup falls back to a sorted vector.
struct HitTable {
  static constexpr std::size_t kSlots = 256;
  static constexpr std::uint32_t kEmpty = ~0u;
  std::uint32_t key[kSlots];
  std::uint32_t mask[kSlots];
  std::uint16_t used[kSlots / 2];
  std::size_t n = 0;
  bool overflow = false;
  HitTable() { std::fill(std::begin(key), std::end(key), kEmpty); }
  void add(std::uint32_t rule, std::uint32_t dim) {
    std::size_t h = (rule * 2654435761u) >> 24;
    while (key[h] != kEmpty && key[h] != rule) h = (h + 1) & (kSlots - 1);
    if (key[h] == kEmpty) {
      if (n == kSlots / 2) {
        overflow = true;
        return;
      }
      key[h] = rule;
      mask[h] = 0;
      used[n++] = static_cast<std::uint16_t>(h);
    }
    mask[h] |= 1u << dim;
  }
  void clear() {
    for (std::size_t i = 0; i < n; ++i) key[used[i]] = kEmpty;
    n = 0;
    overflow = false;
  }
};

}  // namespace

std::optional<std::size_t> RuleSet::first_match(const FlowMeta& f) const {
  const auto& x = *index_;
  if (x.words == 0) return std::nullopt;
  // A rule matches iff it accepts the protocol and, in every dimension some rule constrains, it
  // is either unconstrained or listed by that dimension's index for this flow. The first rule
  // open in every dimension is precomputed (catch_all); any other match must be listed by an
  // index, so the candidates are the (few) index hits, each tested against the dimensions that
  // did not list it. Scratch is per thread: a warm lookup allocates nothing.
  enum : std::uint32_t { kDst, kPort, kUid, kApp, kHost };
  std::string host;
  if (x.host.active && !f.hostname.empty()) host = normalise_host(f.hostname);
  auto gather = [&](auto&& sink) {
    auto in = [&sink](std::uint32_t dim) { return [&sink, dim](std::uint32_t rule) { sink(rule, dim); }; };
    if (x.dst.active) {
      auto a = normalise(f.dst.address);
      if (a.is_v4()) x.v4.query(a.to_v4().to_uint(), in(kDst));
      else x.v6.query(to_u128(a.to_v6()), in(kDst));
    }
    if (x.port.active) x.ports.query(std::uint32_t{f.dst.port}, in(kPort));
    if (x.uid.active && f.app_identity.uid) {
      if (auto it = x.uids.find(*f.app_identity.uid); it != x.uids.end())
        for (auto r : it->second) sink(r, kUid);
    }
    if (x.app.active && !f.app_identity.signing_id.empty()) x.apps.query(f.app_identity.signing_id, in(kApp));
    if (!host.empty()) x.hosts.query(host, in(kHost));
  };

  const bool tcp = f.proto == relay::Proto::tcp;
  const auto& proto_bits = tcp ? x.tcp : x.udp;
  std::optional<std::uint32_t> best = tcp ? x.catch_all_tcp : x.catch_all_udp;
  const Index::Dim* dims[] = {&x.dst, &x.port, &x.uid, &x.app, &x.host};
  auto admits = [&](std::uint32_t rule, std::uint32_t listed) {
    if (!test_bit(proto_bits, rule)) return false;
    for (std::uint32_t d = 0; d < 5; ++d)
      if (dims[d]->active && !(listed >> d & 1) && !test_bit(dims[d]->wildcard, rule)) return false;
    return true;
  };

  thread_local HitTable table;
  table.clear();
  gather([](std::uint32_t rule, std::uint32_t dim) { table.add(rule, dim); });
  if (!options_.hit_table) table.overflow = true;
  if (!table.overflow) {
    for (std::size_t i = 0; i < table.n; ++i) {
      const auto slot = table.used[i];
      const std::uint32_t rule = table.key[slot];
      if ((!best || rule < *best) && admits(rule, table.mask[slot])) best = rule;
    }
  } else {  // many overlapping rules hit: sort them instead
    thread_local std::vector<std::pair<std::uint32_t, std::uint32_t>> hits;
    hits.clear();
    gather([](std::uint32_t rule, std::uint32_t dim) { hits.emplace_back(rule, dim); });
    std::sort(hits.begin(), hits.end());
    for (std::size_t i = 0; i < hits.size();) {
      const std::uint32_t rule = hits[i].first;
      if (best && rule >= *best) break;
      std::uint32_t listed = 0;
      for (; i < hits.size() && hits[i].first == rule; ++i) listed |= 1u << hits[i].second;
      if (admits(rule, listed)) {
        best = rule;
        break;
      }
    }
  }
  if (!best) return std::nullopt;
  return std::size_t{*best};
}

Verdict RuleSet::verdict(const FlowMeta& f) const {
  auto m = first_match(f);
  return m ? rules_[*m].verdict : default_;
}

Explanation RuleSet::explain(const FlowMeta& f) const {
  auto m = first_match(f);
  if (!m) return {default_, std::nullopt, "default"};
  return {rules_[*m].verdict, m, rules_[*m].name};
}

}  // namespace flowrelay::control
