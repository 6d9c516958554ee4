#pragma once
// A queue of Buffers with scatter (fresh chunks for one readv) and gather (queued views for one
// writev) as Asio buffer sequences. Bytes move in and out by reference, never by copy.
//
// The queue is a power-of-two ring of Buffer slots: two inline (an interactive flow queues one message
// at a time, and an idle flow should cost no heap block for its queues), then a heap ring that grows
// when a flow first needs more slots and then stays: steady-state traffic allocates nothing. An
// empty Chain holds no chunk.

#include "buffers/buffer.hpp"

#include <boost/asio/buffer.hpp>

#include <array>
#include <cstddef>
#include <limits>

namespace flowrelay::buffers {

class Chain {
 public:
  /// Asio hands at most 64 buffers to one readv/writev (detail::max_iov_len); a longer chain is
  /// written in several calls.
  static constexpr std::size_t kMaxIov = 64;
  /// One readv fills at most this many chunks (4 x 64 KiB).
  static constexpr std::size_t kMaxScatter = 4;

  /// Up to kMaxIov views of the front of the chain; a ConstBufferSequence. Valid until the chain
  /// changes.
  class Gather {
   public:
    Gather() noexcept {}  // leaves the slots unset: only [0, count) is ever read
    const boost::asio::const_buffer* begin() const noexcept { return bufs_; }
    const boost::asio::const_buffer* end() const noexcept { return bufs_ + count_; }
    std::size_t count() const noexcept { return count_; }
    std::size_t bytes() const noexcept { return bytes_; }

   private:
    friend class Chain;
    // A union, so building a Gather for one write does not zero 1 KiB of slots first.
    union {
      boost::asio::const_buffer bufs_[kMaxIov];
    };
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
  };

  /// Fresh chunks to read into; a MutableBufferSequence. Hand it back with commit().
  class Scatter {
   public:
    const boost::asio::mutable_buffer* begin() const noexcept { return bufs_.data(); }
    const boost::asio::mutable_buffer* end() const noexcept { return bufs_.data() + count_; }
    std::size_t count() const noexcept { return count_; }
    std::size_t bytes() const noexcept { return bytes_; }
    bool empty() const noexcept { return count_ == 0; }

   private:
    friend class Chain;
    std::array<Buffer, kMaxScatter> chunks_;
    std::array<boost::asio::mutable_buffer, kMaxScatter> bufs_;
    std::size_t count_ = 0;
    std::size_t bytes_ = 0;
  };

  Chain() noexcept = default;
  Chain(Chain&& o) noexcept;
  Chain& operator=(Chain&& o) noexcept;
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;
  ~Chain();

  std::size_t size() const noexcept { return bytes_; }  // bytes queued
  std::size_t buffer_count() const noexcept { return count_; }
  bool empty() const noexcept { return bytes_ == 0; }

  /// Queues b at the back (empty views are dropped).
  void append(Buffer b);
  const Buffer& front() const noexcept { return ring_[head_]; }
  Buffer pop_front();
  /// Drops n bytes from the front (after a write of n bytes).
  void consume(std::size_t n) noexcept;
  void clear() noexcept;

  Gather gather(std::size_t max_bytes = std::numeric_limits<std::size_t>::max()) const noexcept;

  /// Chunks for one read of up to max_bytes: one 16 KiB chunk for small reads, else up to
  /// kMaxScatter 64 KiB chunks. Empty if the pool is exhausted.
  static Scatter prepare(Pool& pool, std::size_t max_bytes);
  /// Queues the first n bytes read into s; the untouched chunks go straight back to the pool.
  void commit(Scatter& s, std::size_t n);

 private:
  static constexpr std::size_t kInline = 2;  // a power of two
  bool on_heap() const noexcept { return ring_ != inline_; }
  void grow();
  /// Takes o's queue (o is left empty, on its inline slots); this chain must be empty and inline.
  void take(Chain& o) noexcept;

  Buffer inline_[kInline];
  Buffer* ring_ = inline_;
  std::size_t cap_ = kInline;  // power of two
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
};

}  // namespace flowrelay::buffers
