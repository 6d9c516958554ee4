#include "extension/control/config.hpp"

#include <boost/json/parse_options.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/stream_parser.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <tuple>
#include <utility>
#include <unordered_map>

namespace flowrelay::control {

namespace json = boost::json;
namespace ip = boost::asio::ip;

const char* to_string(Verdict v) { return v == Verdict::claim ? "claim" : "bypass"; }
const char* to_string(ProtoMatch p) {
  switch (p) {
    case ProtoMatch::tcp: return "tcp";
    case ProtoMatch::udp: return "udp";
    case ProtoMatch::any: return "any";
  }
  return "any";
}
const char* to_string(ReclaimPolicy p) {
  switch (p) {
    case ReclaimPolicy::restart: return "restart";
    case ReclaimPolicy::keep: return "keep";
    case ReclaimPolicy::surgical: return "surgical";
  }
  return "surgical";
}

const Upstream* Config::upstream(std::string_view name) const {
  for (const auto& u : upstreams)
    if (u.name == name) return &u;
  return nullptr;
}

std::string Cidr::to_string() const { return network.to_string() + "/" + std::to_string(prefix); }

bool Cidr::contains(const boost::asio::ip::address& a) const {
  if (network.is_v4() != a.is_v4()) return false;
  auto compare = [this](const auto& net, const auto& addr) {
    int bits = prefix;
    for (std::size_t i = 0; i < net.size() && bits > 0; ++i, bits -= 8) {
      const unsigned mask = bits >= 8 ? 0xFFu : (0xFFu << (8 - bits)) & 0xFFu;
      if ((net[i] & mask) != (addr[i] & mask)) return false;
    }
    return true;
  };
  if (a.is_v4()) return compare(network.to_v4().to_bytes(), a.to_v4().to_bytes());
  return compare(network.to_v6().to_bytes(), a.to_v6().to_bytes());
}

ConfigError::ConfigError(std::string path, std::string message)
    : std::runtime_error((path.empty() ? std::string("config") : path) + ": " + message),
      path_(std::move(path)),
      message_(std::move(message)) {}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the table (the transposition looks two back): memory O(|b|), not O(|a| * |b|).
  const std::size_t m = b.size();
  std::vector<std::size_t> rows(3 * (m + 1));
  std::size_t *before = rows.data(), *prev = before + (m + 1), *cur = prev + (m + 1);
  for (std::size_t j = 0; j <= m; ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= m; ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) cur[j] = std::min(cur[j], before[j - 2] + 1);
    }
    std::swap(before, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

namespace {

/// `s` whole up to `max` bytes; beyond, its first `head` and last `tail` bytes (never half a UTF-8
/// sequence) around its length: text from the file in an error must not make an attacker-sized
/// message.
std::string clipped(std::string_view s, std::size_t max, std::size_t head, std::size_t tail = 0) {
  if (s.size() <= max) return std::string(s);
  auto continuation = [&](std::size_t i) { return (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80; };
  std::size_t cut = head, from = s.size() - tail;
  while (cut > 0 && continuation(cut)) --cut;
  while (from < s.size() && continuation(from)) ++from;
  std::string out(s.substr(0, cut));
  out.append("...(").append(std::to_string(s.size())).append(" bytes)...").append(s.substr(from));
  return out;
}

/// Messages quote values from the file ("\"x\" is not one of ..."): bounded here, in one place,
/// keeping the end that says what was wrong.
[[noreturn]] void fail(std::string path, std::string message) {
  constexpr std::size_t kMaxMessage = 400;
  if (message.size() <= kMaxMessage) throw ConfigError(std::move(path), std::move(message));
  throw ConfigError(std::move(path), clipped(message, kMaxMessage, 160, 160));
}

/// A key in an error path: whole up to 64 bytes, else its start and its length.
std::string key_path(const std::string& path, std::string_view key) {
  if (path.empty()) return clipped(key, 64, 40);
  std::string out = path;
  out.append(".").append(clipped(key, 64, 40));
  return out;
}
std::string index_path(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}

std::string describe(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return v.get_bool() ? "true" : "false";
    case json::kind::string: return "string " + json::serialize(v);
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
    default: return "number " + json::serialize(v);
  }
}

// ---- UTF-8 and JSON syntax, with line and column ------------------------------------------------

// Returns the offset of the first byte that is not well-formed UTF-8 (overlongs, surrogates and
// code points above U+10FFFF included), or npos.
std::size_t find_invalid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned c = p[i];
    if (c < 0x80) { ++i; continue; }
    std::size_t len;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) { len = 3; lo = 0xA0; }
    else if (c == 0xED) { len = 3; hi = 0x9F; }
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) { len = 4; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else if (c == 0xF4) { len = 4; hi = 0x8F; }
    else return i;
    if (i + len > s.size()) return i;
    if (p[i + 1] < lo || p[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string line_column(std::string_view s, std::size_t offset) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < offset && i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\n') { ++line; col = 1; }
    else if ((c & 0xC0) != 0x80) ++col;  // count code points, not continuation bytes
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

// Boost.JSON keeps the last of duplicate keys silently; a config where a second "rules" hides the
// first must be an error. Runs on text that already parsed, so the scan can be simple: strings,
// containers and commas; keys compare as written (escapes not decoded).
void reject_duplicate_keys(std::string_view text) {
  struct Frame {
    bool object = false;
    bool expect_key = true;
    std::size_t index = 0;
    std::string key;
    std::set<std::string, std::less<>> keys;
  };
  std::vector<Frame> stack;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      std::size_t start = ++i;
      while (i < text.size() && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
      if (stack.empty() || !stack.back().object || !stack.back().expect_key) continue;
      Frame& f = stack.back();
      f.expect_key = false;
      f.key.assign(text.substr(start, i - start));
      if (!f.keys.insert(f.key).second) {
        std::string path;
        for (std::size_t k = 0; k + 1 < stack.size(); ++k) {
          if (stack[k].object) path = key_path(path, stack[k].key);
          else path = index_path(path, stack[k].index);
        }
        fail(key_path(path, f.key), "duplicate key (the later value would silently replace the earlier)");
      }
    } else if (c == '{' || c == '[') {
      stack.emplace_back().object = c == '{';
    } else if (c == '}' || c == ']') {
      if (!stack.empty()) stack.pop_back();
    } else if (c == ',' && !stack.empty()) {
      if (stack.back().object) stack.back().expect_key = true;
      else ++stack.back().index;
    }
  }
}

json::value parse_json(std::string_view text) {
  if (auto bad = find_invalid_utf8(text); bad != std::string_view::npos)
    fail(line_column(text, bad), "not UTF-8 (byte 0x" + [&] {
      static const char* hex = "0123456789abcdef";
      unsigned char c = static_cast<unsigned char>(text[bad]);
      return std::string{hex[c >> 4], hex[c & 15]};
    }() + ")");
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 BOM
  json::parse_options opt;  // strict: no comments, no trailing commas
  opt.max_depth = 16;
  json::stream_parser p({}, opt);
  boost::system::error_code ec;
  std::size_t n = p.write(text.data(), text.size(), ec);
  if (!ec) {
    p.finish(ec);
    n = text.size();
  }
  if (ec) {
    if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) fail("", "empty file, not JSON");
    fail(line_column(text, n), "not JSON (" + ec.message() + ")");
  }
  reject_duplicate_keys(text);
  return p.release();
}

// ---- typed getters --------------------------------------------------------------------------------

const json::object& as_object(const json::value& v, const std::string& path) {
  if (!v.is_object()) fail(path, "must be an object, got " + describe(v));
  return v.get_object();
}

const json::array& as_nonempty_array(const json::value& v, const std::string& path,
                                     std::string_view omit_hint) {
  if (!v.is_array()) fail(path, "must be an array, got " + describe(v));
  if (v.get_array().empty()) fail(path, "empty list (" + std::string(omit_hint) + ")");
  return v.get_array();
}

std::string_view as_string(const json::value& v, const std::string& path) {
  if (!v.is_string()) fail(path, "must be a string, got " + describe(v));
  return v.get_string();
}

std::int64_t as_integer(const json::value& v, const std::string& path) {
  if (v.is_int64()) return v.get_int64();
  if (v.is_uint64()) {
    if (v.get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      fail(path, std::to_string(v.get_uint64()) + " is too large");
    return static_cast<std::int64_t>(v.get_uint64());
  }
  fail(path, "must be an integer, got " + describe(v));
}

std::int64_t as_ranged(const json::value& v, const std::string& path, std::int64_t lo, std::int64_t hi) {
  std::int64_t x = as_integer(v, path);
  if (x < 0 && lo >= 0) fail(path, std::to_string(x) + " must not be negative");
  if (x < lo) fail(path, std::to_string(x) + " is too small (at least " + std::to_string(lo) + ")");
  if (x > hi) fail(path, std::to_string(x) + " is too large (at most " + std::to_string(hi) + ")");
  return x;
}

template <typename E>
E as_enum(const json::value& v, const std::string& path,
          std::initializer_list<std::pair<std::string_view, E>> choices) {
  auto s = as_string(v, path);
  std::string names;
  for (auto& [name, e] : choices) {
    if (s == name) return e;
    names += names.empty() ? "" : "|";
    names += name;
  }
  fail(path, "\"" + std::string(s) + "\" is not one of " + names);
}

void check_keys(const json::object& o, const std::string& path,
                std::initializer_list<std::string_view> allowed) {
  for (auto& kv : o) {
    std::string_view key = kv.key();
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string_view best;
    std::size_t best_d = 3;
    for (auto a : allowed) {
      // The distance is at least the difference in length: a key longer than `a` by best_d or more
      // cannot be suggested `a`, so an attacker-sized key costs no table at all.
      if (key.size() >= a.size() + best_d) continue;
      std::size_t d = edit_distance(key, a);
      // A missing unit suffix ("drain" for "drain_ms") counts as close, too.
      if (key.size() >= 4 && a.starts_with(key)) d = std::min<std::size_t>(d, 2);
      if (d < best_d && d * 2 < std::max(a.size(), std::size_t{2})) { best_d = d; best = a; }
    }
    std::string msg = "unknown key";
    if (!best.empty()) {
      msg += "; did you mean \"" + std::string(best) + "\"?";
    } else {
      msg += " (expected one of:";
      for (auto a : allowed) msg += " " + std::string(a);
      msg += ")";
    }
    fail(key_path(path, key), msg);
  }
}

// ---- field parsers ------------------------------------------------------------------------------

std::uint16_t parse_port_number(std::string_view digits, const std::string& path, const std::string& shown) {
  std::int64_t x = 0;
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), x);
  if (digits.empty() || ec != std::errc() || ptr != digits.data() + digits.size())
    fail(path, shown + " is not a port or a range \"lo-hi\"");
  if (x < 1 || x > 65535) fail(path, std::to_string(x) + " is not a port (1-65535)");
  return static_cast<std::uint16_t>(x);
}

/// "ADDRESS:PORT", an IPv6 address in brackets.
std::pair<ip::address, std::uint16_t> parse_address_port(std::string_view text, const std::string& path) {
  const std::string s(text);
  auto colon = s.rfind(':');
  if (colon == std::string::npos) fail(path, "\"" + s + "\" is not ADDRESS:PORT");
  std::string host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  else if (host.find(':') != std::string::npos)
    fail(path, "\"" + s + "\": write an IPv6 address in brackets, [::1]:9464");
  boost::system::error_code ec;
  const auto address = ip::make_address(host, ec);
  if (ec) fail(path, "\"" + s + "\" is not ADDRESS:PORT");
  return {address, parse_port_number(std::string_view(s).substr(colon + 1), path, "\"" + s + "\"")};
}

PortRange parse_port(const json::value& v, const std::string& path) {
  if (v.is_int64() || v.is_uint64()) {
    std::int64_t x = as_integer(v, path);
    if (x < 1 || x > 65535) fail(path, std::to_string(x) + " is not a port (1-65535)");
    return {static_cast<std::uint16_t>(x), static_cast<std::uint16_t>(x)};
  }
  if (!v.is_string()) fail(path, "must be a port number or a range \"lo-hi\", got " + describe(v));
  std::string_view s = v.get_string();
  std::string shown = "\"" + std::string(s) + "\"";
  auto dash = s.find('-');
  if (dash == std::string_view::npos) {
    auto p = parse_port_number(s, path, shown);
    return {p, p};
  }
  auto lo = parse_port_number(s.substr(0, dash), path, shown);
  auto hi = parse_port_number(s.substr(dash + 1), path, shown);
  if (lo > hi) fail(path, shown + " is inverted (low port above high port)");
  return {lo, hi};
}

Cidr parse_cidr(std::string_view s, const std::string& path) {
  std::string shown = "\"" + std::string(s) + "\"";
  auto slash = s.find('/');
  std::string addr_text(s.substr(0, slash));
  boost::system::error_code ec;
  auto addr = ip::make_address(addr_text, ec);
  if (ec) fail(path, shown + " is not an IP address or prefix");
  if (addr.is_v6() && addr.to_v6().scope_id() != 0) fail(path, shown + ": a scope id has no place in a prefix");
  const int max_len = addr.is_v4() ? 32 : 128;
  int len = max_len;
  if (slash != std::string_view::npos) {
    auto digits = s.substr(slash + 1);
    auto [ptr, pec] = std::from_chars(digits.data(), digits.data() + digits.size(), len);
    if (digits.empty() || pec != std::errc() || ptr != digits.data() + digits.size() || len < 0)
      fail(path, shown + " has a bad prefix length");
    if (len > max_len)
      fail(path, shown + ": prefix /" + std::to_string(len) + " is too long for " +
                     (addr.is_v4() ? "IPv4 (at most /32)" : "IPv6 (at most /128)"));
  }
  // Zero the host bits and compare: a set host bit is an error that names the network it meant.
  ip::address net;
  if (addr.is_v4()) {
    std::uint32_t a = addr.to_v4().to_uint();
    std::uint32_t mask = len == 0 ? 0 : ~std::uint32_t{0} << (32 - len);
    net = ip::address_v4(a & mask);
  } else {
    auto b = addr.to_v6().to_bytes();
    for (int i = 0; i < 16; ++i) {
      int bits = std::clamp(len - i * 8, 0, 8);
      b[i] &= static_cast<unsigned char>(bits == 0 ? 0 : 0xFF << (8 - bits));
    }
    net = ip::address_v6(b);
  }
  std::string meant = net.to_string() + "/" + std::to_string(len);
  if (net != addr) fail(path, shown + " has host bits set; did you mean \"" + meant + "\"?");
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    // Flows to v4-mapped destinations are matched as IPv4, so such a prefix would never match.
    if (len >= 96) {
      auto v4 = ip::make_address_v4(ip::v4_mapped, addr.to_v6());
      fail(path, shown + " is a v4-mapped IPv6 prefix; write \"" + v4.to_string() + "/" +
                     std::to_string(len - 96) + "\"");
    }
  }
  return {net, static_cast<std::uint8_t>(len)};
}

bool valid_app_pattern(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7F) return false;
  return true;
}

bool valid_host_pattern(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_' || c == '*' || c == '?';
    if (!ok) return false;
  }
  return s.find("..") == std::string_view::npos;
}

void require_platform(bool supported, const std::string& path, const PlatformCaps& platform) {
  if (!supported) fail(path, "not supported on " + std::string(platform.name));
}

Rule parse_rule(const json::value& v, const std::string& path, std::size_t index,
                const PlatformCaps& platform) {
  const auto& o = as_object(v, path);
  check_keys(o, path, {"name", "verdict", "proto", "dst", "ports", "uids", "apps", "hosts", "via"});
  Rule r;
  if (auto* n = o.if_contains("name")) {
    auto s = as_string(*n, key_path(path, "name"));
    if (s.empty()) fail(key_path(path, "name"), "must not be empty");
    if (s.size() > 64) fail(key_path(path, "name"), "longer than 64 characters");
    for (unsigned char c : s)
      if (c < 0x20 || c == 0x7F) fail(key_path(path, "name"), "contains a control character");
    r.name = s;
  } else {
    r.name = "rules[" + std::to_string(index) + "]";
  }
  auto* verdict = o.if_contains("verdict");
  if (!verdict) fail(key_path(path, "verdict"), "missing (claim|bypass)");
  r.verdict = as_enum<Verdict>(*verdict, key_path(path, "verdict"),
                               {{"claim", Verdict::claim}, {"bypass", Verdict::bypass}});
  if (auto* p = o.if_contains("proto"))
    r.proto = as_enum<ProtoMatch>(*p, key_path(path, "proto"),
                                  {{"tcp", ProtoMatch::tcp}, {"udp", ProtoMatch::udp}, {"any", ProtoMatch::any}});
  if (auto* d = o.if_contains("dst")) {
    auto dpath = key_path(path, "dst");
    const auto& a = as_nonempty_array(*d, dpath, "omit \"dst\" to match any destination");
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ep = index_path(dpath, i);
      Cidr c = parse_cidr(as_string(a[i], ep), ep);
      for (std::size_t j = 0; j < r.dst.size(); ++j)
        if (r.dst[j] == c) fail(ep, "duplicate of dst[" + std::to_string(j) + "]");
      r.dst.push_back(c);
    }
  }
  if (auto* p = o.if_contains("ports")) {
    auto ppath = key_path(path, "ports");
    const auto& a = as_nonempty_array(*p, ppath, "omit \"ports\" to match any port");
    for (std::size_t i = 0; i < a.size(); ++i) r.ports.push_back(parse_port(a[i], index_path(ppath, i)));
  }
  if (auto* u = o.if_contains("uids")) {
    auto upath = key_path(path, "uids");
    require_platform(platform.uids, upath, platform);
    const auto& a = as_nonempty_array(*u, upath, "omit \"uids\" to match any user");
    for (std::size_t i = 0; i < a.size(); ++i)
      r.uids.push_back(static_cast<std::uint32_t>(as_ranged(a[i], index_path(upath, i), 0, 4294967294LL)));
  }
  if (auto* ap = o.if_contains("apps")) {
    auto apath = key_path(path, "apps");
    require_platform(platform.apps, apath, platform);
    const auto& a = as_nonempty_array(*ap, apath, "omit \"apps\" to match any app");
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ep = index_path(apath, i);
      auto s = as_string(a[i], ep);
      if (!valid_app_pattern(s)) fail(ep, "\"" + std::string(s) + "\" is not a signing identifier pattern");
      r.apps.emplace_back(s);
    }
  }
  if (auto* h = o.if_contains("hosts")) {
    auto hpath = key_path(path, "hosts");
    require_platform(platform.hosts, hpath, platform);
    const auto& a = as_nonempty_array(*h, hpath, "omit \"hosts\" to match any host");
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ep = index_path(hpath, i);
      auto s = as_string(a[i], ep);
      if (!valid_host_pattern(s)) fail(ep, "\"" + std::string(s) + "\" is not a hostname pattern");
      std::string lower(s);
      if (lower.size() > 1 && lower.back() == '.') lower.pop_back();  // flows' names lose it too
      for (auto& c : lower) if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');  // ASCII, locale-free
      r.hosts.push_back(std::move(lower));
    }
  }
  if (auto* v = o.if_contains("via")) {
    const auto vpath = key_path(path, "via");
    require_platform(platform.upstreams, vpath, platform);
    r.via = as_string(*v, vpath);
    if (r.via.empty()) fail(vpath, "must name an upstream (omit \"via\" to go direct)");
  }
  return r;
}

// `rules[i].via` names an upstream that can carry what the rule claims.
void check_via(const Rule& r, const std::string& path, const Config& cfg) {
  if (r.via.empty()) return;
  const auto vpath = key_path(path, "via");
  const Upstream* up = cfg.upstream(r.via);
  if (!up) {
    std::string msg = "no upstream named \"" + r.via + "\"";
    std::string_view best;
    std::size_t best_d = 3;
    for (const auto& u : cfg.upstreams)
      if (const auto d = edit_distance(r.via, u.name); d < best_d && d * 2 < std::max<std::size_t>(u.name.size(), 2))
        best_d = d, best = u.name;
    if (!best.empty()) msg += "; did you mean \"" + std::string(best) + "\"?";
    else if (cfg.upstreams.empty()) msg += " (the config has no \"upstreams\")";
    fail(vpath, msg);
  }
  if (r.verdict != Verdict::claim) fail(vpath, "only a claim rule sends flows through an upstream");
  if (r.proto != ProtoMatch::tcp)
    fail(vpath, up->kind == Upstream::Kind::http
                    ? "upstream \"" + up->name + "\" is an HTTP CONNECT proxy, which carries TCP only: set \"proto\": \"tcp\""
                    : "UDP through an upstream (SOCKS5 UDP ASSOCIATE) is not supported yet: set \"proto\": \"tcp\"");
}

bool valid_upstream_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

std::vector<Upstream> parse_upstreams(const json::value& v) {
  std::vector<Upstream> out;
  for (const auto& kv : as_object(v, "upstreams")) {
    const auto path = key_path("upstreams", kv.key());
    if (!valid_upstream_name(kv.key()))
      fail(path, "an upstream's name is 1 to 64 letters, digits, '-', '_' or '.'");
    const auto& o = as_object(kv.value(), path);
    check_keys(o, path, {"type", "address", "username", "password_file"});
    Upstream u;
    u.name = kv.key();
    auto* type = o.if_contains("type");
    if (!type) fail(key_path(path, "type"), "missing (socks5|http)");
    u.kind = as_enum<Upstream::Kind>(*type, key_path(path, "type"),
                                     {{"socks5", Upstream::Kind::socks5}, {"http", Upstream::Kind::http}});
    auto* address = o.if_contains("address");
    if (!address) fail(key_path(path, "address"), "missing (ADDRESS:PORT)");
    std::tie(u.address, u.port) = parse_address_port(as_string(*address, key_path(path, "address")), key_path(path, "address"));
    if (auto* x = o.if_contains("username")) {
      u.username = as_string(*x, key_path(path, "username"));
      if (u.username.empty() || u.username.size() > 255) fail(key_path(path, "username"), "1 to 255 bytes");
    }
    if (auto* x = o.if_contains("password_file")) {
      u.password_file = as_string(*x, key_path(path, "password_file"));
      if (u.password_file.empty() || u.password_file.front() != '/')
        fail(key_path(path, "password_file"), "must be an absolute path");
    }
    if (!u.username.empty() && u.password_file.empty())
      fail(key_path(path, "password_file"), "missing: a username needs its password, read from a file (never written in the config)");
    if (u.username.empty() && !u.password_file.empty())
      fail(key_path(path, "username"), "missing: password_file is given without a username");
    out.push_back(std::move(u));
  }
  return out;
}

// An interface name as the kernel accepts it (dev_valid_name), minus what nft would read as a
// wildcard or a quote.
bool valid_interface_name(std::string_view s) {
  if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c == 0x7F || c == '/' || c == ':' || c == '"' || c == '\\' || c == '*') return false;
  return true;
}

GatewaySettings parse_gateway(const json::value& v, const std::string& path) {
  const auto& o = as_object(v, path);
  check_keys(o, path, {"interfaces", "sources"});
  GatewaySettings g;
  if (auto* x = o.if_contains("interfaces")) {
    auto ipath = key_path(path, "interfaces");
    const auto& a = as_nonempty_array(*x, ipath, "omit \"interfaces\" to allow any interface");
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ep = index_path(ipath, i);
      auto s = as_string(a[i], ep);
      if (s.empty()) fail(ep, "empty interface name");
      if (!valid_interface_name(s))
        fail(ep, "\"" + std::string(s) + "\" is not an interface name (at most 15 characters, no spaces, / : \" \\ *)");
      for (std::size_t j = 0; j < g.interfaces.size(); ++j)
        if (g.interfaces[j] == s) fail(ep, "duplicate of interfaces[" + std::to_string(j) + "]");
      g.interfaces.emplace_back(s);
    }
  }
  if (auto* x = o.if_contains("sources")) {
    auto spath = key_path(path, "sources");
    const auto& a = as_nonempty_array(*x, spath, "omit \"sources\" to allow any source");
    for (std::size_t i = 0; i < a.size(); ++i) {
      auto ep = index_path(spath, i);
      Cidr c = parse_cidr(as_string(a[i], ep), ep);
      for (std::size_t j = 0; j < g.sources.size(); ++j)
        if (g.sources[j] == c) fail(ep, "duplicate of sources[" + std::to_string(j) + "]");
      g.sources.push_back(c);
    }
  }
  if (!g.enabled())
    fail(path, "names no interface and no source network; omit \"gateway\" to claim only this host's own flows");
  return g;
}

std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) { h ^= c; h *= 0x100000001b3ULL; }
  return h;
}

}  // namespace

Config parse_config(std::string_view text, const PlatformCaps& platform) {
  json::value doc = parse_json(text);
  Config cfg;
  cfg.limits.max_flows = platform.default_max_flows;
  const auto& root = as_object(doc, "");
  check_keys(root, "", {"default", "rules", "upstreams", "reclaim", "limits", "linux", "apple", "control", "metrics"});
  if (auto* u = root.if_contains("upstreams")) {
    require_platform(platform.upstreams, "upstreams", platform);
    cfg.upstreams = parse_upstreams(*u);
  }

  if (auto* d = root.if_contains("default"))
    cfg.default_verdict = as_enum<Verdict>(*d, "default", {{"claim", Verdict::claim}, {"bypass", Verdict::bypass}});

  auto* rules = root.if_contains("rules");
  if (!rules) fail("rules", "missing (a list of rules; [] for none)");
  if (!rules->is_array()) fail("rules", "must be an array, got " + describe(*rules));
  std::unordered_map<std::string, std::size_t> names;
  for (std::size_t i = 0; i < rules->get_array().size(); ++i) {
    auto path = index_path("rules", i);
    Rule r = parse_rule(rules->get_array()[i], path, i, platform);
    check_via(r, path, cfg);
    auto [it, fresh] = names.emplace(r.name, i);
    if (!fresh)
      fail(key_path(path, "name"), "duplicate rule name \"" + r.name + "\" (first used by rules[" +
                                       std::to_string(it->second) + "])");
    cfg.rules.push_back(std::move(r));
  }

  if (auto* v = root.if_contains("reclaim")) {
    const auto& o = as_object(*v, "reclaim");
    check_keys(o, "reclaim", {"policy", "debounce_ms", "drain_ms", "min_restart_interval_ms"});
    auto& s = cfg.reclaim;
    if (auto* x = o.if_contains("policy"))
      s.policy = as_enum<ReclaimPolicy>(*x, "reclaim.policy",
                                        {{"surgical", ReclaimPolicy::surgical},
                                         {"restart", ReclaimPolicy::restart},
                                         {"keep", ReclaimPolicy::keep}});
    if (auto* x = o.if_contains("debounce_ms"))
      s.debounce = std::chrono::milliseconds(as_ranged(*x, "reclaim.debounce_ms", 0, 60'000));
    if (auto* x = o.if_contains("drain_ms"))
      s.drain = std::chrono::milliseconds(as_ranged(*x, "reclaim.drain_ms", 0, 600'000));
    if (auto* x = o.if_contains("min_restart_interval_ms"))
      s.min_restart_interval =
          std::chrono::milliseconds(as_ranged(*x, "reclaim.min_restart_interval_ms", 0, 86'400'000));
  }

  if (auto* v = root.if_contains("limits")) {
    const auto& o = as_object(*v, "limits");
    check_keys(o, "limits", {"connect_timeout_ms", "tcp_idle_timeout_s", "udp_idle_timeout_s",
                             "flow_buffer_bytes", "max_flows", "max_udp_flows", "max_buffer_bytes"});
    auto& l = cfg.limits;
    if (auto* x = o.if_contains("connect_timeout_ms"))
      l.connect_timeout = std::chrono::milliseconds(as_ranged(*x, "limits.connect_timeout_ms", 1, 600'000));
    if (auto* x = o.if_contains("tcp_idle_timeout_s"))
      l.tcp_idle_timeout = std::chrono::seconds(as_ranged(*x, "limits.tcp_idle_timeout_s", 1, 604'800));
    if (auto* x = o.if_contains("udp_idle_timeout_s"))
      l.udp_idle_timeout = std::chrono::seconds(as_ranged(*x, "limits.udp_idle_timeout_s", 1, 86'400));
    if (auto* x = o.if_contains("flow_buffer_bytes"))
      l.flow_buffer_bytes = static_cast<std::uint64_t>(as_ranged(*x, "limits.flow_buffer_bytes", 4096, 64LL << 20));
    if (auto* x = o.if_contains("max_flows"))
      l.max_flows = static_cast<std::uint64_t>(as_ranged(*x, "limits.max_flows", 1, 10'000'000));
    if (auto* x = o.if_contains("max_udp_flows"))
      l.max_udp_flows = static_cast<std::uint64_t>(as_ranged(*x, "limits.max_udp_flows", 1, 10'000'000));
    if (auto* x = o.if_contains("max_buffer_bytes"))
      l.max_buffer_bytes = static_cast<std::uint64_t>(as_ranged(*x, "limits.max_buffer_bytes", 4LL << 20, 1LL << 40));
  }

  if (auto* v = root.if_contains("linux")) {
    const auto& o = as_object(*v, "linux");
    check_keys(o, "linux", {"tproxy_port", "fwmark", "route_table", "bypass_mark", "run_as", "gateway"});
    auto& l = cfg.linux_settings;
    if (auto* x = o.if_contains("tproxy_port")) {
      auto port = as_integer(*x, "linux.tproxy_port");
      if (port < 1 || port > 65535) fail("linux.tproxy_port", std::to_string(port) + " is not a port (1-65535)");
      l.tproxy_port = static_cast<std::uint16_t>(port);
    }
    if (auto* x = o.if_contains("fwmark"))
      l.fwmark = static_cast<std::uint32_t>(as_ranged(*x, "linux.fwmark", 1, 0xFFFFFFFFLL));
    if (auto* x = o.if_contains("route_table")) {
      auto t = as_ranged(*x, "linux.route_table", 1, 0xFFFFFFFFLL);
      if (t >= 253 && t <= 255)
        fail("linux.route_table", std::to_string(t) + " is a reserved table (" +
                                      (t == 253 ? "default" : t == 254 ? "main" : "local") + ")");
      l.route_table = static_cast<std::uint32_t>(t);
    }
    if (auto* x = o.if_contains("bypass_mark"))
      l.bypass_mark = static_cast<std::uint32_t>(as_ranged(*x, "linux.bypass_mark", 1, 0xFFFFFFFFLL));
    if (auto* x = o.if_contains("run_as")) {
      l.run_as = as_string(*x, "linux.run_as");
      const bool name_ok = !l.run_as.empty() && l.run_as.size() <= 32 && l.run_as.front() != '-' &&
                           std::all_of(l.run_as.begin(), l.run_as.end(), [](char c) {
                             return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
                           });
      if (!name_ok) fail("linux.run_as", "\"" + l.run_as + "\" is not a user name (letters, digits, _ - ., at most 32)");
    }
    if (auto* x = o.if_contains("gateway")) {
      require_platform(platform.gateway, "linux.gateway", platform);
      l.gateway = parse_gateway(*x, "linux.gateway");
    }
    if (l.bypass_mark == l.fwmark) {
      // Name the key the user wrote: the clash may be with a default.
      const bool set_bypass = o.contains("bypass_mark");
      const bool other_default = set_bypass ? !o.contains("fwmark") : true;
      fail(set_bypass ? "linux.bypass_mark" : "linux.fwmark",
           std::string("equals ") + (set_bypass ? "fwmark" : "bypass_mark") + " (" + std::to_string(l.fwmark) +
               (other_default ? ", the default" : "") + "): upstream connects would be routed back into the relay");
    }
  }

  if (auto* v = root.if_contains("apple")) {
    const auto& o = as_object(*v, "apple");
    check_keys(o, "apple", {"offer"});
    if (auto* x = o.if_contains("offer"))
      cfg.apple_settings.offer =
          as_enum<AppleSettings::Offer>(*x, "apple.offer", {{"all", AppleSettings::Offer::all},
                                                            {"claims", AppleSettings::Offer::claims}});
  }

  if (auto* v = root.if_contains("control")) {
    const auto& o = as_object(*v, "control");
    check_keys(o, "control", {"socket"});
    if (auto* x = o.if_contains("socket")) {
      auto s = as_string(*x, "control.socket");
      if (s.empty() || s.front() != '/') fail("control.socket", "must be an absolute path");
      if (s.size() > 107) fail("control.socket", "longer than a unix socket path may be (107 bytes)");
      cfg.control_socket = s;
    }
  }

  if (auto* v = root.if_contains("metrics")) {
    const auto& o = as_object(*v, "metrics");
    check_keys(o, "metrics", {"listen"});
    if (auto* x = o.if_contains("listen")) {
      auto s = std::string(as_string(*x, "metrics.listen"));
      parse_address_port(s, "metrics.listen");
      cfg.metrics_listen = s;
    }
  }

  cfg.content_hash = fnv1a(json::serialize(doc));
  return cfg;
}

}  // namespace flowrelay::control
