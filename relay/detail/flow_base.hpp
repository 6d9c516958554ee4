#pragma once
// What the relay keeps of every flow, TCP or UDP: meta, counters readable from any thread, and the
// hooks the registry, the idle sweeper and release() use. Internal to relay/.

#include "relay/relay.hpp"

#include <boost/asio/execution_context.hpp>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>

namespace flowrelay::relay::detail {

class FlowBase {
 public:
  enum class State : std::uint8_t { connecting, open, closing };

  FlowBase(Relay& relay, FlowMeta meta, boost::asio::any_io_executor ex)
      : relay_(relay), meta_(std::move(meta)), ex_(std::move(ex)), context_(&boost::asio::query(ex_, boost::asio::execution::context)) {
    touch();
  }
  virtual ~FlowBase() = default;

  /// Ends the flow (both sides reset); the flow retires itself once its coroutines are done.
  /// Reactor thread only; idempotent, the first reason stays.
  virtual void close(std::string reason) = 0;
  /// How the registry lets go once the flow has retired.
  virtual void destroy() = 0;

  const FlowMeta& meta() const noexcept { return meta_; }
  const boost::asio::any_io_executor& executor() const noexcept { return ex_; }
  const boost::asio::execution_context* context() const noexcept { return context_; }
  std::chrono::milliseconds idle_timeout() const noexcept {
    return meta_.proto == Proto::tcp ? relay_.options().tcp_idle_timeout : relay_.options().udp_idle_timeout;
  }

  void touch() noexcept {
    last_active_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
  }
  std::chrono::steady_clock::time_point last_active() const noexcept {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(last_active_.load(std::memory_order_relaxed)));
  }

  FlowSnapshot snapshot() const {
    FlowSnapshot s;
    s.meta = meta_;
    s.bytes_up = bytes_up_.load(std::memory_order_relaxed);
    s.bytes_down = bytes_down_.load(std::memory_order_relaxed);
    s.queued_up = queued_up_.load(std::memory_order_relaxed);
    s.queued_down = queued_down_.load(std::memory_order_relaxed);
    s.queued_peak = queued_peak_.load(std::memory_order_relaxed);
    s.dropped = dropped_.load(std::memory_order_relaxed);
    switch (state_.load(std::memory_order_acquire)) {
      case State::connecting: s.state = "connecting"; break;
      case State::open: s.state = "open"; break;
      case State::closing: s.state = reason_; break;
    }
    if (const char* via = via_.load(std::memory_order_relaxed)) s.via = via;
    if (const auto us = dial_us_.load(std::memory_order_relaxed); us >= 0) s.dial_ms = double(us) / 1000;
    if (const auto us = first_byte_us_.load(std::memory_order_relaxed); us >= 0) s.first_byte_ms = double(us) / 1000;
    s.rtt_app_us = smoothed_rtt_us(app_fd_.load(std::memory_order_relaxed));
    s.rtt_upstream_us = smoothed_rtt_us(up_fd_.load(std::memory_order_relaxed));
    s.age_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - adopted_at_).count();
    return s;
  }

 protected:
  // Written by the flow's own thread only: a load and a store, no locked instruction.
  static void add(std::atomic<std::uint64_t>& c, std::uint64_t n) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void note_queued(std::atomic<std::uint64_t>& q, std::size_t now) noexcept {
    q.store(now, std::memory_order_relaxed);
    if (now > queued_peak_.load(std::memory_order_relaxed)) queued_peak_.store(now, std::memory_order_relaxed);
  }
  /// Moves to closing with a reason; false if it was closing already.
  bool begin_closing(std::string reason) {
    if (state_.load(std::memory_order_relaxed) == State::closing) return false;
    reason_ = std::move(reason);
    state_.store(State::closing, std::memory_order_release);
    return true;
  }
  void set_open() noexcept { state_.store(State::open, std::memory_order_release); }
  /// The latency profile, from the flow's thread: the upstream is connected (`via` an interned
  /// name, DialResult::via); the destination's
  /// first byte arrived (only the first call counts); the sockets whose RTT a snapshot reads (-1:
  /// none; set them to -1 before closing the sockets).
  void note_dialled(const char* via) noexcept {
    via_.store(via, std::memory_order_relaxed);
    dial_us_.store(since_adopted_us(), std::memory_order_relaxed);
  }
  void note_first_byte() noexcept {
    if (first_byte_us_.load(std::memory_order_relaxed) < 0) first_byte_us_.store(since_adopted_us(), std::memory_order_relaxed);
  }
  void set_profile_fds(int app, int up) noexcept {
    app_fd_.store(app, std::memory_order_relaxed);
    up_fd_.store(up, std::memory_order_relaxed);
  }
  bool closing() const noexcept { return state_.load(std::memory_order_relaxed) == State::closing; }
  void retire() { relay_.retire(this); }

 public:
  /// Registers with the relay; false when it is full.
  bool admit() { return relay_.admit(this); }
  bool dial_failed() const noexcept { return dial_failed_; }
  bool is_closing() const noexcept { return closing(); }

 protected:
  bool dial_failed_ = false;

  Relay& relay_;
  const FlowMeta meta_;
  const boost::asio::any_io_executor ex_;
  const boost::asio::execution_context* context_;
  std::atomic<std::int64_t> last_active_{0};
  std::atomic<std::uint64_t> bytes_up_{0}, bytes_down_{0}, queued_up_{0}, queued_down_{0}, queued_peak_{0}, dropped_{0};
  std::atomic<State> state_{State::connecting};
  std::string reason_;

 private:
  std::int64_t since_adopted_us() const noexcept {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - adopted_at_).count();
  }
  /// The kernel's smoothed RTT of a TCP socket (TCP_INFO), if it is one.
  static std::optional<std::uint32_t> smoothed_rtt_us(int fd) noexcept;

  const std::chrono::steady_clock::time_point adopted_at_ = std::chrono::steady_clock::now();
  std::atomic<std::int64_t> dial_us_{-1}, first_byte_us_{-1};
  std::atomic<int> app_fd_{-1}, up_fd_{-1};
  std::atomic<const char*> via_{nullptr};  // until the dial succeeds
};

}  // namespace flowrelay::relay::detail
