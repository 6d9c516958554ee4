#include "extension/apple/ne_udp_flow.hpp"

#include "extension/apple/ne_flow_state.hpp"
#include <mutex>
#include <optional>
#include <vector>

namespace flowrelay::apple {

namespace {
// Replies per NE write at most; a fuller turn writes at once and starts the next batch.
constexpr std::size_t kMaxBatch = 64;
}  // namespace

struct NeUdpFlow::State final : detail::NeFlowState<NeUdpFlow::State> {
  State(std::shared_ptr<ReactorPort> p, relay::Relay& r, std::unique_ptr<NeUdpFlowOps> o, std::size_t watermark)
      : NeFlowState(std::move(p)), relay(r), ops(std::move(o)), high(watermark) {
    out.reserve(kMaxBatch);
  }

  // ---- Written by completions on any thread, under `mu` (with the open's result in the base).
  bool read_ready = false;
  NeDatagramBatch read_batch;
  NeFlowError read_error = NeFlowError::none;
  std::uint64_t written = 0;
  std::uint32_t write_completions = 0;

  // ---- The shard's thread only.
  enum class Phase : std::uint8_t { opening, open, over };
  relay::Relay& relay;
  std::unique_ptr<NeUdpFlowOps> ops;
  Phase phase = Phase::opening;
  std::size_t high;
  bool started = false;
  bool read_pending = false;
  bool flush_posted = false;
  bool reads_over = false;  // EOF or a failure from the app's side: no more reads
  bool want_close = false;  // the association ended (or the flow object went): close both sides
  NeFlowError close_error = NeFlowError::none;
  bool closes_sent = false;
  std::weak_ptr<relay::UdpAssociation> association;
  relay::FlowId id = 0;
  std::vector<relay::Datagram> out;  // replies of this turn, not yet written
  std::size_t out_bytes = 0;
  std::size_t in_flight_bytes = 0;
  NeUdpFlowCounters counters;

  static void on_read(detail::NeCompletionTarget& t, std::uint64_t, NeDatagramBatch batch, NeFlowError e) {
    auto& s = of(t);
    std::lock_guard lk(s.mu);
    s.read_ready = true;
    s.read_batch = std::move(batch);
    s.read_error = e;
    s.wake_locked();
  }
  static void on_written(detail::NeCompletionTarget& t, std::uint64_t bytes, NeFlowError) {
    // A failed write loses its datagrams, as UDP may; the next read reports a dead flow.
    auto& s = of(t);
    std::lock_guard lk(s.mu);
    s.written += bytes;
    ++s.write_completions;
    s.wake_locked();
  }

  void wake() {
    std::optional<NeFlowError> open_result;
    bool got_read = false;
    NeDatagramBatch batch;
    NeFlowError read_err = NeFlowError::none;
    std::uint64_t done_bytes = 0;
    {
      std::lock_guard lk(mu);
      wake_posted = false;
      open_result = std::exchange(opened, std::nullopt);
      got_read = std::exchange(read_ready, false);
      batch = std::move(read_batch);
      read_batch.reset();
      read_err = read_error;
      done_bytes = std::exchange(written, 0);
      write_completions = 0;
    }
    in_flight_bytes -= done_bytes;
    if (open_result) {
      if (*open_result == NeFlowError::none && phase == Phase::opening) {
        phase = Phase::open;
      } else if (*open_result != NeFlowError::none) {
        phase = Phase::over;
        end_association("open failed: " + std::string(to_string(*open_result)));
      }
    }
    if (got_read) {
      read_pending = false;
      if (read_err != NeFlowError::none) {
        end_association(std::string("app flow failed: ") + to_string(read_err));
      } else if (batch && batch->empty()) {
        end_association("app closed its flow");
      } else if (batch) {
        deliver(*batch);
      }
    }
    settle();
  }

  void deliver(std::vector<NeDatagram>& batch) {
    auto assoc = association.lock();
    for (auto& d : batch) {
      if (!assoc || want_close) break;  // the rest give their bytes back as `batch` goes
      auto b = std::move(d.payload).into_buffer(*buffers::Pool::local());
      if (!b) continue;  // an empty datagram, or no control block left: nothing to send
      ++counters.to_relay;
      assoc->from_app(relay::Datagram{std::move(b), d.endpoint});
    }
  }

  // The app's side is over (EOF, a read error, a failed open): read no more, and end the
  // association, whose closed() then closes the flow.
  void end_association(std::string reason) {
    if (reads_over) return;
    reads_over = true;
    if (id != 0) relay.release(id, std::move(reason));
    else want_close = true;
  }

  void settle() {
    if (phase == Phase::opening) return;
    if (want_close) {
      if (!closes_sent) {
        closes_sent = true;
        out.clear();
        ops->close_read(close_error);
        ops->close_write(close_error);
      }
      return;
    }
    if (phase == Phase::open && started && !read_pending && !reads_over) {
      read_pending = true;
      ops->read(completion<NeDatagramBatch, NeFlowError>(&State::on_read));
    }
  }

  void flush() {
    flush_posted = false;
    if (out.empty() || want_close || phase != Phase::open) {
      out.clear();
      out_bytes = 0;
      return;
    }
    const std::size_t bytes = out_bytes;
    in_flight_bytes += bytes;
    counters.to_app += out.size();
    ops->write(out, completion<NeFlowError>(&State::on_written, bytes));
    out.clear();  // keeps its capacity: the next turn's batch allocates nothing
    out_bytes = 0;
  }
};

NeUdpFlow::NeUdpFlow(std::shared_ptr<ReactorPort> port, relay::Relay& relay, std::unique_ptr<NeUdpFlowOps> ops,
                     std::size_t watermark)
    : s_(new State(std::move(port), relay, std::move(ops), watermark)) {
  s_->ops->open(s_->completion<NeFlowError>(&State::on_open));
}

NeUdpFlow::~NeUdpFlow() {
  auto& s = *s_;
  if (!s.want_close) {
    s.want_close = true;
    s.close_error = NeFlowError::aborted;
  }
  s.settle();
}

void NeUdpFlow::start(std::weak_ptr<relay::UdpAssociation> association, relay::FlowId id) {
  auto& s = *s_;
  s.association = std::move(association);
  s.id = id;
  s.started = true;
  s.settle();
}

bool NeUdpFlow::send_to_app(const relay::Datagram& d) {
  auto& s = *s_;
  if (s.phase != State::Phase::open || s.want_close) return false;
  if (s.in_flight_bytes + s.out_bytes + d.payload.size() > s.high) {
    ++s.counters.dropped_full;
    return false;
  }
  s.out.push_back(d);  // shares the reply's chunk
  s.out_bytes += d.payload.size();
  if (s.out.size() >= kMaxBatch) {
    s.flush();
  } else if (!s.flush_posted) {
    s.flush_posted = true;
    s.port->post([self = s_] { self->flush(); });
  }
  return true;
}

void NeUdpFlow::closed() {
  auto& s = *s_;
  s.want_close = true;
  s.association.reset();
  s.settle();
}

const NeUdpFlowCounters& NeUdpFlow::counters() const noexcept { return s_->counters; }

}  // namespace flowrelay::apple
