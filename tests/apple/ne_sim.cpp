#include "tests/apple/ne_sim.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>

namespace flowrelay::apple::sim {

const char* to_string(Delivery d) {
  switch (d) {
    case Delivery::inline_call: return "inline";
    case Delivery::other_thread: return "other_thread";
    case Delivery::late: return "late";
    case Delivery::burst: return "burst";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Deliverer

namespace {
std::mutex live_mu;
std::set<Deliverer*> live;
}  // namespace

Deliverer::Deliverer(Delivery mode, std::chrono::microseconds delay, std::size_t burst)
    : mode_(mode), delay_(delay), burst_(burst) {
  if (mode_ == Delivery::inline_call) return;
  for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { run(); });
  std::lock_guard lk(live_mu);
  live.insert(this);
}

void Deliverer::quiesce_all() {
  std::lock_guard lk(live_mu);
  for (auto* d : live) d->quiesce();
}

Deliverer::~Deliverer() {
  for (auto& t : threads_) {
    if (t.get_id() != std::this_thread::get_id()) continue;
    // The last reference to its SimEnv went with a completion: a test must quiesce() it first.
    std::fputs("sim::Deliverer destroyed by its own completion; quiesce() the SimEnv first\n", stderr);
    std::abort();
  }
  {
    std::lock_guard lk(live_mu);
    live.erase(this);
  }
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& h : held_) queue_.push(std::move(h));
    held_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Deliverer::operator()(std::function<void()> fn) {
  if (mode_ == Delivery::inline_call) {
    fn();
    return;
  }
  {
    std::lock_guard lk(mu_);
    const auto now = Clock::now();
    Item item{now, seq_++, std::move(fn)};
    switch (mode_) {
      case Delivery::inline_call:
      case Delivery::other_thread: queue_.push(std::move(item)); break;
      case Delivery::late:
        item.due = now + delay_;
        queue_.push(std::move(item));
        break;
      case Delivery::burst:
        if (held_.empty()) held_since_ = now;
        held_.push_back(std::move(item));
        if (held_.size() >= burst_) {
          for (auto& h : held_) queue_.push(std::move(h));
          held_.clear();
        }
        break;
    }
  }
  cv_.notify_all();
}

void Deliverer::quiesce() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return queue_.empty() && held_.empty() && running_ == 0; });
}

void Deliverer::run() {
  std::unique_lock lk(mu_);
  for (;;) {
    // A burst that stays short is released after 2 ms, so a lone completion cannot hang a flow.
    if (!held_.empty() && Clock::now() >= held_since_ + 2ms) {
      for (auto& h : held_) queue_.push(std::move(h));
      held_.clear();
    }
    if (!queue_.empty() && queue_.top().due <= Clock::now()) {
      auto fn = std::move(const_cast<Item&>(queue_.top()).fn);
      queue_.pop();
      ++running_;
      lk.unlock();
      fn();
      fn = nullptr;  // what it captured goes before quiesce() can return
      lk.lock();
      --running_;
      cv_.notify_all();
      continue;
    }
    if (stopping_ && queue_.empty()) return;
    auto wake = Clock::time_point::max();
    if (!queue_.empty()) wake = queue_.top().due;
    if (!held_.empty()) wake = std::min(wake, held_since_ + 2ms);
    if (wake == Clock::time_point::max()) cv_.wait(lk);
    else cv_.wait_until(lk, wake);
  }
}

// ---------------------------------------------------------------------------------------------
// SimEnv

void SimEnv::violation(std::string what) {
  ADD_FAILURE() << "NE rule broken: " << what;
  std::lock_guard lk(mu_);
  violations_.push_back(std::move(what));
}

std::vector<std::string> SimEnv::violations() const {
  std::lock_guard lk(mu_);
  return violations_;
}

NeBytes SimEnv::make_bytes(const void* p, std::size_t n) {
  auto* mem = new std::byte[n == 0 ? 1 : n];
  if (n > 0) std::memcpy(mem, p, n);
  lent_.fetch_add(1);
  return NeBytes(mem, n, &SimEnv::give_back, this);
}

void SimEnv::give_back(void* env, std::byte* data, std::size_t) noexcept {
  delete[] data;
  auto& self = *static_cast<SimEnv*>(env);
  {
    std::lock_guard lk(self.mu_);
    self.lent_.fetch_sub(1);
  }
  self.returned_.notify_all();
}

bool SimEnv::wait_all_given_back(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return returned_.wait_for(lk, timeout, [&] { return lent_.load() == 0; });
}

// ---------------------------------------------------------------------------------------------
// SimFlow: what both flows share

template <typename Payload>
void SimFlow<Payload>::deliver_all(std::vector<std::function<void()>> fns) {
  for (auto& fn : fns)
    if (fn) env_->deliver(std::move(fn));
}

template <typename Payload>
void SimFlow<Payload>::open(NeCompletion<NeFlowError> done) {
  {
    std::lock_guard lk(mu_);
    if (open_called_) env_->violation(kind_ + " openWithLocalEndpoint: called twice");
    open_called_ = true;
  }
  env_->deliver([self = self(), done] {
    NeFlowError result;
    {
      std::lock_guard lk(self->mu_);
      result = self->system_closed_ ? NeFlowError::aborted : self->open_result_;
      self->opened_ = result == NeFlowError::none;
    }
    self->cv_.notify_all();
    done(result);
  });
}

template <typename Payload>
void SimFlow<Payload>::read(ReadDone done, const char* selector) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    ++reads_;
    if (read_outstanding_) {
      env_->violation(kind_ + " " + selector + " while a read is pending");
      fn = [done] { done(Payload{}, NeFlowError::read_already_pending); };
    } else {
      read_outstanding_ = true;
      if (!system_closed_) {
        if (!opened_) env_->violation(kind_ + " " + selector + " before the open completed");
        if (read_closed_) env_->violation(kind_ + " " + selector + " after closeReadWithError:");
        if (eof_delivered_) env_->violation(kind_ + " " + selector + " after EOF was delivered");
      }
      pending_read_ = std::move(done);
      fn = next_read_locked();
    }
  }
  if (fn) env_->deliver(std::move(fn));
}

template <typename Payload>
std::function<void()> SimFlow<Payload>::finish_read(ReadDone done, std::shared_ptr<Payload> payload, NeFlowError e) {
  return [self = self(), done, payload, e] {
    {
      std::lock_guard lk(self->mu_);
      self->read_outstanding_ = false;
    }
    done(std::move(*payload), e);
  };
}

template <typename Payload>
std::function<void()> SimFlow<Payload>::close_read_locked(const char* selector) {
  if (!system_closed_ && read_closed_) env_->violation(kind_ + " " + selector + " called twice");
  read_closed_ = true;
  if (!pending_read_) return nullptr;
  auto done = std::move(*pending_read_);
  pending_read_.reset();
  return finish_read(std::move(done), std::make_shared<Payload>(), NeFlowError::aborted);
}

template <typename Payload>
void SimFlow<Payload>::close_write_locked(const char* selector) {
  if (!system_closed_ && write_closed_) env_->violation(kind_ + " " + selector + " called twice");
  write_closed_ = true;
}

template class SimFlow<NeBytes>;
template class SimFlow<NeDatagramBatch>;

// ---------------------------------------------------------------------------------------------
// SimTcp

class SimTcpOps final : public NeTcpFlowOps {
 public:
  explicit SimTcpOps(std::shared_ptr<SimTcp> f) : f_(std::move(f)) {}
  void open(NeCompletion<NeFlowError> done) override { f_->open(std::move(done)); }
  void read(NeCompletion<NeBytes, NeFlowError> done) override {
    f_->read(std::move(done), "readDataWithCompletionHandler:");
  }
  void write(buffers::Buffer bytes, NeCompletion<NeFlowError> done) override {
    f_->write(std::move(bytes), std::move(done));
  }
  void close_read(NeFlowError e) override { f_->close_read(e); }
  void close_write(NeFlowError e) override { f_->close_write(e); }

 private:
  std::shared_ptr<SimTcp> f_;
};

SimTcp::SimTcp(std::shared_ptr<SimEnv> env, Options options)
    : SimFlow(std::move(env), options.open_result, "TCP"), options_(options) {}

std::unique_ptr<NeTcpFlowOps> SimTcp::ops() { return std::make_unique<SimTcpOps>(shared_from_this()); }

std::function<void()> SimTcp::next_read_locked() {
  if (!pending_read_) return nullptr;
  auto done = std::move(*pending_read_);
  auto finish = [&](std::shared_ptr<NeBytes> bytes, NeFlowError e) { return finish_read(done, std::move(bytes), e); };
  if (system_closed_ || app_reset_) {
    pending_read_.reset();
    return finish(std::make_shared<NeBytes>(), system_closed_ ? NeFlowError::aborted : NeFlowError::peer_reset);
  }
  if (!app_out_.empty()) {
    auto& front = app_out_.front();
    const std::size_t n = std::min(front.size(), options_.max_read);
    auto bytes = std::make_shared<NeBytes>(env_->make_bytes(front.data(), n));
    read_pointers_.push_back(bytes->data());
    front.erase(0, n);
    if (front.empty()) app_out_.pop_front();
    pending_read_.reset();
    return finish(std::move(bytes), NeFlowError::none);
  }
  if (stream_left_ > 0) {
    const std::size_t n = std::min<std::uint64_t>(stream_left_, options_.max_read);
    std::vector<std::uint64_t> words((n + 7) / 8);
    for (auto& w : words) w = stream_rng_();
    stream_hash_.update(words.data(), n);
    auto bytes = std::make_shared<NeBytes>(env_->make_bytes(words.data(), n));
    stream_left_ -= n;
    if (stream_left_ == 0) {
      stream_digest_ = stream_hash_.hex();
      app_shut_ = app_shut_ || stream_eof_;
      cv_.notify_all();
    }
    pending_read_.reset();
    return finish(std::move(bytes), NeFlowError::none);
  }
  if (app_shut_) {
    eof_delivered_ = true;
    pending_read_.reset();
    return finish(std::make_shared<NeBytes>(), NeFlowError::none);
  }
  pending_read_ = std::move(done);  // nothing to say yet: the read stays pending
  return nullptr;
}

void SimTcp::write(buffers::Buffer bytes, NeCompletion<NeFlowError> done) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    ++writes_;
    if (system_closed_ || app_reset_) {
      fn = [done] { done(NeFlowError::peer_reset); };
    } else {
      if (!opened_) env_->violation("writeData:withCompletionHandler: before the open completed");
      if (write_closed_) env_->violation("writeData:withCompletionHandler: after closeWriteWithError:");
      const std::size_t n = bytes.size();
      if (write_pointers_.size() < 64) write_pointers_.push_back(bytes.data());
      writes_were_chunks_ = writes_were_chunks_ && !bytes.external();
      received_hash_.update(bytes.data(), n);
      if (options_.keep_received) received_.append(reinterpret_cast<const char*>(bytes.data()), n);
      received_bytes_ += n;
      in_flight_ += n;
      max_in_flight_ = std::max(max_in_flight_, in_flight_);
      auto self = shared_from_this();
      // NE holds the NSData until the write completes: so does the simulator.
      fn = [self, done, bytes = std::move(bytes), n] {
        {
          std::lock_guard lk(self->mu_);
          self->in_flight_ -= n;
        }
        self->cv_.notify_all();
        done(NeFlowError::none);
      };
      if (options_.stall_writes) {
        stalled_.push_back(std::move(fn));
        fn = nullptr;
      }
    }
  }
  cv_.notify_all();
  if (fn) env_->deliver(std::move(fn));
}

void SimTcp::close_read(NeFlowError e) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    fn = close_read_locked("closeReadWithError:");
    if (e != NeFlowError::none) reset_seen_ = true;
  }
  cv_.notify_all();
  if (fn) env_->deliver(std::move(fn));
}

void SimTcp::close_write(NeFlowError e) {
  {
    std::lock_guard lk(mu_);
    close_write_locked("closeWriteWithError:");
    write_close_error_ = e;
    if (e != NeFlowError::none) reset_seen_ = true;
    received_digest_ = received_hash_.hex();
  }
  cv_.notify_all();
}

void SimTcp::app_send(std::string bytes) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    app_out_.push_back(std::move(bytes));
    fn = next_read_locked();
  }
  if (fn) env_->deliver(std::move(fn));
}

void SimTcp::app_stream(std::uint64_t total, std::uint64_t seed, bool then_eof) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    stream_rng_.seed(seed);
    stream_left_ = total;
    stream_eof_ = then_eof;
    fn = next_read_locked();
  }
  if (fn) env_->deliver(std::move(fn));
}

void SimTcp::app_shutdown_write() {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    app_shut_ = true;
    fn = next_read_locked();
  }
  if (fn) env_->deliver(std::move(fn));
}

void SimTcp::app_reset() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    app_reset_ = true;
    fns.push_back(next_read_locked());
    for (auto& s : stalled_) fns.push_back(std::move(s));
    stalled_.clear();
  }
  deliver_all(std::move(fns));
}

void SimTcp::release_writes() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    options_.stall_writes = false;
    fns.swap(stalled_);
  }
  deliver_all(std::move(fns));
}

void SimTcp::system_close() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    system_closed_ = true;
    reset_seen_ = true;
    fns.push_back(next_read_locked());
    for (auto& s : stalled_) fns.push_back(std::move(s));
    stalled_.clear();
  }
  cv_.notify_all();
  deliver_all(std::move(fns));
}

bool SimTcp::wait_received(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return received_bytes_ >= n; });
}
bool SimTcp::wait_write_closed(std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return write_closed_; });
}
bool SimTcp::wait_stream_sent(std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return stream_left_ == 0 && !stream_digest_.empty(); });
}
bool SimTcp::wait_in_flight_at_least(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return in_flight_ >= n; });
}

std::optional<std::string> SimTcp::app_read_line(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  auto has_line = [&] { return received_.find('\n', line_cursor_) != std::string::npos; };
  auto over = [&] { return system_closed_ || reset_seen_ || write_closed_; };
  cv_.wait_for(lk, timeout, [&] { return has_line() || over(); });
  const auto nl = received_.find('\n', line_cursor_);
  if (nl == std::string::npos) return std::nullopt;
  std::string line = received_.substr(line_cursor_, nl - line_cursor_);
  line_cursor_ = nl + 1;
  return line;
}

bool SimTcp::ended() const {
  std::lock_guard lk(mu_);
  return system_closed_ || reset_seen_ || (read_closed_ && write_closed_);
}

std::string SimTcp::received() const {
  std::lock_guard lk(mu_);
  return received_;
}
std::uint64_t SimTcp::received_bytes() const {
  std::lock_guard lk(mu_);
  return received_bytes_;
}
std::string SimTcp::received_hash() {
  std::lock_guard lk(mu_);
  if (received_digest_.empty()) received_digest_ = received_hash_.hex();
  return received_digest_;
}
std::string SimTcp::sent_hash() const {
  std::lock_guard lk(mu_);
  return stream_digest_;
}
bool SimTcp::eof_seen() const {
  std::lock_guard lk(mu_);
  return write_closed_ && write_close_error_ == NeFlowError::none && !system_closed_;
}
bool SimTcp::reset_seen() const {
  std::lock_guard lk(mu_);
  return reset_seen_;
}
NeFlowError SimTcp::write_close_error() const {
  std::lock_guard lk(mu_);
  return write_close_error_;
}
std::size_t SimTcp::max_in_flight() const {
  std::lock_guard lk(mu_);
  return max_in_flight_;
}
std::size_t SimTcp::in_flight() const {
  std::lock_guard lk(mu_);
  return in_flight_;
}
std::size_t SimTcp::writes() const {
  std::lock_guard lk(mu_);
  return writes_;
}
std::vector<const std::byte*> SimTcp::read_pointers() const {
  std::lock_guard lk(mu_);
  return read_pointers_;
}
std::vector<const std::byte*> SimTcp::write_pointers() const {
  std::lock_guard lk(mu_);
  return write_pointers_;
}
bool SimTcp::writes_were_chunks() const {
  std::lock_guard lk(mu_);
  return writes_were_chunks_;
}

// ---------------------------------------------------------------------------------------------
// SimUdp

class SimUdpOps final : public NeUdpFlowOps {
 public:
  explicit SimUdpOps(std::shared_ptr<SimUdp> f) : f_(std::move(f)) {}
  void open(NeCompletion<NeFlowError> done) override { f_->open(std::move(done)); }
  void read(NeCompletion<NeDatagramBatch, NeFlowError> done) override {
    f_->read(std::move(done), "readDatagramsWithCompletionHandler:");
  }
  void write(std::span<const relay::Datagram> datagrams, NeCompletion<NeFlowError> done) override {
    f_->write(datagrams, std::move(done));
  }
  void close_read(NeFlowError e) override { f_->close_read(e); }
  void close_write(NeFlowError e) override { f_->close_write(e); }

 private:
  std::shared_ptr<SimUdp> f_;
};

SimUdp::SimUdp(std::shared_ptr<SimEnv> env, Options options)
    : SimFlow(std::move(env), options.open_result, "UDP"), options_(options) {}

std::unique_ptr<NeUdpFlowOps> SimUdp::ops() { return std::make_unique<SimUdpOps>(shared_from_this()); }

std::function<void()> SimUdp::next_read_locked() {
  if (!pending_read_) return nullptr;
  auto done = std::move(*pending_read_);
  pending_read_.reset();
  auto finish = [&](std::shared_ptr<NeDatagramBatch> batch, NeFlowError e) {
    return finish_read(done, std::move(batch), e);
  };
  if (system_closed_) return finish(std::make_shared<NeDatagramBatch>(), NeFlowError::aborted);
  if (!app_out_.empty()) {
    auto batch = std::make_shared<NeDatagramBatch>(std::vector<NeDatagram>{});
    while (!app_out_.empty() && (*batch)->size() < options_.max_batch) {
      auto& [payload, to] = app_out_.front();
      (*batch)->push_back(NeDatagram{env_->make_bytes(payload.data(), payload.size()), to});
      app_out_.pop_front();
    }
    return finish(std::move(batch), NeFlowError::none);
  }
  if (app_closed_) {
    eof_delivered_ = true;
    return finish(std::make_shared<NeDatagramBatch>(std::vector<NeDatagram>{}), NeFlowError::none);
  }
  if (nil_delivered_ < std::size_t(options_.nil_reads)) {
    ++nil_delivered_;
    return finish(std::make_shared<NeDatagramBatch>(), NeFlowError::none);
  }
  pending_read_ = std::move(done);
  return nullptr;
}

void SimUdp::write(std::span<const relay::Datagram> datagrams, NeCompletion<NeFlowError> done) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    if (system_closed_) {
      fn = [done] { done(NeFlowError::aborted); };
    } else {
      if (!opened_) env_->violation("writeDatagrams:sentByEndpoints: before the open completed");
      if (write_closed_) env_->violation("writeDatagrams:sentByEndpoints: after closeWriteWithError:");
      std::vector<buffers::Buffer> held;  // NE holds the NSData until the completion
      for (const auto& d : datagrams) {
        replies_.push_back({std::string(reinterpret_cast<const char*>(d.payload.data()), d.payload.size()), d.peer});
        replies_were_chunks_ = replies_were_chunks_ && !d.payload.external();
        held.push_back(d.payload);
      }
      fn = [done, held = std::move(held)] { done(NeFlowError::none); };
      if (options_.stall_writes) {
        stalled_.push_back(std::move(fn));
        fn = nullptr;
      }
    }
  }
  cv_.notify_all();
  if (fn) env_->deliver(std::move(fn));
}

void SimUdp::close_read(NeFlowError) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    fn = close_read_locked("closeReadWithError:");
  }
  cv_.notify_all();
  if (fn) env_->deliver(std::move(fn));
}

void SimUdp::close_write(NeFlowError) {
  {
    std::lock_guard lk(mu_);
    close_write_locked("closeWriteWithError:");
  }
  cv_.notify_all();
}

void SimUdp::app_send(std::string payload, relay::Endpoint to) {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    app_out_.emplace_back(std::move(payload), to);
    fn = next_read_locked();
  }
  if (fn) env_->deliver(std::move(fn));
}

void SimUdp::app_close() {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    app_closed_ = true;
    fn = next_read_locked();
  }
  if (fn) env_->deliver(std::move(fn));
}

void SimUdp::system_close() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    system_closed_ = true;
    fns.push_back(next_read_locked());
    for (auto& s : stalled_) fns.push_back(std::move(s));
    stalled_.clear();
  }
  cv_.notify_all();
  for (auto& fn : fns)
    if (fn) env_->deliver(std::move(fn));
}

void SimUdp::release_writes() {
  std::vector<std::function<void()>> fns;
  {
    std::lock_guard lk(mu_);
    options_.stall_writes = false;
    fns.swap(stalled_);
  }
  for (auto& fn : fns) env_->deliver(std::move(fn));
}

bool SimUdp::wait_replies(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return replies_.size() >= n; });
}
bool SimUdp::wait_in_flight_writes(std::size_t n, std::chrono::milliseconds timeout) {
  return wait_until(mu_, cv_, timeout, [&] { return stalled_.size() >= n; });
}
std::optional<SimUdp::Reply> SimUdp::wait_reply(std::size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return replies_.size() >= n || system_closed_ || read_closed_; });
  if (replies_.size() < n) return std::nullopt;
  return replies_[n - 1];
}

std::vector<SimUdp::Reply> SimUdp::replies() const {
  std::lock_guard lk(mu_);
  return replies_;
}
bool SimUdp::closed() const {
  std::lock_guard lk(mu_);
  return read_closed_ && write_closed_;
}
std::size_t SimUdp::nil_delivered() const {
  std::lock_guard lk(mu_);
  return nil_delivered_;
}
bool SimUdp::replies_were_chunks() const {
  std::lock_guard lk(mu_);
  return replies_were_chunks_;
}
std::size_t SimUdp::stalled_writes() const {
  std::lock_guard lk(mu_);
  return stalled_.size();
}

}  // namespace flowrelay::apple::sim
