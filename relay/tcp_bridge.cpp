// The TCP bridge: dial, then one coroutine pump per direction.
//
// A pump reads what its source has (up to the room left under the high watermark) and writes it
// on. It blocks on the writer only while bytes are queued, and reads more before the queue is
// empty only while it is under the low watermark: a slow reader stops the pump at high watermark
// + one chunk, never later.
//
// When the source is drained and the queue is empty the pump coroutine ends and the direction
// parks on a plain readiness callback; readiness spawns the pump again. An idle flow therefore
// holds two pending readiness waits and its record: no chunk, no coroutine frame.
//
// EOF from one side becomes shutdown(SHUT_WR) on the other once the queue is flushed; the other
// direction keeps flowing. A reset or write failure on either side resets both.

#include "relay/detail/bridges.hpp"
#include "relay/detail/flow_base.hpp"
#include "relay/log.hpp"
#include "relay/relay.hpp"
#include "relay/splice_pipe.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace flowrelay::relay {
namespace detail {

namespace asio = boost::asio;
using boost::system::error_code;


// A pump that never has to wait (fast sender, fast receiver) yields after this many reads, so one
// bulk flow cannot starve the other flows, timers and posted work of its shard.
constexpr int kTurnsPerYield = 16;
// How long a flow that found no chunk (buffer budget spent) waits before it reads again.
constexpr auto kBufferRetry = std::chrono::milliseconds(5);

class TcpBridge final : public FlowBase {
 public:
  TcpBridge(Relay& relay, FlowMeta meta, asio::any_io_executor ex, std::unique_ptr<TcpFlow> app)
      : FlowBase(relay, std::move(meta), std::move(ex)), app_(std::move(app)) {}

  void start() {
    ++live_;
    asio::co_spawn(ex_, dial(),
                   asio::bind_cancellation_slot(dial_cancel_.slot(), [this](std::exception_ptr e) { ended(e, "dial"); }));
  }

  void close(std::string reason) override {
    if (!begin_closing(std::move(reason))) return;
    set_profile_fds(-1, -1);  // a snapshot must not read sockets about to close
    app_->abort(true);
    if (up_) {
      up_->abort(true);
    } else {
      dial_cancel_.emit(asio::cancellation_type::terminal);  // a release must not wait out the dial
    }
  }

  void destroy() override { delete this; }

  /// The relay is full: reset the app and forget the flow.
  void reject() {
    app_->abort(true);
    delete this;
  }

 private:
  /// One direction's state; it outlives the pump coroutines that work on it.
  struct Direction {
    TcpBridge* bridge = nullptr;
    TcpFlow* from = nullptr;
    TcpFlow* to = nullptr;
    std::atomic<std::uint64_t>* bytes = nullptr;
    std::atomic<std::uint64_t>* queued = nullptr;
    buffers::Chain queue;
    SplicePipe pipe;  // held while splicing; given back when the direction parks
    bool eof = false;
    bool starved = false;  // the last read found no chunk: the shard's buffer budget is spent
  };

  asio::awaitable<void> dial() {
    auto [ec, up, via] = co_await relay_.egress().dial_tcp(meta_, ex_);
    if (closing()) {  // released while dialling
      if (up) up->abort(true);
      co_return;
    }
    if (ec) {
      static LogLimiter limit(20);  // a destination that refuses everything must not flood the log
      if (std::uint64_t held = 0; limit.allow(held))
        relay_log()->info("flow {} epoch {}: dial {} failed: {} ({} more failed dials not logged)", meta_.id,
                          meta_.epoch, meta_.dst.to_string(), ec.message(), held);
      dial_failed_ = true;
      close("dial failed: " + ec.message());
      co_return;
    }
    up_ = std::move(up);
    note_dialled(via);
    set_profile_fds(app_->native_handle(), up_->native_handle());
    upstream_ = Direction{this, app_.get(), up_.get(), &bytes_up_, &queued_up_, {}, {}, false};
    downstream_ = Direction{this, up_.get(), app_.get(), &bytes_down_, &queued_down_, {}, {}, false};
    set_open();
    park(upstream_);
    park(downstream_);
  }

  // Waits for the source with nothing but a callback pending.
  void park(Direction& d) {
    ++live_;
    d.from->on_readable(&TcpBridge::readable, &d);
  }

  static void readable(void* context, const error_code& ec) {
    auto& d = *static_cast<Direction*>(context);
    TcpBridge& self = *d.bridge;
    if (ec || self.closing()) {
      self.ended(nullptr, "wait");
      return;
    }
    const int in = d.from->native_handle();
    const int out = d.to->native_handle();
    if (self.relay_.options().splice && in >= 0 && out >= 0 && d.queue.empty() && !d.pipe)
      d.pipe = SplicePipe::take(self.relay_.options().flow_buffer_bytes);
    if (d.pipe)
      self.start_pump(d, SpliceQueue{d.pipe, in, out});
    else
      self.start_pump(d, ChunkQueue{d});
  }

  enum class Step { park, pump, over };

  // One read and one write straight from the readiness callback: interactive traffic (a request,
  // its response) is done here and parks again without ever starting a coroutine. Whatever needs
  // more (a bulk transfer, a full writer) continues in the pump.
  template <typename Queue>
  void start_pump(Direction& d, Queue q) {
    const Step step = first_step(d, q);
    if (step == Step::pump) {
      asio::co_spawn(ex_, pump(d, q), [this, &d](std::exception_ptr e, bool idle) {
        after_pump(d, e == nullptr && idle ? Step::park : Step::over, e);
      });
      return;
    }
    after_pump(d, step, nullptr);
  }

  template <typename Queue>
  Step first_step(Direction& d, Queue& q) {
    bool drained = true;
    if (!read_into(d, q, drained) || !write_from(d, q)) return Step::over;
    if (q.held() > 0) return Step::pump;
    if (d.eof) {
      d.to->shutdown_write();
      return Step::over;
    }
    return drained ? Step::park : Step::pump;
  }

  // The two halves of every pump turn. False: the flow failed (and is closing).
  template <typename Queue>
  bool read_into(Direction& d, Queue& q, bool& drained) {
    const std::size_t high = relay_.options().flow_buffer_bytes;
    drained = d.eof;  // nothing more to read right now
    if (d.eof || q.held() >= high) return true;
    const IoResult r = q.fill(high - q.held());
    if (r.ec == asio::error::no_buffer_space) {  // not this flow's fault: it waits for memory
      d.starved = true;
      drained = false;
      return true;
    }
    if (r.ec) {
      fail(r.ec, "read");
      return false;
    }
    if (r.bytes > 0) {
      add(*d.bytes, r.bytes);
      touch();
      if (&d == &downstream_) note_first_byte();
    }
    d.eof = r.eof;
    drained = r.would_block || r.eof;
    note_queued(*d.queued, q.held());
    return true;
  }

  template <typename Queue>
  bool write_from(Direction& d, Queue& q) {
    if (q.held() == 0) return true;
    const IoResult w = q.drain();
    if (w.ec) {
      fail(w.ec, "write");
      return false;
    }
    note_queued(*d.queued, q.held());
    return true;
  }

  void after_pump(Direction& d, Step step, std::exception_ptr e) {
    if (d.pipe && d.pipe.held() == 0) SplicePipe::give_back(std::move(d.pipe));
    if (step == Step::park && !closing()) park(d);  // before ended(): the flow stays live
    ended(e, "pump");
  }

  // Where a direction's bytes wait between read and write: pooled chunks, or a splice pipe.
  struct ChunkQueue {
    Direction& d;
    std::size_t held() const { return d.queue.size(); }
    IoResult fill(std::size_t max) { return d.from->read(d.queue, max); }
    IoResult drain() { return d.to->write(d.queue); }
  };
  struct SpliceQueue {
    SplicePipe& pipe;
    int in;
    int out;
    std::size_t held() const { return pipe.held(); }
    IoResult fill(std::size_t max) { return pipe.fill(in, max); }
    IoResult drain() { return pipe.drain(out); }
  };

  /// Moves bytes until the source is drained and the queue empty (returns true: park), or the
  /// direction is over (EOF relayed, failure, teardown: returns false).
  template <typename Queue>
  asio::awaitable<bool> pump(Direction& d, Queue q) {
    const std::size_t low = relay_.options().flow_buffer_bytes / 2;
    for (int turn = 1;; ++turn) {
      if (turn % kTurnsPerYield == 0) {
        co_await asio::post(ex_, asio::use_awaitable);  // let the shard's other flows run
        if (closing()) co_return false;
      }
      bool drained = true;
      if (!read_into(d, q, drained)) co_return false;
      while (q.held() > 0) {
        if (!write_from(d, q)) co_return false;
        if (q.held() == 0) break;
        if (!drained && q.held() <= low) break;  // room to read more before waiting on the writer
        if (co_await d.to->wait_writable()) co_return false;  // torn down
        if (closing()) co_return false;
      }
      if (d.eof) {
        d.to->shutdown_write();
        co_return false;
      }
      if (d.starved && q.held() == 0) {
        // Every chunk of this shard's budget is queued in some flow: try again once writers had
        // a moment to drain theirs. Only under memory pressure, so a timer per wait is fine.
        d.starved = false;
        relay_.note_buffer_wait();
        asio::steady_timer retry(ex_, kBufferRetry);
        co_await retry.async_wait(asio::as_tuple(asio::use_awaitable));
        if (closing()) co_return false;
        continue;
      }
      d.starved = false;
      // After a read that filled every chunk there is most likely more: read again straight away
      // instead of a round trip through epoll. Otherwise park.
      if (drained) co_return true;
    }
  }

  void fail(const error_code& ec, const char* what) {
    if (closing()) return;
    relay_log()->debug("flow {} epoch {}: {} failed: {}", meta_.id, meta_.epoch, what, ec.message());
    close(std::string(what) + ": " + ec.message());
  }

  // One of the flow's activities (dial, a parked wait, a pump run) is over.
  void ended(std::exception_ptr e, const char* what) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        relay_log()->error("flow {} epoch {}: {} failed: {}", meta_.id, meta_.epoch, what, x.what());
      }
      close("internal error");
    }
    if (--live_ > 0) return;
    if (!closing()) {
      begin_closing("closed");
      set_profile_fds(-1, -1);
      app_->close();
      if (up_) up_->close();
    }
    retire();
  }

  std::unique_ptr<TcpFlow> app_;
  std::unique_ptr<TcpFlow> up_;
  Direction upstream_;    // app -> destination
  Direction downstream_;  // destination -> app
  int live_ = 0;          // dial, parked waits and running pumps
  asio::cancellation_signal dial_cancel_;
};

void start_tcp_bridge(Relay& relay, FlowMeta meta, asio::any_io_executor ex, std::unique_ptr<TcpFlow> app) {
  auto* bridge = new TcpBridge(relay, std::move(meta), std::move(ex), std::move(app));
  if (!bridge->admit()) {
    bridge->reject();
    return;
  }
  bridge->start();
}

}  // namespace detail
}  // namespace flowrelay::relay
