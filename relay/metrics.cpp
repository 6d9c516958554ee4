#include "relay/metrics.hpp"

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>

namespace flowrelay::relay::metrics {

std::size_t bucket_of(double seconds) noexcept {
  return static_cast<std::size_t>(std::lower_bound(kBounds.begin(), kBounds.end(), seconds) - kBounds.begin());
}

void Histogram::observe(double seconds) noexcept {
  bump(counts_[bucket_of(seconds)]);
  bump(count_);
  sum_.store(sum_.load(std::memory_order_relaxed) + seconds, std::memory_order_relaxed);
}

void Histogram::add_to(HistogramValues& into) const noexcept {
  for (std::size_t i = 0; i < kBuckets; ++i) into.buckets[i] += counts_[i].load(std::memory_order_relaxed);
  into.count += count_.load(std::memory_order_relaxed);
  into.sum += sum_.load(std::memory_order_relaxed);
}

const char* to_string(DialFailure f) noexcept {
  switch (f) {
    case DialFailure::refused: return "refused";
    case DialFailure::timeout: return "timeout";
    case DialFailure::unreachable: return "unreachable";
    case DialFailure::proxy: return "proxy";
    case DialFailure::other: return "other";
  }
  return "other";
}

namespace {

// Blocks are never freed: a thread that ended still counted, and a scrape must not race its exit.
struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<ThreadBlock>> blocks;
};
Registry& registry() {
  static Registry* r = new Registry;  // outlives every thread's last use
  return *r;
}

}  // namespace

ThreadBlock& local() noexcept {
  thread_local ThreadBlock* mine = [] {
    auto& r = registry();
    std::lock_guard lk(r.mu);
    r.blocks.push_back(std::make_unique<ThreadBlock>());
    return r.blocks.back().get();
  }();
  return *mine;
}

DialCounters& ThreadBlock::dials_for(const char* via) noexcept {
  for (auto& d : dials) {
    const char* v = d.via.load(std::memory_order_relaxed);
    if (v == via) return d;
    if (v == nullptr) {
      d.via.store(via, std::memory_order_release);  // a scrape reads the counters after the name
      return d;
    }
  }
  auto& rest = dials.back();
  rest.via.store("other", std::memory_order_release);
  return rest;
}

Totals collect() {
  Totals t;
  auto& r = registry();
  std::lock_guard lk(r.mu);
  for (const auto& b : r.blocks) {
    for (const auto& d : b->dials) {
      const char* via = d.via.load(std::memory_order_acquire);
      if (via == nullptr) break;
      auto it = std::find_if(t.vias.begin(), t.vias.end(), [&](const ViaTotals& v) { return std::strcmp(v.via, via) == 0; });
      if (it == t.vias.end()) it = t.vias.insert(t.vias.end(), ViaTotals{via, {}, {}});
      d.dial.add_to(it->dial);
      for (std::size_t i = 0; i < kDialFailureKinds; ++i) it->failures[i] += d.failures[i].load(std::memory_order_relaxed);
    }
  }
  return t;
}

}  // namespace flowrelay::relay::metrics
