// The TCP bridge: dial, then one pump per direction.
//
// A pump waits for the source to become readable holding no buffer, reads what is there (up to the
// room left under the high watermark), and writes it on. It blocks on the writer only while bytes
// are queued, and reads more before the queue is empty only while it is under the low watermark:
// a slow reader stops the pump at high watermark + one chunk, never later.
//
// EOF from one side becomes shutdown(SHUT_WR) on the other once the queue is flushed; the other
// direction keeps flowing. A reset or write failure on either side resets both.

#include "relay/detail/flow_base.hpp"
#include "relay/relay.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <spdlog/spdlog.h>

namespace flowrelay::relay {
namespace detail {

namespace asio = boost::asio;
using boost::system::error_code;

std::shared_ptr<spdlog::logger> relay_log();

class TcpBridge final : public FlowBase {
 public:
  TcpBridge(Relay& relay, FlowMeta meta, asio::any_io_executor ex, std::unique_ptr<TcpFlow> app)
      : FlowBase(relay, std::move(meta), std::move(ex)), app_(std::move(app)) {}

  void start() { spawn(run()); }

  void close(std::string reason) override {
    if (!begin_closing(std::move(reason))) return;
    app_->abort(true);
    if (up_) up_->abort(true);
  }

  void destroy() override { delete this; }

  /// The relay is full: reset the app and forget the flow.
  void reject() {
    app_->abort(true);
    delete this;
  }

 private:
  void spawn(asio::awaitable<void> task) {
    ++running_;
    asio::co_spawn(ex_, std::move(task), [this](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          relay_log()->error("flow {} epoch {}: pump failed: {}", meta_.id, meta_.epoch, x.what());
        }
        close("internal error");
      }
      if (--running_ == 0) finish();
    });
  }

  asio::awaitable<void> run() {
    auto [ec, up] = co_await relay_.egress().dial_tcp(meta_, ex_);
    if (closing()) {  // released while dialling
      if (up) up->abort(true);
      co_return;
    }
    if (ec) {
      relay_log()->info("flow {} epoch {}: dial {} failed: {}", meta_.id, meta_.epoch, meta_.dst.to_string(),
                        ec.message());
      dial_failed_ = true;
      close("dial failed: " + ec.message());
      co_return;
    }
    up_ = std::move(up);
    set_open();
    spawn(pump(*app_, *up_, up_queue_, bytes_up_, queued_up_));
    spawn(pump(*up_, *app_, down_queue_, bytes_down_, queued_down_));
  }

  asio::awaitable<void> pump(TcpFlow& from, TcpFlow& to, buffers::Chain& q, std::atomic<std::uint64_t>& bytes,
                             std::atomic<std::uint64_t>& queued) {
    const std::size_t high = relay_.options().flow_buffer_bytes;
    const std::size_t low = high / 2;
    bool eof = false;
    bool drained = true;  // the last read emptied the source: wait before reading again
    for (;;) {
      if (q.empty()) {
        if (eof) {
          to.shutdown_write();
          co_return;
        }
        // After a read that filled every chunk there is most likely more: read again straight
        // away instead of a round trip through epoll.
        if (drained) {
          if (co_await from.wait_readable()) co_return;  // torn down
          if (closing()) co_return;
        }
      }
      drained = eof;
      if (!eof && q.size() < high) {
        const IoResult r = from.read(q, high - q.size());
        if (r.ec) {
          fail(r.ec, "read");
          co_return;
        }
        if (r.bytes > 0) {
          add(bytes, r.bytes);
          touch();
        }
        eof = r.eof;
        drained = r.would_block || r.eof;
        note_queued(queued, q.size());
      }
      while (!q.empty()) {
        const IoResult w = to.write(q);
        if (w.ec) {
          fail(w.ec, "write");
          co_return;
        }
        note_queued(queued, q.size());
        if (q.empty()) break;
        if (!drained && q.size() <= low) break;  // room to read more before waiting on the writer
        if (co_await to.wait_writable()) co_return;
        if (closing()) co_return;
      }
    }
  }

  void fail(const error_code& ec, const char* what) {
    if (closing()) return;
    relay_log()->debug("flow {} epoch {}: {} failed: {}", meta_.id, meta_.epoch, what, ec.message());
    close(std::string(what) + ": " + ec.message());
  }

  void finish() {
    if (!closing()) {
      begin_closing("closed");
      app_->close();
      if (up_) up_->close();
    }
    retire();
  }

  std::unique_ptr<TcpFlow> app_;
  std::unique_ptr<TcpFlow> up_;
  buffers::Chain up_queue_;    // app -> destination
  buffers::Chain down_queue_;  // destination -> app
  int running_ = 0;
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
