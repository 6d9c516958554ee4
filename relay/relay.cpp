#include "relay/relay.hpp"

#include "relay/detail/bridges.hpp"
#include "relay/detail/flow_base.hpp"
#include "relay/log.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <future>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace flowrelay::relay {

namespace asio = boost::asio;

namespace detail {

std::shared_ptr<spdlog::logger> relay_log() {
  static const auto l = relay::named_logger("relay");
  return l;
}

}  // namespace detail

// One idle sweeper per shard: a coarse timer that closes the shard's flows that have been quiet for
// longer than their idle timeout. Cheaper than a timer per flow, and idle flows stay small.
struct Relay::Sweepers {
  std::mutex mu;  // held while a sweep touches the relay; the relay's destructor takes it to detach
  Relay* relay = nullptr;
  std::chrono::milliseconds period{1000};
  std::vector<std::unique_ptr<asio::steady_timer>> timers;

  static void arm(const std::shared_ptr<Sweepers>& self, std::size_t shard) {
    if (!self->timers[shard]) return;
    auto& t = *self->timers[shard];
    t.expires_after(self->period);
    t.async_wait([self, shard](boost::system::error_code ec) {
      if (ec) return;
      {
        std::lock_guard lk(self->mu);
        if (self->relay == nullptr) return;
        self->relay->sweep(shard);
      }
      arm(self, shard);
    });
  }
};

Relay::Relay(Reactor& reactor, Egress& egress, RelayOptions options)
    : reactor_(reactor), egress_(egress), options_(options) {
  auto s = std::make_shared<Sweepers>();
  s->relay = this;
  const auto shortest = std::min(options_.tcp_idle_timeout, options_.udp_idle_timeout);
  s->period = std::clamp(shortest / 4, std::chrono::milliseconds(10), std::chrono::milliseconds(1000));
  for (std::size_t i = 0; i < reactor_.size(); ++i) s->timers.push_back(std::make_unique<asio::steady_timer>(reactor_.context(i)));
  for (std::size_t i = 0; i < reactor_.size(); ++i) Sweepers::arm(s, i);
  sweepers_ = std::move(s);
}

Relay::~Relay() {
  if (active() > 0) drain(std::chrono::steady_clock::now());
  {
    std::lock_guard lk(sweepers_->mu);
    sweepers_->relay = nullptr;
  }
  // Each timer dies on its own shard's thread (or here, once no thread runs the reactor).
  for (std::size_t i = 0; i < reactor_.size(); ++i) {
    if (!reactor_.running()) {
      sweepers_->timers[i].reset();
      continue;
    }
    std::promise<void> done;
    asio::post(reactor_.context(i), [s = sweepers_, i, &done] {
      s->timers[i].reset();
      done.set_value();
    });
    done.get_future().wait();
  }
}

void Relay::sweep(std::size_t shard) {
  const auto* ctx = &static_cast<asio::execution_context&>(reactor_.context(shard));
  const auto now = std::chrono::steady_clock::now();
  std::vector<detail::FlowBase*> idle;
  {
    std::lock_guard lk(mu_);
    for (auto& [id, f] : flows_)
      if (f->context() == ctx && !f->is_closing() && now - f->last_active() > f->idle_timeout()) idle.push_back(f);
    counters_.idle_expired += idle.size();
  }
  // Flows of this shard retire only on this thread, so the pointers stay good here.
  for (auto* f : idle) f->close("idle timeout");
}

void Relay::adopt(std::unique_ptr<TcpFlow> app, FlowMeta meta, asio::any_io_executor ex) {
  if (meta.id == 0) meta.id = next_id();
  detail::start_tcp_bridge(*this, std::move(meta), std::move(ex), std::move(app));
}

std::shared_ptr<UdpAssociation> Relay::adopt(std::unique_ptr<UdpFlow> app, FlowMeta meta, asio::any_io_executor ex) {
  if (meta.id == 0) meta.id = next_id();
  return detail::start_udp_bridge(*this, std::move(meta), std::move(ex), std::move(app));
}

bool Relay::admit(detail::FlowBase* f) {
  const bool udp = f->meta().proto == Proto::udp;
  std::lock_guard lk(mu_);
  if (flows_.size() >= options_.max_flows || (udp && udp_flows_ >= options_.max_udp_flows)) {
    ++counters_.rejected;
    if (udp) ++counters_.rejected_udp;
    return false;
  }
  flows_.emplace(f->meta().id, f);
  reactor_.add_load(f->context(), +1);
  if (udp) ++udp_flows_;
  ++counters_.adopted;
  if (udp) ++counters_.adopted_udp;
  return true;
}

void Relay::retire(detail::FlowBase* f) {
  FlowSnapshot last = f->snapshot();
  {
    std::lock_guard lk(mu_);
    flows_.erase(f->meta().id);
    reactor_.add_load(f->context(), -1);
    if (f->meta().proto == Proto::udp) --udp_flows_;
    ++counters_.closed;
    closed_traffic_.bytes_up += last.bytes_up;
    closed_traffic_.bytes_down += last.bytes_down;
    closed_traffic_.udp_dropped += last.dropped;
    if (f->dial_failed()) ++counters_.dial_failures;
    if (flows_.empty()) drained_.notify_all();
  }
  if (on_closed_) on_closed_(last);
  f->destroy();
}

bool Relay::release(FlowId id, std::string reason) {
  asio::any_io_executor ex;
  {
    std::lock_guard lk(mu_);
    auto it = flows_.find(id);
    if (it == flows_.end()) return false;
    ex = it->second->executor();
  }
  asio::post(ex, [this, id, reason = std::move(reason)]() mutable {
    detail::FlowBase* f = nullptr;
    {
      std::lock_guard lk(mu_);
      auto it = flows_.find(id);
      if (it == flows_.end()) return;
      f = it->second;
      ++counters_.released;
    }
    f->close(std::move(reason));  // retires on this thread only: f stays valid here
  });
  return true;
}

void Relay::drain(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lk(mu_);
  if (drained_.wait_until(lk, deadline, [&] { return flows_.empty(); })) return;
  std::vector<FlowId> rest;
  for (auto& [id, f] : flows_) rest.push_back(id);
  lk.unlock();
  for (FlowId id : rest) release(id, "drained");
  lk.lock();
  // Every release resets both sides and completes on the next reactor turn; bound it all the same.
  drained_.wait_for(lk, std::chrono::seconds(5), [&] { return flows_.empty(); });
}

std::vector<FlowSnapshot> Relay::snapshot() const {
  std::lock_guard lk(mu_);
  std::vector<FlowSnapshot> out;
  out.reserve(flows_.size());
  for (auto& [id, f] : flows_) out.push_back(f->snapshot());
  return out;
}

std::size_t Relay::active() const {
  std::lock_guard lk(mu_);
  return flows_.size();
}

RelayTraffic Relay::traffic() const {
  std::lock_guard lk(mu_);
  RelayTraffic t = closed_traffic_;
  for (auto& [id, f] : flows_) {
    const FlowSnapshot s = f->snapshot();
    t.bytes_up += s.bytes_up;
    t.bytes_down += s.bytes_down;
    t.udp_dropped += s.dropped;
  }
  t.active_udp = udp_flows_;
  t.active_tcp = flows_.size() - udp_flows_;
  return t;
}

RelayCounters Relay::counters() const {
  std::lock_guard lk(mu_);
  RelayCounters c = counters_;
  c.buffer_waits = buffer_waits_.load(std::memory_order_relaxed);
  return c;
}

}  // namespace flowrelay::relay
