#include "extension/linux/linux_host.hpp"

#include "extension/linux/ct_mark.hpp"
#include "extension/linux/nft_spec_from_config.hpp"
#include "relay/log.hpp"

#include <boost/asio/steady_timer.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <stdexcept>
#include <string>
#include <unordered_set>

namespace flowrelay::linux_host {

namespace {

std::shared_ptr<spdlog::logger> log() {
  static const auto l = relay::named_logger("linux");
  return l;
}

}  // namespace

LinuxHost::LinuxHost(boost::asio::io_context& control_io, relay::Relay& relay, LinuxBypassedFlows& bypassed,
                     NftTable& nft, LinuxHostOptions options)
    : io_(control_io), relay_(relay), bypassed_(bypassed), nft_(nft), options_(std::move(options)) {}

LinuxHost::~LinuxHost() = default;

std::vector<relay::FlowMeta> LinuxHost::claimed_flows() {
  std::vector<relay::FlowMeta> out;
  for (auto& s : relay_.snapshot()) out.push_back(std::move(s.meta));
  try {
    bypassed_.add_uids(out);  // `uids` rules must see claimed flows as nftables saw them
  } catch (const std::exception& e) {
    log()->warn("uids of claimed flows: {}", e.what());
  }
  return out;
}

std::uint32_t LinuxHost::mark_for(control::Verdict v) const {
  return CtMark::encode(v == control::Verdict::claim ? Verdict::claim : Verdict::bypass, applied_epoch());
}

void LinuxHost::apply_epoch(std::shared_ptr<const control::Epoch> epoch, control::HostCompletion done) {
  control::HostResult r;
  try {
    const auto& want = epoch->config->linux_settings;
    const auto& have = options_.linux_settings;
    if (want.tproxy_port != have.tproxy_port || want.fwmark != have.fwmark || want.bypass_mark != have.bypass_mark ||
        want.route_table != have.route_table || want.run_as != have.run_as)
      log()->warn("epoch {}: changes to the linux section take effect on the next start; keeping port {}, fwmark {}, "
                  "bypass mark {}, table {}, run_as \"{}\"",
                  epoch->id, have.tproxy_port, have.fwmark, have.bypass_mark, have.route_table, have.run_as);
    const NftTableSpec spec = spec_for(*epoch);
    std::function<void()> commit;
    if (options_.prepare_epoch) commit = options_.prepare_epoch(*epoch);  // throws "upstream ...: ..."
    try {
      nft_.apply(spec);  // linux.gateway is in the spec: a reload changes it here
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("nftables: ") + e.what());
    }
    if (commit) commit();
    applied_ = epoch;
    applied_id_.store(epoch->id, std::memory_order_release);
    ++counters_.tables_applied;
    log()->info("epoch {}: nftables table applied ({} rules, default {})", epoch->id, spec.rules.size(),
                to_string(spec.default_verdict));
    r.done = 1;
  } catch (const std::exception& e) {
    r.status = control::HostResult::Status::failed;
    r.detail = e.what();
    log()->error("epoch {}: {}", epoch->id, r.detail);
  }
  done(std::move(r));
}

NftTableSpec LinuxHost::spec_for(const control::Epoch& epoch) const {
  NftTableSpec spec = nft_spec_from_config(*epoch.config, epoch.id, options_.owner_pid);
  const auto& have = options_.linux_settings;  // what the sockets and routes were made with
  spec.tproxy_port = have.tproxy_port;
  spec.fwmark = have.fwmark;
  spec.bypass_mark = have.bypass_mark;
  return spec;
}

bool LinuxHost::reverify() {
  if (!applied_) return false;
  const auto t = nft_.installed();
  if (t && t->epoch == applied_->id && t->owner_pid == options_.owner_pid) return false;
  log()->warn("table inet flowrelay {} (another tool, `nft flush ruleset`?): installing epoch {} again",
              t ? "was replaced" : "is gone", applied_->id);
  nft_.apply(spec_for(*applied_));
  ++counters_.tables_reinstalled;
  return true;
}

void LinuxHost::release(std::vector<relay::FlowMeta> flows, std::chrono::milliseconds grace,
                        control::HostCompletion done) {
  // UDP: re-mark now, so the app's next datagram already goes to the world; the association
  // (and its reply socket, for replies in flight) goes after the grace, with the TCP flows.
  const std::uint32_t bypass = mark_for(control::Verdict::bypass);
  for (const auto& f : flows) {
    if (f.proto != relay::Proto::udp) continue;
    try {
      bypassed_.conntrack().set_mark(relay::Proto::udp, unmapped(f.app), unmapped(f.dst), bypass, CtMark::mask);
    } catch (const std::exception& e) {
      log()->warn("flow {}: conntrack re-mark: {}", f.id, e.what());
    }
  }
  auto timer = std::make_shared<boost::asio::steady_timer>(io_, grace);
  timer->async_wait([this, timer, flows = std::move(flows), done = std::move(done),
                     alive = std::weak_ptr<int>(alive_)](const boost::system::error_code&) {
    if (alive.expired()) return;
    auto r = control::release_flows(relay_, flows, applied_epoch(), *log());
    counters_.released += r.done;
    done(std::move(r));
    if (options_.after_completion) options_.after_completion();
  });
}

void LinuxHost::move_bypassed(const BypassedFlow& f, std::uint32_t ct_mark, Moved& m) {
  if (f.meta.proto == relay::Proto::tcp) {
    if (!f.socket) {
      m.failures.emplace_back(f.meta.id, "no socket to destroy");
      return;
    }
    const auto outcome = bypassed_.diag().destroy(*f.socket);
    switch (outcome.result) {
      case DestroyResult::destroyed:
        ++m.done;
        ++counters_.tcp_destroyed;
        return;
      case DestroyResult::unavailable: m.unavailable = true; [[fallthrough]];
      case DestroyResult::gone:
      case DestroyResult::not_permitted:
      case DestroyResult::failed: m.failures.emplace_back(f.meta.id, to_string(outcome.result)); return;
    }
  }
  try {
    if (bypassed_.conntrack().set_mark(relay::Proto::udp, f.meta.app, f.meta.dst, ct_mark, CtMark::mask)) {
      ++m.done;
      ++counters_.udp_remarked;
    } else {
      m.failures.emplace_back(f.meta.id, "conntrack entry gone");
    }
  } catch (const std::exception& e) {
    m.failures.emplace_back(f.meta.id, std::string("conntrack: ") + e.what());
  }
}

void LinuxHost::close_bypassed(std::vector<relay::FlowMeta> flows, control::HostCompletion done) {
  Moved m;
  const std::uint32_t claim = mark_for(control::Verdict::claim);
  for (const auto& meta : flows) {
    const BypassedFlow* f = bypassed_.find(meta.id);
    if (f == nullptr) {
      m.failures.emplace_back(meta.id, "not in the latest socket listing");
      continue;
    }
    move_bypassed(*f, claim, m);
    log()->info("flow {} epoch {}: reclaimed ({} {} -> {})", meta.id, applied_epoch(), relay::to_string(meta.proto),
                meta.app.to_string(), meta.dst.to_string());
  }
  control::HostResult r;
  if (m.unavailable && m.done == 0) {
    r.status = control::HostResult::Status::unsupported;
    r.detail = "surgical reclaim unavailable (SOCK_DESTROY: EOPNOTSUPP)";
  }
  r.done = m.done;
  r.failures = std::move(m.failures);
  done(std::move(r));
}

void LinuxHost::cancel_and_restart(control::HostCompletion done) {
  // Apple's cancel-and-restart, emulated: every flow in scope is closed once and comes back
  // through the flow source under the running epoch. Claimed UDP flows are re-decided by
  // re-marking their conntrack entry with the running epoch's verdict, then released.
  ++counters_.restarts;
  control::HostResult r;
  if (!applied_) {
    r.status = control::HostResult::Status::failed;
    r.detail = "no epoch applied";
    done(std::move(r));
    return;
  }
  const auto& rules = *applied_->rules;
  Moved m;
  for (const auto& s : relay_.snapshot()) {
    if (s.meta.proto == relay::Proto::udp) {
      try {
        bypassed_.conntrack().set_mark(relay::Proto::udp, unmapped(s.meta.app), unmapped(s.meta.dst),
                                       mark_for(rules.verdict(s.meta)), CtMark::mask);
      } catch (const std::exception& e) {
        log()->warn("flow {}: conntrack re-mark: {}", s.meta.id, e.what());
      }
    }
    if (relay_.release(s.meta.id, "restart")) {
      ++m.done;
      ++counters_.released;
    }
  }
  for (const auto& f : bypassed_.list()) move_bypassed(f, mark_for(rules.verdict(f.meta)), m);
  log()->info("epoch {}: restart emulated, {} flows closed", applied_->id, m.done);
  r.done = m.done;
  r.failures = std::move(m.failures);
  done(std::move(r));
}

}  // namespace flowrelay::linux_host
