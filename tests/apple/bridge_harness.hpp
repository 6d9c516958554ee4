#pragma once
// Drives one NeTcpFlow on a real reactor shard from a test thread: every call runs on the shard
// (as the relay's pumps do) and the test waits for its outcome, never for a fixed time.

#include "extension/apple/ne_tcp_flow.hpp"
#include "extension/apple/reactor_port.hpp"
#include "relay/reactor.hpp"
#include "tests/apple/ne_sim.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <cstring>
#include <future>
#include <memory>

namespace flowrelay::apple::sim {

using namespace std::chrono_literals;

/// Runs fn on the io_context's thread and returns its result.
template <typename Fn>
auto run_on(boost::asio::io_context& io, Fn fn) -> decltype(fn()) {
  std::packaged_task<decltype(fn())()> task(std::move(fn));
  auto result = task.get_future();
  boost::asio::post(io, [&task] { task(); });
  return result.get();
}

class FlowDriver {
 public:
  FlowDriver() : reactor_(1) {
    reactor_.start();
    port_ = std::make_shared<ReactorPort>(reactor_.context(0));
  }
  ~FlowDriver() {
    if (flow_) destroy();
    Deliverer::quiesce_all();  // completions still queued may hold chunks of this reactor's pool
    reactor_.stop();
    port_->shut();
  }

  boost::asio::io_context& io() { return reactor_.context(0); }
  const std::shared_ptr<ReactorPort>& port() { return port_; }
  buffers::PoolStats pool_stats() const { return reactor_.pool_stats(); }

  void open(std::unique_ptr<NeTcpFlowOps> ops, std::size_t watermark = 256 * 1024) {
    run_on(io(), [&] { flow_ = std::make_unique<NeTcpFlow>(port_, std::move(ops), watermark); });
  }
  void destroy() {
    run_on(io(), [&] { flow_.reset(); });
  }

  /// Parks on readiness; the future holds the error the callback reported.
  std::future<boost::system::error_code> when_readable() {
    auto p = std::make_shared<std::promise<boost::system::error_code>>();
    auto f = p->get_future();
    run_on(io(), [&] {
      ready_ = p;
      flow_->on_readable(
          [](void* self, const boost::system::error_code& ec) {
            auto& d = *static_cast<FlowDriver*>(self);
            d.ready_->set_value(ec);
          },
          this);
    });
    return f;
  }

  /// Waits for readiness and reads, until `n` bytes or EOF or an error; the chain holds what came.
  struct ReadOutcome {
    buffers::Chain chain;
    bool eof = false;
    boost::system::error_code ec;
  };
  ReadOutcome read(std::size_t n, std::chrono::milliseconds timeout = 10s) {
    ReadOutcome out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.chain.size() < n && !out.eof && !out.ec) {
      auto ready = when_readable();
      if (ready.wait_until(deadline) != std::future_status::ready) break;
      if (auto ec = ready.get()) {
        out.ec = ec;
        break;
      }
      run_on(io(), [&] {
        auto r = flow_->read(out.chain, n - out.chain.size());
        out.eof = r.eof;
        out.ec = r.ec;
      });
    }
    return out;
  }

  relay::IoResult write(buffers::Chain& chain) {
    return run_on(io(), [&] { return flow_->write(chain); });
  }
  /// Starts a wait_writable(); the future holds its error.
  std::future<boost::system::error_code> when_writable() {
    auto p = std::make_shared<std::promise<boost::system::error_code>>();
    auto f = p->get_future();
    run_on(io(), [&] {
      boost::asio::co_spawn(io(), flow_->wait_writable(),
                            [p](std::exception_ptr, boost::system::error_code ec) { p->set_value(ec); });
    });
    return f;
  }
  void shutdown_write() {
    run_on(io(), [&] { flow_->shutdown_write(); });
  }
  void abort() {
    run_on(io(), [&] { flow_->abort(true); });
  }
  void close() {
    run_on(io(), [&] { flow_->close(); });
  }

  /// A chain of `n` bytes in fresh pool chunks of the shard, filled with `fill`, and the chunk
  /// pointers in order.
  std::pair<buffers::Chain, std::vector<const std::byte*>> chunks(std::size_t n, char fill) {
    return run_on(io(), [&] {
      std::pair<buffers::Chain, std::vector<const std::byte*>> out;
      while (n > 0) {
        auto b = buffers::Buffer::take(*buffers::Pool::local(), buffers::SizeClass::small);
        const std::size_t k = std::min(n, b.size());
        std::memset(b.mutable_data(), fill, k);
        b.truncate(k);
        out.second.push_back(b.data());
        out.first.append(std::move(b));
        n -= k;
      }
      return out;
    });
  }
  /// Gives a chain's chunks back on the shard that owns them.
  void drop(buffers::Chain& chain) {
    run_on(io(), [&] { chain.clear(); });
  }

 private:
  relay::Reactor reactor_;
  std::shared_ptr<ReactorPort> port_;
  std::unique_ptr<NeTcpFlow> flow_;
  std::shared_ptr<std::promise<boost::system::error_code>> ready_;
};

}  // namespace flowrelay::apple::sim
