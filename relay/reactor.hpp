#pragma once
// One io_context, one thread and one chunk pool per shard (default: one shard per core). A flow lives
// on one shard: its sockets, its pumps and its chunks never leave that thread.
//
// Each shard counts the flows it runs, so a source can place a new connection: place() keeps
// connections on the home shard while it is lightly loaded (sequential connections then stay on one
// warm thread, which measured faster than spreading them) and sends them to the least loaded shard
// once there is parallel work.

#include "buffers/chunk_pool.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

namespace flowrelay::relay {

class Reactor {
 public:
  /// threads == 0: one per core.
  explicit Reactor(std::size_t threads = 0);
  ~Reactor();  // stops and joins
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  std::size_t size() const noexcept { return shards_.size(); }

  /// Flows a shard runs now.
  std::int64_t load(std::size_t shard) const noexcept { return shards_[shard]->flows.load(std::memory_order_relaxed); }
  /// A flow started (+1) or ended (-1) on the shard whose io_context is ctx. Any thread.
  void add_load(const boost::asio::execution_context* ctx, int delta) noexcept;
  /// The shard a connection accepted on `home` should run on: home while it runs at most
  /// kPackedFlows flows or is the least loaded, else the least loaded shard.
  std::size_t place(std::size_t home) const noexcept;
  static constexpr std::int64_t kPackedFlows = 1;
  boost::asio::io_context& context(std::size_t shard) noexcept { return shards_[shard]->io; }
  buffers::Pool& pool(std::size_t shard) noexcept { return shards_[shard]->pool; }
  /// Caps the memory of all pools together (0: no cap), split evenly between the shards. Before
  /// start().
  void set_buffer_limit(std::size_t bytes) noexcept {
    for (auto& s : shards_) s->pool.set_limit(bytes == 0 ? 0 : std::max<std::size_t>(1, bytes / shards_.size()));
  }
  /// Bytes the pools' slabs hold now.
  std::size_t buffer_memory() const noexcept {
    std::size_t n = 0;
    for (const auto& s : shards_) n += s->pool.slab_memory();
    return n;
  }

  /// Starts the shard threads; each binds its pool and runs its io_context until stop().
  void start();
  /// Stops every io_context and joins the threads. Idempotent.
  void stop();

  /// Between start() and stop().
  bool running() const noexcept { return running_.load(std::memory_order_acquire); }

  /// Sum of the pools' statistics (a snapshot).
  buffers::PoolStats pool_stats() const;

 private:
  struct Shard {
    buffers::Pool pool;             // declared first: outlives anything the io_context destroys
    boost::asio::io_context io{1};  // one thread per context: Asio may skip its locks
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;
    alignas(64) std::atomic<std::int64_t> flows{0};  // its own cache line: written by its thread
  };
  std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<bool> running_{false};
};

}  // namespace flowrelay::relay
