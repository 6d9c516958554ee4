#include "buffers/chunk_pool.hpp"

#include "buffers/slab_memory.hpp"

#include <cassert>

namespace flowrelay::buffers {

namespace {
// Kept inside this file: a thread_local class member reached from other translation units goes
// through a TLS wrapper that UBSan (GCC 12) misreads as a null pointer.
thread_local Pool* local_pool = nullptr;

constexpr std::size_t kPage = 4096;

std::size_t round_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
}  // namespace

Pool* Pool::local() noexcept { return local_pool; }
void Pool::set_local(Pool* p) noexcept { local_pool = p; }

Pool::Pool(std::size_t slab_bytes) : slab_bytes_(slab_bytes), owner_(std::this_thread::get_id()) {}

Pool::~Pool() {
  for (void* s : slabs_) slab_free(s);
}

bool Pool::grow(SizeClass c) {
  const std::size_t cap = capacity_of(c);
  // A slab holds at least two chunks of the large class; header-only slabs hold 256 control blocks.
  const std::size_t count = cap == 0 ? 256 : std::max<std::size_t>(2, slab_bytes_ / cap);
  const std::size_t headers = round_up(count * sizeof(Storage), kPage);
  const std::size_t bytes = headers + count * cap;
  const std::size_t held = slab_memory_.load(std::memory_order_relaxed);
  if (limit_ != 0 && held + bytes > limit_) return false;  // the buffer budget is spent
  void* mem = slab_allocate(bytes, kPage);
  if (mem == nullptr) return false;
  slabs_.push_back(mem);
  slab_memory_.store(held + bytes, std::memory_order_relaxed);

  auto* hdr = static_cast<Storage*>(mem);
  auto* data = static_cast<std::byte*>(mem) + headers;
  Class& k = classes_[std::size_t(c)];
  for (std::size_t i = count; i-- > 0;) {
    Storage* s = new (&hdr[i]) Storage{};
    s->size_class = std::uint8_t(c);
    s->data = cap == 0 ? nullptr : data + i * cap;
    s->capacity = cap;
    s->owner = this;
    s->next = k.free_list;
    k.free_list = s;
  }
  k.slabs.fetch_add(1, std::memory_order_relaxed);
  k.free.fetch_add(std::int64_t(count), std::memory_order_relaxed);
  return true;
}

Storage* Pool::take(SizeClass c) {
  assert(std::this_thread::get_id() == owner_ && "Pool::take off its owner thread");
  Class& k = classes_[std::size_t(c)];
  if (k.free_list == nullptr) {
    // Chunks freed by other threads come home first; a new slab only when none did.
    Storage* remote = k.remote.exchange(nullptr, std::memory_order_acquire);
    std::int64_t n = 0;
    while (remote != nullptr) {
      Storage* next = remote->next;
      remote->next = k.free_list;
      k.free_list = remote;
      remote = next;
      ++n;
    }
    k.free.fetch_add(n, std::memory_order_relaxed);
    if (k.free_list == nullptr && !grow(c)) return nullptr;
  }
  Storage* s = k.free_list;
  k.free_list = s->next;
  s->next = nullptr;
  s->refs.store(1, std::memory_order_relaxed);
  k.free.fetch_sub(1, std::memory_order_relaxed);
  const auto live = k.live.fetch_add(1, std::memory_order_relaxed) + 1;
  if (live > k.high_water.load(std::memory_order_relaxed)) k.high_water.store(live, std::memory_order_relaxed);
  return s;
}

void Pool::release(Storage* s) noexcept {
  Class& k = classes_[s->size_class];
  s->release_fn = nullptr;
  s->release_ctx = nullptr;
  k.live.fetch_sub(1, std::memory_order_relaxed);
  if (std::this_thread::get_id() == owner_) {
    s->next = k.free_list;
    k.free_list = s;
    k.free.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Storage* head = k.remote.load(std::memory_order_relaxed);
  do {
    s->next = head;
  } while (!k.remote.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
}

PoolStats Pool::stats() const {
  PoolStats out;
  for (std::size_t i = 0; i < kSizeClasses; ++i) {
    const Class& k = classes_[i];
    out.classes[i] = ClassStats{k.live.load(std::memory_order_relaxed), k.high_water.load(std::memory_order_relaxed),
                                k.slabs.load(std::memory_order_relaxed), k.free.load(std::memory_order_relaxed)};
  }
  return out;
}

}  // namespace flowrelay::buffers
