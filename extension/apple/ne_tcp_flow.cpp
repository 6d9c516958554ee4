#include "extension/apple/ne_tcp_flow.hpp"

#include "extension/apple/ne_flow_state.hpp"
#include "buffers/watermark.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <mutex>
#include <optional>

namespace flowrelay::apple {

namespace asio = boost::asio;
using boost::system::error_code;

struct NeTcpFlow::State final : detail::NeFlowState<NeTcpFlow::State> {
  State(std::shared_ptr<ReactorPort> p, std::unique_ptr<NeTcpFlowOps> o, std::size_t watermark)
      : NeFlowState(std::move(p)), ops(std::move(o)), high(watermark), in_flight(watermark) {}

  // ---- Written by completions on any thread, under `mu` (with the open's result in the base).
  bool read_ready = false;
  NeBytes read_bytes;
  NeFlowError read_error = NeFlowError::none;
  std::uint64_t written = 0;
  std::uint32_t write_completions = 0;
  NeFlowError write_error = NeFlowError::none;

  // ---- The shard's thread only.
  enum class Phase : std::uint8_t { opening, open, failed };
  std::unique_ptr<NeTcpFlowOps> ops;
  NeTcpFlow* owner = nullptr;  // null once the flow object is gone
  Phase phase = Phase::opening;
  std::size_t high;
  bool read_pending = false;
  bool eof = false;
  error_code error;      // the flow failed (open, read or write) or was aborted
  bool aborted = false;  // ended from our side: readiness reports operation_aborted
  buffers::Chain inbound;
  buffers::Watermark in_flight;
  std::size_t in_flight_bytes = 0;
  std::uint32_t writes_pending = 0;
  std::optional<NeFlowError> want_close_read, want_close_write;
  bool read_closed = false, write_closed = false;
  ReadyFn ready_fn = nullptr;
  void* ready_context = nullptr;

  // ---- Completions (any thread).
  static void on_read(detail::NeCompletionTarget& t, std::uint64_t, NeBytes bytes, NeFlowError e) {
    auto& s = of(t);
    std::lock_guard lk(s.mu);
    s.read_ready = true;
    s.read_bytes = std::move(bytes);
    s.read_error = e;
    s.wake_locked();
  }
  static void on_written(detail::NeCompletionTarget& t, std::uint64_t bytes, NeFlowError e) {
    auto& s = of(t);
    std::lock_guard lk(s.mu);
    s.written += bytes;
    ++s.write_completions;
    if (e != NeFlowError::none && s.write_error == NeFlowError::none) s.write_error = e;
    s.wake_locked();
  }

  // ---- The shard's thread.
  void wake() {
    std::optional<NeFlowError> open_result;
    bool got_read = false;
    NeBytes bytes;
    NeFlowError read_err = NeFlowError::none, write_err = NeFlowError::none;
    std::uint64_t done_bytes = 0;
    std::uint32_t done_writes = 0;
    {
      std::lock_guard lk(mu);
      wake_posted = false;
      open_result = std::exchange(opened, std::nullopt);
      got_read = std::exchange(read_ready, false);
      bytes = std::move(read_bytes);
      read_err = read_error;
      done_bytes = std::exchange(written, 0);
      done_writes = std::exchange(write_completions, 0);
      write_err = std::exchange(write_error, NeFlowError::none);
    }
    if (open_result) {
      phase = *open_result == NeFlowError::none ? Phase::open : Phase::failed;
      if (phase == Phase::failed) fail(to_error_code(*open_result));
    }
    if (done_writes > 0) {
      in_flight_bytes -= done_bytes;
      writes_pending -= done_writes;
      in_flight.update(in_flight_bytes);
      if (write_err != NeFlowError::none) fail(to_error_code(write_err));
    }
    if (got_read) {
      read_pending = false;
      if (read_err != NeFlowError::none) {
        fail(to_error_code(read_err));
      } else if (bytes.empty()) {
        eof = true;
      } else if (!error && !read_closed) {
        auto b = std::move(bytes).into_buffer(*buffers::Pool::local());
        if (b) inbound.append(std::move(b));
        else fail(asio::error::no_buffer_space);
      }
    }
    settle();
    if (ready_fn != nullptr && readable()) fire_ready();
    if (owner != nullptr && owner->writer_waiting_ && (writable() || error)) owner->writable_.cancel();
  }

  bool readable() const { return !inbound.empty() || eof || error; }
  bool writable() const { return phase == Phase::open && !in_flight.above(); }

  void fail(error_code ec) {
    if (!error) error = ec;
    inbound.clear();
  }

  void fire_ready() {
    auto fn = std::exchange(ready_fn, nullptr);
    if (fn == nullptr) return;
    fn(ready_context, aborted ? error_code(asio::error::operation_aborted) : error_code());
  }

  // Issues what the state calls for: the next read, and the closes that were waiting for the open
  // (both) or for the writes in flight (the write side; a reset does not wait).
  void settle() {
    if (phase == Phase::opening) return;
    if (want_close_read && !read_closed) {
      read_closed = true;
      ops->close_read(*want_close_read);
    }
    if (want_close_write && !write_closed && (writes_pending == 0 || *want_close_write != NeFlowError::none)) {
      write_closed = true;
      ops->close_write(*want_close_write);
    }
    if (phase == Phase::open && !read_pending && !eof && !error && !read_closed && !want_close_read &&
        inbound.size() < high) {
      read_pending = true;
      ops->read(completion<NeBytes, NeFlowError>(&State::on_read));
    }
  }

  void end(NeFlowError how) {
    if (!want_close_read) want_close_read = how;
    if (!want_close_write || how != NeFlowError::none) want_close_write = how;
    settle();
  }
};

NeTcpFlow::NeTcpFlow(std::shared_ptr<ReactorPort> port, std::unique_ptr<NeTcpFlowOps> ops, std::size_t watermark)
    : s_(new State(port, std::move(ops), watermark)), writable_(port->context()) {
  s_->owner = this;
  s_->ops->open(s_->completion<NeFlowError>(&State::on_open));
}

NeTcpFlow::~NeTcpFlow() {
  if (!s_->want_close_read || !s_->want_close_write) abort(true);
  s_->owner = nullptr;
  s_->ready_fn = nullptr;  // the relay retires a flow only after its callbacks ran; nothing may call back now
  s_->inbound.clear();  // chunks go back while their pool certainly lives
}

void NeTcpFlow::on_readable(ReadyFn fn, void* context) {
  auto& s = *s_;
  s.ready_fn = fn;
  s.ready_context = context;
  if (s.readable() || s.aborted) s.port->post([self = s_] { self->fire_ready(); });
}

asio::awaitable<error_code> NeTcpFlow::wait_writable() {
  for (;;) {
    if (s_->aborted) co_return asio::error::operation_aborted;
    if (s_->error) co_return s_->error;
    if (s_->writable()) co_return error_code{};
    writer_waiting_ = true;
    writable_.expires_at(asio::steady_timer::time_point::max());
    co_await writable_.async_wait(asio::as_tuple(asio::use_awaitable));
    writer_waiting_ = false;
  }
}

relay::IoResult NeTcpFlow::read(buffers::Chain& into, std::size_t max) {
  auto& s = *s_;
  relay::IoResult r;
  if (s.error) {
    r.ec = s.aborted ? error_code(asio::error::operation_aborted) : s.error;
    return r;
  }
  while (!s.inbound.empty() && r.bytes < max) {
    const std::size_t room = max - r.bytes;
    if (s.inbound.front().size() <= room) {
      r.bytes += s.inbound.front().size();
      into.append(s.inbound.pop_front());
    } else {
      into.append(s.inbound.front().slice(0, room));
      s.inbound.consume(room);
      r.bytes += room;
    }
  }
  r.eof = s.inbound.empty() && s.eof;
  r.would_block = s.inbound.empty() && !s.eof;
  s.settle();  // room again: the next NE read
  return r;
}

relay::IoResult NeTcpFlow::write(buffers::Chain& from) {
  auto& s = *s_;
  relay::IoResult r;
  if (s.error) {
    r.ec = s.aborted ? error_code(asio::error::operation_aborted) : s.error;
    return r;
  }
  while (s.phase == State::Phase::open && !from.empty() && s.in_flight_bytes < s.high) {
    const std::size_t room = s.high - s.in_flight_bytes;
    buffers::Buffer b;
    if (from.front().size() <= room) {
      b = from.pop_front();
    } else {
      b = from.front().slice(0, room);
      from.consume(room);
    }
    const std::size_t n = b.size();
    s.in_flight_bytes += n;
    ++s.writes_pending;
    s.in_flight.update(s.in_flight_bytes);
    r.bytes += n;
    s.ops->write(std::move(b), s.completion<NeFlowError>(&State::on_written, n));
  }
  r.would_block = !from.empty();
  return r;
}

void NeTcpFlow::shutdown_write() {
  auto& s = *s_;
  if (!s.want_close_write) s.want_close_write = NeFlowError::none;
  s.settle();
}

void NeTcpFlow::abort(bool reset) {
  auto& s = *s_;
  if (!reset) {
    close();
    return;
  }
  if (!s.aborted) {
    s.aborted = true;
    s.fail(asio::error::operation_aborted);
  }
  s.end(NeFlowError::aborted);
  if (s.ready_fn != nullptr) s.port->post([self = s_] { self->fire_ready(); });
  if (writer_waiting_) writable_.cancel();
}

void NeTcpFlow::close() { s_->end(NeFlowError::none); }

}  // namespace flowrelay::apple
