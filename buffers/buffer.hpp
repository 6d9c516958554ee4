#pragma once
// A refcounted view of bytes: a pool chunk, or memory owned by someone else (an NSData on macOS)
// with a release callback. Copying a Buffer or taking a slice() shares the bytes, never copies them.
//
// Hold a Buffer only while the bytes are in flight: a pooled chunk goes back to its pool (and its
// owning thread) when the last view drops, and external memory is released to its owner then.

#include "buffers/chunk_pool.hpp"
#include "buffers/storage.hpp"

#include <boost/asio/buffer.hpp>

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace flowrelay::buffers {

class Buffer {
 public:
  Buffer() noexcept = default;
  Buffer(const Buffer& o) noexcept : s_(o.s_), offset_(o.offset_), size_(o.size_) { retain(); }
  Buffer(Buffer&& o) noexcept
      : s_(std::exchange(o.s_, nullptr)), offset_(std::exchange(o.offset_, 0)), size_(std::exchange(o.size_, 0)) {}
  Buffer& operator=(Buffer o) noexcept {
    swap(o);
    return *this;
  }
  ~Buffer() { reset(); }

  /// A whole fresh chunk (size() == capacity) from `pool`; empty Buffer if memory is exhausted.
  static Buffer take(Pool& pool, SizeClass c) {
    Buffer b;
    if (Storage* s = pool.take(c)) {
      b.s_ = s;
      b.size_ = std::uint32_t(s->capacity);
    }
    return b;
  }

  /// Wraps memory owned elsewhere; `release(context, data, size)` runs once, when the last view drops.
  /// The control block comes from `pool` (no allocation per wrap).
  static Buffer wrap(Pool& pool, std::byte* data, std::size_t size, ReleaseFn release, void* context) {
    Buffer b;
    if (Storage* s = pool.take(SizeClass::header)) {
      s->data = data;
      s->capacity = size;
      s->release_fn = release;
      s->release_ctx = context;
      b.s_ = s;
      b.size_ = std::uint32_t(size);
    }
    return b;
  }

  bool empty() const noexcept { return size_ == 0; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  std::size_t size() const noexcept { return size_; }
  const std::byte* data() const noexcept { return s_->data + offset_; }
  /// Writable bytes: only meaningful while this view is the sole owner (a chunk being filled).
  std::byte* mutable_data() noexcept { return s_->data + offset_; }
  std::uint32_t use_count() const noexcept { return s_ ? s_->refs.load(std::memory_order_relaxed) : 0; }
  /// Views memory owned elsewhere (wrap()), not a pool chunk.
  bool external() const noexcept { return s_ != nullptr && s_->release_fn != nullptr; }

  /// Shares [offset, offset + length) of this view.
  Buffer slice(std::size_t offset, std::size_t length) const {
    assert(offset <= size_ && length <= size_ - offset && "Buffer::slice past the view");
    Buffer b(*this);
    b.offset_ += std::uint32_t(offset);
    b.size_ = std::uint32_t(length);
    return b;
  }
  void remove_prefix(std::size_t n) noexcept {
    assert(n <= size_ && "Buffer::remove_prefix past the view");
    offset_ += std::uint32_t(n);
    size_ -= std::uint32_t(n);
  }
  /// Keeps the first n bytes (a chunk after a short read).
  void truncate(std::size_t n) noexcept { size_ = std::uint32_t(n); }

  boost::asio::const_buffer asio() const noexcept { return {data(), size_}; }
  boost::asio::mutable_buffer asio_mutable() noexcept { return {mutable_data(), size_}; }

  void reset() noexcept {
    if (s_ != nullptr && s_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_storage(s_);
    s_ = nullptr;
    offset_ = size_ = 0;
  }
  void swap(Buffer& o) noexcept {
    std::swap(s_, o.s_);
    std::swap(offset_, o.offset_);
    std::swap(size_, o.size_);
  }

 private:
  void retain() noexcept {
    if (s_ != nullptr) s_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  static void free_storage(Storage* s) noexcept {
    if (s->release_fn != nullptr) s->release_fn(s->release_ctx, s->data, s->capacity);
    s->owner->release(s);
  }

  Storage* s_ = nullptr;
  std::uint32_t offset_ = 0;
  std::uint32_t size_ = 0;
};

}  // namespace flowrelay::buffers
