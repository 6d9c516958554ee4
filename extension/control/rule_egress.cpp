#include "extension/control/rule_egress.hpp"

#include "extension/control/config_file.hpp"
#include "extension/control/rule_set.hpp"

#include <optional>
#include <stdexcept>

namespace flowrelay::control {

namespace asio = boost::asio;

struct RuleEgress::Table {
  std::shared_ptr<const RuleSet> rules;  // empty before the first epoch: everything direct
  std::vector<std::unique_ptr<relay::ProxyEgress>> proxies;
  std::vector<int> rule_proxy;        // per rule: index into proxies, -1 for direct
  std::vector<std::size_t> uid_rules;  // claim rules on uids, in order

  /// The egress for `meta`: the one its deciding rule names. On Linux a claimed flow's uid is not
  /// known when it is dialled, so a rule on uids never matches here; when such a rule comes first
  /// and could match but names another way out, the flow fails rather than leave the wrong way.
  std::optional<relay::Egress*> choose(const relay::FlowMeta& meta, relay::Egress& direct) const {
    if (!rules) return &direct;
    const auto idx = rules->first_match(meta);
    const int way = idx ? rule_proxy[*idx] : -1;
    if (!meta.app_identity.uid) {
      for (const std::size_t j : uid_rules) {
        if (idx && j >= *idx) break;
        if (rule_proxy[j] == way) continue;
        Rule open = rules->rules()[j];
        open.uids.clear();
        if (matches_linear(open, meta)) return std::nullopt;
      }
    }
    return way < 0 ? &direct : static_cast<relay::Egress*>(proxies[static_cast<std::size_t>(way)].get());
  }
};

RuleEgress::RuleEgress(relay::DirectEgressOptions direct)
    : direct_(direct), table_(std::make_shared<const Table>()) {}

RuleEgress::~RuleEgress() = default;

namespace {

// Read like the config itself (read_config_file): a regular file, without blocking, size-capped,
// so a FIFO or a device at password_file fails the epoch instead of hanging the control thread.
std::string read_password(const Upstream& u) {
  auto file = read_config_file(u.password_file, 4096);
  if (!file) throw std::runtime_error("upstream \"" + u.name + "\": password_file " + file.message);
  std::string pass = std::move(file.bytes);
  while (!pass.empty() && (pass.back() == '\n' || pass.back() == '\r')) pass.pop_back();  // `echo secret > file`
  if (pass.empty() || pass.size() > 255)
    throw std::runtime_error("upstream \"" + u.name + "\": password_file " + u.password_file + " must hold 1 to 255 bytes");
  return pass;
}

}  // namespace

std::shared_ptr<const RuleEgress::Table> RuleEgress::prepare(const Epoch& epoch) const {
  auto t = std::make_shared<Table>();
  t->rules = epoch.rules;
  const auto& cfg = *epoch.config;
  std::vector<int> index_of(cfg.upstreams.size(), -1);
  for (std::size_t i = 0; i < cfg.rules.size(); ++i) {
    const Rule& r = cfg.rules[i];
    int way = -1;
    if (!r.via.empty()) {
      const auto u = static_cast<std::size_t>(cfg.upstream(r.via) - cfg.upstreams.data());
      if (index_of[u] < 0) {
        const Upstream& up = cfg.upstreams[u];
        relay::ProxyEgressOptions o;
        o.kind = up.kind == Upstream::Kind::http ? relay::ProxyEgressOptions::Kind::http
                                                 : relay::ProxyEgressOptions::Kind::socks5;
        o.proxy = relay::Endpoint{up.address, up.port};
        if (!up.username.empty()) o.credentials.emplace(up.username, read_password(up));
        o.connect_timeout = direct_.options().connect_timeout;
        o.mark = direct_.options().mark;
        o.name = up.name;
        index_of[u] = static_cast<int>(t->proxies.size());
        t->proxies.push_back(std::make_unique<relay::ProxyEgress>(std::move(o)));
      }
      way = index_of[u];
    }
    t->rule_proxy.push_back(way);
    if (!r.uids.empty() && r.verdict == Verdict::claim) t->uid_rules.push_back(i);
  }
  return t;
}

void RuleEgress::install(std::shared_ptr<const Table> table) {
  std::lock_guard lock(mu_);
  table_ = std::move(table);
}

std::shared_ptr<const RuleEgress::Table> RuleEgress::current() const {
  std::lock_guard lock(mu_);
  return table_;
}

asio::awaitable<relay::DialResult> RuleEgress::dial_tcp(const relay::FlowMeta& meta, asio::any_io_executor ex) {
  const auto table = current();  // held across the dial: its upstreams outlive a reload
  const auto way = table->choose(meta, direct_);
  if (!way) {
    static const char* const unknown = relay::intern_via("unknown");
    const auto ec = make_error_code(relay::ProxyError::ambiguous);
    relay::count_dial_failure(unknown, ec);
    co_return relay::DialResult{ec, nullptr, unknown};
  }
  co_return co_await (*way)->dial_tcp(meta, std::move(ex));
}

}  // namespace flowrelay::control
