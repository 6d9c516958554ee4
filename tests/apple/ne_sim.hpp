#pragma once
// A strict NE simulator: NeTcpFlowOps and NeUdpFlowOps behaving as Apple's headers document
// NEAppProxyTCPFlow and NEAppProxyUDPFlow, with completions delivered the way a test asks (on the
// calling thread, on other threads, late, or held back and released in bursts).
//
// Every call the headers do not allow fails the running test at once and is listed: a read or
// write before the open completed, a second read while one is pending, a read after EOF or after
// closeRead, a write after closeWrite, a half-close twice, an open twice. Once the simulated
// system has closed a flow itself (the provider stopped), calls get errors, as on macOS.
//
// Each flow has an app side the test drives: what the app sends (scripted, or generated and hashed
// on the fly), what it received (hashed, optionally kept), whether it saw EOF or a reset.

#include "extension/apple/ne_flow_ops.hpp"
#include "tests/support/net.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay::apple::sim {

using namespace std::chrono_literals;

/// How completions reach the bridge.
enum class Delivery {
  inline_call,   // before the call that started the operation returns, on the caller's thread
  other_thread,  // on one of two system threads, at once
  late,          // on a system thread, `delay` later
  burst,         // held until `burst` are queued (or 2 ms passed), then all at once
};
const char* to_string(Delivery d);

/// The system's queues: two threads running completions in due order.
class Deliverer {
 public:
  explicit Deliverer(Delivery mode, std::chrono::microseconds delay = 300us, std::size_t burst = 16);
  ~Deliverer();  // runs what is still queued, then joins
  Deliverer(const Deliverer&) = delete;
  Deliverer& operator=(const Deliverer&) = delete;

  void operator()(std::function<void()> fn);
  Delivery mode() const { return mode_; }
  /// Waits until nothing is queued, held or running. A completion may hold a relay Buffer (NE
  /// keeps the NSData until the write completes), so a test quiesces before its reactor's pools go.
  void quiesce();
  /// quiesce() on every live Deliverer: what a harness calls before it stops its reactor.
  static void quiesce_all();

 private:
  using Clock = std::chrono::steady_clock;
  struct Item {
    Clock::time_point due;
    std::uint64_t seq;
    std::function<void()> fn;
    bool operator>(const Item& o) const { return due != o.due ? due > o.due : seq > o.seq; }
  };
  void run();

  Delivery mode_;
  std::chrono::microseconds delay_;
  std::size_t burst_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue_;
  std::vector<Item> held_;  // burst mode
  Clock::time_point held_since_{};
  std::uint64_t seq_ = 0;
  std::size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

/// One test's simulated system: its queues, the rules broken so far, and the "NSData" it lent.
class SimEnv {
 public:
  explicit SimEnv(Delivery d = Delivery::other_thread, std::chrono::microseconds delay = 300us, std::size_t burst = 16)
      : deliver(d, delay, burst) {}
  ~SimEnv() = default;

  /// Fails the running test (any thread) and records `what`.
  void violation(std::string what);
  std::vector<std::string> violations() const;

  /// Fresh memory holding a copy of [p, p + n): what NE would hand over as an NSData.
  NeBytes make_bytes(const void* p, std::size_t n);
  /// NeBytes handed out and not yet given back.
  std::int64_t bytes_lent() const { return lent_.load(); }
  /// Waits until every NeBytes handed out has been given back.
  bool wait_all_given_back(std::chrono::milliseconds timeout = 10s);

  Deliverer deliver;

 private:
  static void give_back(void* env, std::byte* data, std::size_t) noexcept;
  mutable std::mutex mu_;
  std::condition_variable returned_;
  std::vector<std::string> violations_;
  std::atomic<std::int64_t> lent_{0};
};

/// Waits (condition variable, no polling) until `pred` holds or `timeout` passes.
template <typename Pred>
bool wait_until(std::mutex& mu, std::condition_variable& cv, std::chrono::milliseconds timeout, Pred pred) {
  std::unique_lock lk(mu);
  return cv.wait_for(lk, timeout, pred);
}

/// What both simulated flows share: the open, the one-read-outstanding rule, the half-close rule,
/// and the state the app side waits on. `Payload` is what a read hands over.
template <typename Payload>
class SimFlow {
 public:
  bool wait_opened(std::chrono::milliseconds timeout = 10s) {
    return wait_until(mu_, cv_, timeout, [&] { return opened_; });
  }
  bool wait_closed(std::chrono::milliseconds timeout = 10s) {  // both sides closed by the provider
    return wait_until(mu_, cv_, timeout, [&] { return read_closed_ && write_closed_; });
  }
  bool read_closed() const {
    std::lock_guard lk(mu_);
    return read_closed_;
  }
  bool write_closed() const {
    std::lock_guard lk(mu_);
    return write_closed_;
  }
  std::size_t reads() const {
    std::lock_guard lk(mu_);
    return reads_;
  }

 protected:
  using ReadDone = NeCompletion<Payload, NeFlowError>;
  SimFlow(std::shared_ptr<SimEnv> env, NeFlowError open_result, std::string kind)
      : env_(std::move(env)), open_result_(open_result), kind_(std::move(kind)) {}
  virtual ~SimFlow() = default;
  /// The derived flow, kept alive by a delivery.
  virtual std::shared_ptr<SimFlow> self() = 0;
  /// What the pending read hands over now, if anything (mu_ held): a delivery to run after
  /// unlocking, or null to keep the read pending.
  virtual std::function<void()> next_read_locked() = 0;

  void open(NeCompletion<NeFlowError> done);
  void read(ReadDone done, const char* selector);
  /// A delivery completing the outstanding read; only once it ran may the next read come.
  std::function<void()> finish_read(ReadDone done, std::shared_ptr<Payload> payload, NeFlowError e);
  /// close_read()'s bookkeeping (mu_ held): a pending read completes with an error.
  std::function<void()> close_read_locked(const char* selector);
  void close_write_locked(const char* selector);
  void deliver_all(std::vector<std::function<void()>> fns);

  std::shared_ptr<SimEnv> env_;
  NeFlowError open_result_;
  std::string kind_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_called_ = false, opened_ = false, read_closed_ = false, write_closed_ = false;
  bool eof_delivered_ = false, system_closed_ = false;
  bool read_outstanding_ = false;  // from read() until its completion has run
  std::optional<ReadDone> pending_read_;
  std::size_t reads_ = 0;
};

/// One simulated NEAppProxyTCPFlow and the app socket behind it.
class SimTcp : public SimFlow<NeBytes>, public std::enable_shared_from_this<SimTcp> {
 public:
  struct Options {
    NeFlowError open_result = NeFlowError::none;
    bool stall_writes = false;       // the app reads nothing: write completions never come
    bool keep_received = true;       // keep the bytes (small tests); a hash is kept always
    std::size_t max_read = 64 * 1024;  // bytes per read completion at most
  };
  SimTcp(std::shared_ptr<SimEnv> env, Options options);
  explicit SimTcp(std::shared_ptr<SimEnv> env) : SimTcp(std::move(env), Options{}) {}

  /// The ops object the provider takes (it shares this flow).
  std::unique_ptr<NeTcpFlowOps> ops();

  // ---- The app's side (the test).
  void app_send(std::string bytes);
  /// The app streams `total` pseudo-random bytes (made as the provider reads them), then EOF if
  /// `then_eof`. The SHA-256 of what was sent is sent_hash() once all went out.
  void app_stream(std::uint64_t total, std::uint64_t seed, bool then_eof);
  void app_shutdown_write();  // EOF for the provider's next read, after what is queued
  void app_reset();           // the app's socket is reset: reads and writes fail
  void release_writes();      // a stalled app starts reading: pending completions run
  /// The system tears the flow down (the provider stopped): pending completions fail, calls fail.
  void system_close();

  bool wait_received(std::size_t n, std::chrono::milliseconds timeout = 10s);
  bool wait_write_closed(std::chrono::milliseconds timeout = 10s);
  bool wait_stream_sent(std::chrono::milliseconds timeout = 60s);
  bool wait_in_flight_at_least(std::size_t n, std::chrono::milliseconds timeout = 10s);
  /// The next line the app received (without its newline), waiting for it; nullopt when the flow
  /// was closed or reset first, or on timeout.
  std::optional<std::string> app_read_line(std::chrono::milliseconds timeout = 10s);
  /// The provider or the system closed or reset the flow under the app.
  bool ended() const;

  std::string received() const;
  std::uint64_t received_bytes() const;
  std::string received_hash();
  std::string sent_hash() const;
  bool eof_seen() const;    // closeWrite with no error: the app read EOF
  bool reset_seen() const;  // a close with an error: the app saw a reset
  NeFlowError write_close_error() const;
  std::size_t max_in_flight() const;
  std::size_t in_flight() const;
  std::size_t writes() const;
  /// Data pointers of the first reads handed out / writes received, and whether every written
  /// buffer was a pool chunk (never a copy into foreign memory).
  std::vector<const std::byte*> read_pointers() const;
  std::vector<const std::byte*> write_pointers() const;
  bool writes_were_chunks() const;

 private:
  friend class SimTcpOps;
  std::shared_ptr<SimFlow> self() override { return shared_from_this(); }
  std::function<void()> next_read_locked() override;
  void write(buffers::Buffer bytes, NeCompletion<NeFlowError> done);
  void close_read(NeFlowError e);
  void close_write(NeFlowError e);

  Options options_;

  // provider side
  NeFlowError write_close_error_ = NeFlowError::none;
  bool reset_seen_ = false;
  std::size_t writes_ = 0;

  // app -> provider
  std::deque<std::string> app_out_;
  bool app_shut_ = false, app_reset_ = false;
  std::uint64_t stream_left_ = 0;
  bool stream_eof_ = false;
  std::mt19937_64 stream_rng_;
  flowrelay::test::Sha256 stream_hash_;
  std::string stream_digest_;
  std::vector<const std::byte*> read_pointers_;

  // provider -> app
  std::size_t line_cursor_ = 0;  // app_read_line() has consumed received_ up to here
  std::string received_;
  std::uint64_t received_bytes_ = 0;
  flowrelay::test::Sha256 received_hash_;
  std::string received_digest_;
  std::vector<const std::byte*> write_pointers_;
  bool writes_were_chunks_ = true;
  std::size_t in_flight_ = 0, max_in_flight_ = 0;
  std::vector<std::function<void()>> stalled_;
};

/// One simulated NEAppProxyUDPFlow and the app socket behind it.
class SimUdp : public SimFlow<NeDatagramBatch>, public std::enable_shared_from_this<SimUdp> {
 public:
  struct Options {
    NeFlowError open_result = NeFlowError::none;
    int nil_reads = 0;             // the first N reads with nothing queued complete with nil arrays
    bool stall_writes = false;     // write completions never come
    std::size_t max_batch = 16;    // datagrams per read completion at most
  };
  struct Reply {
    std::string payload;
    relay::Endpoint from;
  };
  SimUdp(std::shared_ptr<SimEnv> env, Options options);
  explicit SimUdp(std::shared_ptr<SimEnv> env) : SimUdp(std::move(env), Options{}) {}

  std::unique_ptr<NeUdpFlowOps> ops();

  void app_send(std::string payload, relay::Endpoint to);
  void app_close();  // the app closed its socket: the next read completes with empty arrays
  void system_close();
  void release_writes();

  bool wait_replies(std::size_t n, std::chrono::milliseconds timeout = 10s);
  bool wait_in_flight_writes(std::size_t n, std::chrono::milliseconds timeout = 10s);
  std::vector<Reply> replies() const;
  /// Waits for the n-th reply; nullopt when the flow was closed first, or on timeout.
  std::optional<Reply> wait_reply(std::size_t n, std::chrono::milliseconds timeout = 10s);
  bool closed() const;  // both sides closed by the provider
  std::size_t nil_delivered() const;
  std::size_t stalled_writes() const;
  bool replies_were_chunks() const;  // every reply NE got viewed a pool chunk (no copy)

 private:
  friend class SimUdpOps;
  std::shared_ptr<SimFlow> self() override { return shared_from_this(); }
  std::function<void()> next_read_locked() override;
  void write(std::span<const relay::Datagram> datagrams, NeCompletion<NeFlowError> done);
  void close_read(NeFlowError e);
  void close_write(NeFlowError e);

  Options options_;
  bool app_closed_ = false;
  std::deque<std::pair<std::string, relay::Endpoint>> app_out_;
  std::vector<Reply> replies_;
  std::size_t nil_delivered_ = 0;
  bool replies_were_chunks_ = true;
  std::vector<std::function<void()>> stalled_;
};

}  // namespace flowrelay::apple::sim
