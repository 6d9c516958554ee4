#pragma once
// How an NE completion, arriving on a queue the system picked, reaches the reactor shard that owns
// its flow: a post through the shard's port. The port outlives the shard's io_context and refuses
// posts once it is shut, so a completion that arrives after the provider stopped is dropped instead
// of touching a destroyed reactor.

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <shared_mutex>
#include <utility>

namespace flowrelay::apple {

/// Memory for one posted handler at a time. A flow posts at most one wake-up at once, so with this
/// slot as the handler's allocator a completion reaches the reactor without a heap allocation.
/// Taken on the completion's thread, given back on the reactor's: the flag is atomic.
class HandlerSlot {
 public:
  static constexpr std::size_t kBytes = 128;

  void* take(std::size_t n) noexcept {
    if (n > kBytes || busy_.exchange(true, std::memory_order_acquire)) return nullptr;
    return storage_;
  }
  bool give_back(void* p) noexcept {
    if (p != storage_) return false;
    busy_.store(false, std::memory_order_release);
    return true;
  }

 private:
  alignas(std::max_align_t) unsigned char storage_[kBytes];
  std::atomic<bool> busy_{false};
};

/// An allocator over a HandlerSlot that falls back to the heap when the slot is taken.
template <typename T>
class SlotAllocator {
 public:
  using value_type = T;
  explicit SlotAllocator(HandlerSlot& slot) noexcept : slot_(&slot) {}
  template <typename U>
  SlotAllocator(const SlotAllocator<U>& o) noexcept : slot_(o.slot()) {}

  T* allocate(std::size_t n) {
    if (void* p = slot_->take(n * sizeof(T))) return static_cast<T*>(p);
    return std::allocator<T>().allocate(n);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    if (!slot_->give_back(p)) std::allocator<T>().deallocate(p, n);
  }
  HandlerSlot* slot() const noexcept { return slot_; }
  template <typename U>
  bool operator==(const SlotAllocator<U>& o) const noexcept {
    return slot_ == o.slot();
  }

 private:
  HandlerSlot* slot_;
};

/// A shard's io_context as seen from foreign threads. Create one per shard, shut it before the
/// shard's io_context is destroyed.
class ReactorPort {
 public:
  explicit ReactorPort(boost::asio::io_context& io) : io_(&io) {}

  /// Runs `handler` on the shard's thread later; false (and `handler` destroyed here) once shut.
  template <typename Handler>
  bool post(HandlerSlot& slot, Handler&& handler) {
    std::shared_lock lk(mu_);
    if (io_ == nullptr) return false;
    boost::asio::post(io_->get_executor(),
                      boost::asio::bind_allocator(SlotAllocator<void>(slot), std::forward<Handler>(handler)));
    return true;
  }
  /// From the shard's own thread (handler memory comes from the thread's recycling cache).
  template <typename Handler>
  bool post(Handler&& handler) {
    std::shared_lock lk(mu_);
    if (io_ == nullptr) return false;
    boost::asio::post(io_->get_executor(), std::forward<Handler>(handler));
    return true;
  }

  /// The shard's context; only for code running on that shard.
  boost::asio::io_context& context() noexcept { return *io_; }

  /// No posts after this returns.
  void shut() {
    std::unique_lock lk(mu_);
    io_ = nullptr;
  }

 private:
  std::shared_mutex mu_;
  boost::asio::io_context* io_;
};

}  // namespace flowrelay::apple
