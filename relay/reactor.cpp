#include "relay/reactor.hpp"

#include <pthread.h>
#include <sched.h>

namespace flowrelay::relay {

namespace {

/// The CPUs this process may run on (its affinity mask, which a container or taskset narrows).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

}  // namespace

Reactor::Reactor(std::size_t threads) {
  std::vector<int> cpus;
  if (threads == 0) {
    cpus = allowed_cpus();
    threads = cpus.empty() ? std::max(1u, std::thread::hardware_concurrency()) : cpus.size();
  }
  for (std::size_t i = 0; i < threads; ++i) {
    shards_.push_back(std::make_unique<Shard>());
    if (i < cpus.size() && cpus.size() > 1) shards_.back()->cpu = cpus[i];
  }
}

Reactor::~Reactor() { stop(); }

void Reactor::start() {
  running_.store(true, std::memory_order_release);
  for (auto& s : shards_) {
    Shard* shard = s.get();
    shard->thread = std::thread([shard] {
      if (shard->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(shard->cpu, &set);
        ::pthread_setaffinity_np(::pthread_self(), sizeof set, &set);  // best effort: steering still works
      }
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
