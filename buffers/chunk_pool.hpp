#pragma once
// Fixed-size chunks carved from mimalloc slabs and recycled through a per-thread free list.
//
//   slab (one mi_malloc_aligned block)
//   +-----------------------------+--------+--------+-----+--------+
//   | Storage[0] ... Storage[n-1] | data 0 | data 1 | ... | data n-1|
//   +-----------------------------+--------+--------+-----+--------+
//     headers (64 B each)           page-aligned payload areas
//
// A Pool belongs to one thread (a reactor thread): take() and the fast path of release() run there
// without a lock. A chunk released on another thread goes onto the owner's remote stack (one atomic
// exchange) and is reused by the owner the next time its local list runs dry.

#include "buffers/storage.hpp"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace flowrelay::buffers {

enum class SizeClass : std::uint8_t { small = 0, large = 1, header = 2 };
inline constexpr std::size_t kSmallChunk = 16 * 1024;
inline constexpr std::size_t kLargeChunk = 64 * 1024;  // holds any UDP datagram (65,507 B)
inline constexpr std::size_t kSizeClasses = 3;          // `header`: control blocks for external buffers

constexpr std::size_t capacity_of(SizeClass c) {
  return c == SizeClass::small ? kSmallChunk : c == SizeClass::large ? kLargeChunk : 0;
}

/// Counters of one size class. Readable from any thread (relaxed: a snapshot, not a barrier).
struct ClassStats {
  std::int64_t live = 0;        // taken and not yet returned
  std::int64_t high_water = 0;  // most live at once
  std::int64_t slabs = 0;
  std::int64_t free = 0;        // on the owner's local list
};

struct PoolStats {
  std::array<ClassStats, kSizeClasses> classes{};
  std::int64_t live_bytes() const {
    return classes[0].live * std::int64_t(kSmallChunk) + classes[1].live * std::int64_t(kLargeChunk);
  }
};

/// Per-thread chunk pool. Create it on (or bind it to) the thread that will take from it; destroy it
/// after every chunk has come back (the destructor frees the slabs). Not copyable, not movable.
class Pool {
 public:
  explicit Pool(std::size_t slab_bytes = 1 << 20);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /// Makes the calling thread the owner (a reactor binds its pool when its thread starts).
  void bind_to_current_thread() { owner_ = std::this_thread::get_id(); }

  /// Caps the memory the pool's slabs may hold (0: no cap); past it take() returns nullptr until
  /// chunks come back. Slabs are never given back, so this bounds the pool's memory for good.
  /// Owner thread, or before the reactor starts.
  void set_limit(std::size_t bytes) noexcept { limit_ = bytes; }
  /// Bytes the slabs hold now.
  std::size_t slab_memory() const noexcept { return slab_memory_.load(std::memory_order_relaxed); }

  /// A fresh chunk with refcount 1, or nullptr if memory is exhausted. Owner thread only.
  Storage* take(SizeClass c);

  /// Returns a chunk whose refcount reached zero; any thread.
  void release(Storage* s) noexcept;

  PoolStats stats() const;

  /// The pool of the calling reactor thread, or nullptr outside one.
  static Pool* local() noexcept;
  static void set_local(Pool* p) noexcept;

 private:
  struct Class {
    Storage* free_list = nullptr;              // owner only
    std::atomic<Storage*> remote{nullptr};     // pushed by other threads
    std::atomic<std::int64_t> live{0};
    std::atomic<std::int64_t> high_water{0};
    std::atomic<std::int64_t> slabs{0};
    std::atomic<std::int64_t> free{0};
  };
  bool grow(SizeClass c);

  std::size_t slab_bytes_;
  std::size_t limit_ = 0;
  std::atomic<std::size_t> slab_memory_{0};
  std::thread::id owner_;
  std::array<Class, kSizeClasses> classes_;
  std::vector<void*> slabs_;  // owner only
};

}  // namespace flowrelay::buffers
