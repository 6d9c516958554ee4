#include "extension/apple/provider_core.hpp"

#include "extension/apple/apple_host.hpp"
#include "extension/apple/log.hpp"
#include "extension/apple/ne_tcp_flow.hpp"
#include "extension/apple/ne_udp_flow.hpp"
#include "extension/apple/reactor_port.hpp"
#include "extension/apple/shared_ledger.hpp"
#include "extension/control/control_plane.hpp"
#include "extension/control/epoch_report.hpp"
#include "relay/egress.hpp"
#include "relay/reactor.hpp"
#include "relay/relay.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>

#include <future>
#include <limits>

namespace flowrelay::apple {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

relay::RelayOptions relay_options(const control::Config& c) {
  relay::RelayOptions o;
  o.tcp_idle_timeout = c.limits.tcp_idle_timeout;
  o.udp_idle_timeout = c.limits.udp_idle_timeout;
  o.flow_buffer_bytes = c.limits.flow_buffer_bytes;
  // The provider caps claimed flows itself (its answer to handleNewFlow: must be NO, not a reset).
  o.max_flows = std::numeric_limits<std::size_t>::max();
  o.max_udp_flows = o.max_flows;
  return o;
}

}  // namespace

/// Everything that exists while the provider runs, declared in the order it must be torn down
/// (last first): the reactor outlives the relay and every flow, the relay outlives the host and the
/// control plane that drive it.
struct ProviderCore::Running {
  Running(ProviderCore& core, const control::Config& first)
      : reactor(std::make_unique<relay::Reactor>(core.options_.threads)),
        egress(core.options_.make_egress ? core.options_.make_egress(first)
                                         : std::make_unique<relay::DirectEgress>(
                                               relay::DirectEgressOptions{first.limits.connect_timeout, 0})),
        relay(*reactor, *egress, relay_options(first)),
        ledger(clock, core.options_.ledger_entries, core.options_.ledger_age),
        host(core.control_io_, relay, ledger, core.shell_, core.memory_, clock, [&core] { core.after_control_event(); }),
        plane(control::PlatformCaps::for_apple(), host, ledger, clock, controller_options(core)),
        timer(core.control_io_) {
    for (std::size_t i = 0; i < reactor->size(); ++i) ports.push_back(std::make_shared<ReactorPort>(reactor->context(i)));
    relay.on_closed([this](const relay::FlowSnapshot&) { claimed_live.fetch_sub(1, std::memory_order_relaxed); });
    reactor->start();
  }

  static control::ControllerOptions controller_options(ProviderCore& core) {
    auto o = core.options_.controller;
    o.last_restart = core.memory_.last_restart();
    return o;
  }

  /// Takes one of `max` flow slots; false when all are taken.
  bool reserve(std::uint64_t max) {
    auto n = claimed_live.load(std::memory_order_relaxed);
    do {
      if (n >= max) return false;
    } while (!claimed_live.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }

  /// Returns once every shard has run what was posted to it before: flows answered YES just before
  /// the door shut are in the relay then, where a drain sees them.
  void settle() {
    if (!reactor->running()) return;
    std::vector<std::future<void>> turns;
    for (const auto& port : ports) {
      auto turn = std::make_shared<std::promise<void>>();
      turns.push_back(turn->get_future());
      if (!port->post([turn] { turn->set_value(); })) turn->set_value();
    }
    for (auto& t : turns) t.wait();
  }

  /// Runs `start(port)` on the next shard, round robin: where the flow will live.
  template <typename Start>
  void adopt(Start start) {
    const auto& port = ports[next_shard.fetch_add(1, std::memory_order_relaxed) % ports.size()];
    port->post([port, start = std::move(start)]() mutable { start(port); });
  }

  control::SystemClock clock;
  std::unique_ptr<relay::Reactor> reactor;  // released, not destroyed, while NE still holds our chunks
  std::vector<std::shared_ptr<ReactorPort>> ports;
  std::unique_ptr<relay::Egress> egress;
  relay::Relay relay;
  SharedLedger ledger;
  AppleHost host;
  control::ControlPlane plane;
  control::PushSource source{"providerConfiguration"};
  asio::steady_timer timer;
  std::function<void(std::string)> started;  // start()'s completion, until the first epoch is in place
  std::atomic<std::uint64_t> claimed_live{0};
  std::atomic<std::size_t> next_shard{0};
};

ProviderCore::ProviderCore(ProviderShell& shell, ProviderMemory& memory, ProviderOptions options)
    : shell_(shell), memory_(memory), options_(std::move(options)) {
  control_thread_ = std::thread([this] { control_io_.run(); });
}

ProviderCore::~ProviderCore() {
  stop();
  work_.reset();
  control_io_.stop();
  control_thread_.join();
}

void ProviderCore::on_control(const std::function<void()>& fn) {
  std::promise<void> done;
  asio::post(control_io_, [&] {
    try {
      fn();
    } catch (...) {
      done.set_exception(std::current_exception());
      return;
    }
    done.set_value();
  });
  done.get_future().get();
}

void ProviderCore::start(std::string config_json, std::function<void(std::string error)> done) {
  control::Config first;
  try {
    first = control::parse_config(config_json, control::PlatformCaps::for_apple());
  } catch (const control::ConfigError& e) {
    logger()->error("providerConfiguration rejected: {}", e.what());
    done(std::string("providerConfiguration: ") + e.what());
    return;
  }
  asio::post(control_io_, [this, first = std::move(first), json = std::move(config_json),
                           done = std::move(done)]() mutable {
    if (running_) {
      done("already running");
      return;
    }
    auto r = std::make_unique<Running>(*this, first);
    r->started = std::move(done);
    {
      std::unique_lock lk(mu_);
      running_ = std::move(r);
    }
    auto& run = *running_;
    run.plane.on_report([](const control::EpochEvent& e) {
      logger()->info("providerConfiguration {}: epoch {} stays{}", control::to_string(e.kind), e.epoch,
                     e.error.empty() ? "" : ": " + e.error);
    });
    run.plane.watcher().add_source(run.source);
    run.source.push(std::move(json));
    run.plane.watcher().flush();  // the first epoch does not wait out the debounce
    if (memory_.restarts() > 0)
      logger()->info("started after restart #{} ({})", memory_.restarts(), memory_.last_restart_reason());
    after_control_event();
  });
}

// The first epoch's settings are in place (or could not be): answer start()'s completion.
void ProviderCore::check_started() {
  if (!running_ || !running_->started) return;
  auto& r = *running_;
  if (auto epoch = r.host.applied()) {
    auto done = std::move(r.started);
    r.started = nullptr;
    accepting_.store(true, std::memory_order_release);
    logger()->info("provider running: epoch {}, {} reactor shards, at most {} claimed flows", epoch->id,
                   r.reactor->size(), epoch->config->limits.max_flows);
    done("");
    return;
  }
  if (r.plane.controller().busy() || r.plane.watcher().pending()) return;
  std::string why = "the first configuration was not applied";
  const auto& history = r.plane.epochs().history();
  if (!history.empty() && !history.back().error.empty()) why = history.back().error;
  const auto& cycles = r.plane.controller().cycles();
  if (!cycles.empty() && !cycles.back().errors.empty()) why = cycles.back().errors.front();
  auto done = std::move(r.started);
  r.started = nullptr;
  std::unique_ptr<Running> gone;
  {
    std::unique_lock lk(mu_);
    gone = std::move(running_);
  }
  logger()->error("provider cannot start: {}", why);
  teardown(std::move(gone));
  done(why);
}

void ProviderCore::after_control_event() {
  check_started();
  arm_timer();
}

void ProviderCore::arm_timer() {
  if (!running_) return;
  auto& r = *running_;
  auto deadline = r.plane.next_deadline();
  if (!deadline) return;
  r.timer.expires_at(*deadline);
  r.timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !running_) return;
    running_->plane.tick();
    after_control_event();
  });
}

void ProviderCore::push_config(std::string config_json) {
  asio::post(control_io_, [this, json = std::move(config_json)]() mutable {
    if (!running_) return;
    running_->source.push(std::move(json));
    after_control_event();
  });
}

void ProviderCore::stop() {
  std::unique_ptr<Running> r;
  on_control([&] {
    accepting_.store(false, std::memory_order_release);
    {
      std::unique_lock lk(mu_);
      r = std::move(running_);
    }
    if (!r) return;
    r->source.stop();
    r->timer.cancel();
    auto previous = control::epochs_json(r->plane.epochs(), &r->plane.controller());
    memory_.set_previous_instance(json::serialize(previous));
    if (r->started) {
      auto done = std::move(r->started);
      r->started = nullptr;
      done("stopped before the first configuration was applied");
    }
  });
  if (!r) return;
  // After our own cancelProxyWithError: every flow is closing anyway, and the sooner this instance
  // is gone the sooner the next one takes the flows back: no drain then.
  const auto epoch = r->host.applied();
  auto drain = std::min(epoch ? std::chrono::milliseconds(epoch->config->reclaim.drain) : options_.max_stop_drain,
                        options_.max_stop_drain);
  if (r->host.cancelling()) drain = std::chrono::milliseconds(0);
  r->settle();  // no new flow can come (running_ is gone); the last ones land before the drain
  r->relay.drain(std::chrono::steady_clock::now() + drain);
  const auto c = r->relay.counters();
  logger()->info("provider stopped: {} flows relayed, {} released, {} dial failures", c.adopted, c.released,
                 c.dial_failures);
  teardown(std::move(r));
}

void ProviderCore::teardown(std::unique_ptr<Running> r) {
  r->reactor->stop();
  for (auto& p : r->ports) p->shut();  // completions still in flight find the door shut
  // The system may hold NSData over our chunks a little longer than the flows: a pool must outlive
  // every chunk it lent, so with chunks still out the reactor (and its pools) is left allocated.
  const auto stats = r->reactor->pool_stats();
  std::int64_t out = 0;
  for (const auto& c : stats.classes) out += c.live;
  if (out > 0) {
    logger()->warn("{} buffers still held by the system at stop: keeping their pools", out);
    (void)r->reactor.release();
  }
  if (std::this_thread::get_id() == control_thread_.get_id()) {
    r.reset();
    return;
  }
  on_control([&] { r.reset(); });  // the control plane's timer and host die on their own thread
}

ProviderCore::Running* ProviderCore::decide(relay::FlowMeta& meta, relay::Proto proto) {
  const bool tcp = proto == relay::Proto::tcp;
  (tcp ? counters_.offered_tcp : counters_.offered_udp).fetch_add(1, std::memory_order_relaxed);
  meta.proto = proto;
  Running* r = running_.get();
  auto epoch = r != nullptr && accepting_.load(std::memory_order_acquire) && !r->host.cancelling() ? r->host.applied()
                                                                                                  : nullptr;
  if (!epoch) {
    counters_.not_running.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  meta.id = r->relay.next_id();
  meta.epoch = epoch->id;
  meta.claimed_at = std::chrono::system_clock::now();
  if (epoch->rules->verdict(meta) != control::Verdict::claim) {
    r->ledger.record(meta);
    counters_.bypassed.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (!r->reserve(epoch->config->limits.max_flows)) {
    counters_.over_cap.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  (tcp ? counters_.claimed_tcp : counters_.claimed_udp).fetch_add(1, std::memory_order_relaxed);
  return r;
}

bool ProviderCore::handle_new_tcp_flow(relay::FlowMeta meta, std::unique_ptr<NeTcpFlowOps> ops) {
  std::shared_lock lk(mu_);
  Running* r = decide(meta, relay::Proto::tcp);
  if (r == nullptr) return false;
  r->adopt([r, meta = std::move(meta), ops = std::move(ops)](const std::shared_ptr<ReactorPort>& port) mutable {
    const std::size_t watermark = r->relay.options().flow_buffer_bytes;
    r->relay.adopt(std::make_unique<NeTcpFlow>(port, std::move(ops), watermark), std::move(meta),
                   port->context().get_executor());
  });
  return true;
}

bool ProviderCore::handle_new_udp_flow(relay::FlowMeta meta, std::unique_ptr<NeUdpFlowOps> ops) {
  std::shared_lock lk(mu_);
  Running* r = decide(meta, relay::Proto::udp);
  if (r == nullptr) return false;
  r->adopt([r, meta = std::move(meta), ops = std::move(ops)](const std::shared_ptr<ReactorPort>& port) mutable {
    const std::size_t watermark = r->relay.options().flow_buffer_bytes;
    auto flow = std::make_unique<NeUdpFlow>(port, r->relay, std::move(ops), watermark);
    NeUdpFlow* raw = flow.get();
    // The relay does not cap (the provider did): adopt always returns the association.
    if (auto assoc = r->relay.adopt(std::move(flow), std::move(meta), port->context().get_executor()))
      raw->start(assoc, assoc->id());
  });
  return true;
}

bool ProviderCore::with_control_plane(const std::function<void(control::ControlPlane&)>& fn) {
  bool ran = false;
  on_control([&] {
    if (!running_) return;
    fn(running_->plane);
    ran = true;
  });
  return ran;
}

std::string ProviderCore::app_message(std::string_view command) {
  json::object out;
  if (command != "flows" && command != "epochs") {
    out["error"] = "unknown command \"" + std::string(command) + "\" (flows, epochs)";
    return json::serialize(out);
  }
  on_control([&] {
    if (!running_) {
      out["error"] = "not running";
      return;
    }
    auto& r = *running_;
    if (command == "epochs") {
      out = control::epochs_json(r.plane.epochs(), &r.plane.controller()).as_object();
      out["restarts"] = memory_.restarts();
      if (auto prev = memory_.previous_instance(); !prev.empty()) out["previous_instance"] = json::parse(prev);
      return;
    }
    json::array flows;
    for (const auto& s : r.relay.snapshot())
      flows.push_back(json::object{{"id", s.meta.id},
                                   {"proto", relay::to_string(s.meta.proto)},
                                   {"dst", s.meta.dst.to_string()},
                                   {"host", s.meta.hostname},
                                   {"app", s.meta.app_identity.signing_id},
                                   {"verdict", "claim"},
                                   {"epoch", s.meta.epoch},
                                   {"bytes_up", s.bytes_up},
                                   {"bytes_down", s.bytes_down},
                                   {"state", s.state}});
    const auto bypassed = r.ledger.snapshot();
    for (const auto& m : bypassed)
      flows.push_back(json::object{{"id", m.id},
                                   {"proto", relay::to_string(m.proto)},
                                   {"dst", m.dst.to_string()},
                                   {"host", m.hostname},
                                   {"app", m.app_identity.signing_id},
                                   {"verdict", "bypass"},
                                   {"epoch", m.epoch},
                                   {"bytes_up", nullptr},
                                   {"bytes_down", nullptr},
                                   {"state", "carried by the system (answered NO)"}});
    const auto c = counters();
    const auto ls = r.ledger.stats();
    out["epoch"] = r.host.applied() ? r.host.applied()->id : 0;
    out["claimed"] = r.relay.active();
    out["bypassed"] = bypassed.size();
    out["flows"] = std::move(flows);
    out["answers"] = json::object{{"offered_tcp", c.offered_tcp}, {"offered_udp", c.offered_udp},
                                  {"claimed_tcp", c.claimed_tcp}, {"claimed_udp", c.claimed_udp},
                                  {"bypassed", c.bypassed},       {"over_cap", c.over_cap},
                                  {"not_running", c.not_running}};
    out["ledger"] = json::object{{"entries", ls.entries},           {"recorded", ls.recorded},
                                 {"dropped_full", ls.dropped_full}, {"dropped_aged", ls.dropped_aged},
                                 {"forgotten", ls.forgotten}};
  });
  return json::serialize(out);
}

ProviderCounters ProviderCore::counters() const {
  auto get = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  return {get(counters_.offered_tcp), get(counters_.offered_udp), get(counters_.claimed_tcp),
          get(counters_.claimed_udp), get(counters_.bypassed),    get(counters_.over_cap),
          get(counters_.not_running)};
}

relay::EpochId ProviderCore::epoch() const {
  std::shared_lock lk(mu_);
  if (!running_ || !accepting_.load(std::memory_order_acquire)) return 0;
  auto e = running_->host.applied();
  return e ? e->id : 0;
}

bool ProviderCore::running() const {
  std::shared_lock lk(mu_);
  return running_ && accepting_.load(std::memory_order_acquire) && !running_->host.cancelling();
}

}  // namespace flowrelay::apple
