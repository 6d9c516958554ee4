// Data-plane micro-benchmarks: what one chunk, one chain step and one iovec batch cost, with the
// allocators a relay would otherwise use measured alongside as the baseline.

#include "buffers/chain.hpp"
#include "buffers/slab_memory.hpp"

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <thread>

namespace flowrelay::buffers {
namespace {

void BM_PoolTakeRelease(benchmark::State& state) {
  Pool pool;
  for (auto _ : state) {
    Buffer b = Buffer::take(pool, SizeClass::small);
    benchmark::DoNotOptimize(b.mutable_data());
  }
}
BENCHMARK(BM_PoolTakeRelease);

// Baselines: a fresh 16 KiB block from the process allocator (glibc) and from mimalloc (the slabs'
// allocator, as the pool reaches it).
void BM_Malloc16K(benchmark::State& state) {
  for (auto _ : state) {
    void* p = std::malloc(kSmallChunk);
    benchmark::DoNotOptimize(p);
    std::free(p);
  }
}
BENCHMARK(BM_Malloc16K);

void BM_MiMalloc16K(benchmark::State& state) {
  for (auto _ : state) {
    void* p = slab_allocate(kSmallChunk, 16);
    benchmark::DoNotOptimize(p);
    slab_free(p);
  }
}
BENCHMARK(BM_MiMalloc16K);

// A chunk freed on another thread and picked up by its owner.
void BM_PoolCrossThreadReturn(benchmark::State& state) {
  Pool pool;
  std::vector<Storage*> batch(256);
  for (auto _ : state) {
    for (auto& s : batch) s = pool.take(SizeClass::small);
    std::thread t([&] {
      for (auto* s : batch) pool.release(s);
    });
    t.join();
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(batch.size()));
}
BENCHMARK(BM_PoolCrossThreadReturn)->UseRealTime();

void BM_ChainAppendConsume(benchmark::State& state) {
  Pool pool;
  Chain c;
  Buffer chunk = Buffer::take(pool, SizeClass::large);
  const std::size_t n = std::size_t(state.range(0));
  for (auto _ : state) {
    for (std::size_t i = 0; i < n; ++i) c.append(chunk.slice(0, 1460));
    c.consume(c.size());
  }
  state.SetItemsProcessed(state.iterations() * std::int64_t(n));
}
BENCHMARK(BM_ChainAppendConsume)->Arg(4)->Arg(64)->Arg(1024);

void BM_GatherIovecs(benchmark::State& state) {
  Pool pool;
  Chain c;
  Buffer chunk = Buffer::take(pool, SizeClass::large);
  for (int i = 0; i < state.range(0); ++i) c.append(chunk.slice(0, 1460));
  for (auto _ : state) {
    auto g = c.gather();
    benchmark::DoNotOptimize(g.bytes());
  }
}
BENCHMARK(BM_GatherIovecs)->Arg(1)->Arg(16)->Arg(64)->Arg(1000);

// One read's worth: 4 x 64 KiB taken, 70,000 bytes kept, the rest returned, then written off.
void BM_ScatterPrepareCommit(benchmark::State& state) {
  Pool pool;
  Chain c;
  for (auto _ : state) {
    auto s = Chain::prepare(pool, 256 * 1024);
    c.commit(s, 70'000);
    c.consume(c.size());
  }
}
BENCHMARK(BM_ScatterPrepareCommit);

}  // namespace
}  // namespace flowrelay::buffers
