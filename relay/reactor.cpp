#include "relay/reactor.hpp"

namespace flowrelay::relay {

Reactor::Reactor(std::size_t threads) {
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  for (std::size_t i = 0; i < threads; ++i) shards_.push_back(std::make_unique<Shard>());
}

Reactor::~Reactor() { stop(); }

void Reactor::add_load(const boost::asio::execution_context* ctx, int delta) noexcept {
  for (auto& s : shards_)
    if (static_cast<const boost::asio::execution_context*>(&s->io) == ctx) {
      s->flows.fetch_add(delta, std::memory_order_relaxed);
      return;
    }
}

std::size_t Reactor::place(std::size_t home) const noexcept {
  std::size_t least = home;
  for (std::size_t i = 0; i < shards_.size(); ++i)
    if (load(i) < load(least)) least = i;
  return load(home) <= kPackedFlows ? home : least;
}

void Reactor::start() {
  running_.store(true, std::memory_order_release);
  for (auto& s : shards_) {
    Shard* shard = s.get();
    shard->thread = std::thread([shard] {
      shard->pool.bind_to_current_thread();
      buffers::Pool::set_local(&shard->pool);
      shard->io.run();
      buffers::Pool::set_local(nullptr);
    });
  }
}

void Reactor::stop() {
  for (auto& s : shards_) {
    s->work.reset();
    s->io.stop();
  }
  for (auto& s : shards_)
    if (s->thread.joinable()) s->thread.join();
  running_.store(false, std::memory_order_release);
}

buffers::PoolStats Reactor::pool_stats() const {
  buffers::PoolStats sum;
  for (const auto& s : shards_) {
    const auto st = s->pool.stats();
    for (std::size_t c = 0; c < buffers::kSizeClasses; ++c) {
      sum.classes[c].live += st.classes[c].live;
      sum.classes[c].high_water += st.classes[c].high_water;
      sum.classes[c].slabs += st.classes[c].slabs;
      sum.classes[c].free += st.classes[c].free;
    }
  }
  return sum;
}

}  // namespace flowrelay::relay
