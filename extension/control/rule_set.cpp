#include "extension/control/rule_set.hpp"

#include <algorithm>
#include <bit>
#include <compare>
#include <functional>
#include <string_view>
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

bool cidr_contains(const Cidr& c, const ip::address& a) {
  if (c.network.is_v4() != a.is_v4()) return false;
  if (a.is_v4()) {
    auto [lo, hi] = v4_range(c);
    auto x = a.to_v4().to_uint();
    return lo <= x && x <= hi;
  }
  auto [lo, hi] = v6_range(c);
  auto x = to_u128(a.to_v6());
  return lo <= x && x <= hi;
}

std::string normalise_host(std::string_view h) {
  std::string s(h);
  if (!s.empty() && s.back() == '.') s.pop_back();
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

/// Segment tree over the elementary intervals cut by every range's endpoints. Each range is stored
/// at O(log n) canonical nodes; a point query walks leaf -> root and visits every range holding it.
template <typename K>
class IntervalIndex {
 public:
  void add(K lo, K hi, std::uint32_t rule) { pending_.push_back({lo, hi, rule}); }
  bool empty() const { return pending_.empty() && ids_.empty(); }

  void build() {
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
    offsets_.assign(2 * size_ + 1, 0);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      offsets_[i + 1] = offsets_[i] + static_cast<std::uint32_t>(nodes[i].size());
      ids_.insert(ids_.end(), nodes[i].begin(), nodes[i].end());
    }
    pending_.clear();
    pending_.shrink_to_fit();
  }

  template <typename F>
  void query(K x, F&& f) const {
    if (starts_.empty()) return;
    std::size_t i = static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), x) - starts_.begin()) - 1;
    for (std::size_t n = i + size_; n >= 1; n >>= 1)
      for (std::uint32_t k = offsets_[n]; k < offsets_[n + 1]; ++k) f(ids_[k]);
  }

 private:
  struct Pending { K lo, hi; std::uint32_t rule; };
  std::vector<Pending> pending_;
  std::vector<K> starts_;
  std::size_t size_ = 0;
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
    if (std::none_of(r.dst.begin(), r.dst.end(), [&](const Cidr& c) { return cidr_contains(c, a); })) return false;
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
  IntervalIndex<std::uint32_t> v4, ports;
  IntervalIndex<U128> v6;
  std::unordered_map<std::uint32_t, std::vector<std::uint32_t>> uids;
  GlobIndex apps, hosts;
};

namespace {
void set_bit(std::vector<std::uint64_t>& b, std::uint32_t i) { b[i >> 6] |= std::uint64_t{1} << (i & 63); }
}  // namespace

RuleSet::RuleSet(const Config& config)
    : rules_(config.rules), default_(config.default_verdict), index_(std::make_unique<Index>()) {
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
  x.v4.build();
  x.v6.build();
  x.ports.build();
  x.apps.build();
  x.hosts.build();
}

RuleSet::~RuleSet() = default;
RuleSet::RuleSet(RuleSet&&) noexcept = default;
RuleSet& RuleSet::operator=(RuleSet&&) noexcept = default;

std::optional<std::size_t> RuleSet::first_match(const FlowMeta& f) const {
  const auto& x = *index_;
  if (x.words == 0) return std::nullopt;
  // Scratch bitsets per thread: a lookup allocates nothing once warm.
  thread_local std::vector<std::uint64_t> acc, tmp;
  const auto& proto_bits = f.proto == relay::Proto::tcp ? x.tcp : x.udp;
  acc.assign(proto_bits.begin(), proto_bits.end());
  tmp.resize(x.words);

  auto narrow = [&](const Index::Dim& d, auto&& fill) {
    if (!d.active) return;
    std::copy(d.wildcard.begin(), d.wildcard.end(), tmp.begin());
    fill([&](std::uint32_t rule) { set_bit(tmp, rule); });
    for (std::size_t w = 0; w < x.words; ++w) acc[w] &= tmp[w];
  };

  narrow(x.dst, [&](auto&& add) {
    auto a = normalise(f.dst.address);
    if (a.is_v4()) x.v4.query(a.to_v4().to_uint(), add);
    else x.v6.query(to_u128(a.to_v6()), add);
  });
  narrow(x.port, [&](auto&& add) { x.ports.query(std::uint32_t{f.dst.port}, add); });
  narrow(x.uid, [&](auto&& add) {
    if (!f.app_identity.uid) return;
    if (auto it = x.uids.find(*f.app_identity.uid); it != x.uids.end())
      for (auto r : it->second) add(r);
  });
  narrow(x.app, [&](auto&& add) {
    if (!f.app_identity.signing_id.empty()) x.apps.query(f.app_identity.signing_id, add);
  });
  narrow(x.host, [&](auto&& add) {
    if (f.hostname.empty()) return;
    auto h = normalise_host(f.hostname);
    if (!h.empty()) x.hosts.query(h, add);
  });

  for (std::size_t w = 0; w < x.words; ++w)
    if (acc[w]) return w * 64 + static_cast<std::size_t>(std::countr_zero(acc[w]));
  return std::nullopt;
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
