#include "buffers/chain.hpp"

#include <cassert>
#include <utility>

namespace flowrelay::buffers {

Chain::Chain(Chain&& o) noexcept { take(o); }

Chain& Chain::operator=(Chain&& o) noexcept {
  if (this != &o) {
    clear();
    if (on_heap()) delete[] ring_;
    ring_ = inline_;
    cap_ = kInline;
    take(o);
  }
  return *this;
}

Chain::~Chain() {
  clear();
  if (on_heap()) delete[] ring_;
}

void Chain::take(Chain& o) noexcept {
  count_ = std::exchange(o.count_, 0);
  bytes_ = std::exchange(o.bytes_, 0);
  if (o.on_heap()) {
    ring_ = std::exchange(o.ring_, o.inline_);
    cap_ = std::exchange(o.cap_, kInline);
    head_ = std::exchange(o.head_, 0);
    return;
  }
  for (std::size_t i = 0; i < count_; ++i) inline_[i] = std::move(o.inline_[(o.head_ + i) & (kInline - 1)]);
  head_ = 0;
  o.head_ = 0;
}

void Chain::grow() {
  const std::size_t cap = on_heap() ? cap_ * 2 : 8;
  auto* ring = new Buffer[cap];
  for (std::size_t i = 0; i < count_; ++i) ring[i] = std::move(ring_[(head_ + i) & (cap_ - 1)]);
  if (on_heap()) delete[] ring_;
  ring_ = ring;
  cap_ = cap;
  head_ = 0;
}

void Chain::append(Buffer b) {
  if (b.empty()) return;
  if (count_ == cap_) grow();
  bytes_ += b.size();
  ring_[(head_ + count_) & (cap_ - 1)] = std::move(b);
  ++count_;
}

Buffer Chain::pop_front() {
  assert(count_ > 0 && "Chain::pop_front on an empty chain");
  Buffer b = std::move(ring_[head_]);
  head_ = (head_ + 1) & (cap_ - 1);
  --count_;
  bytes_ -= b.size();
  return b;
}

void Chain::consume(std::size_t n) noexcept {
  while (n > 0 && count_ > 0) {
    Buffer& f = ring_[head_];
    if (n < f.size()) {
      f.remove_prefix(n);
      bytes_ -= n;
      return;
    }
    n -= f.size();
    bytes_ -= f.size();
    f.reset();
    head_ = (head_ + 1) & (cap_ - 1);
    --count_;
  }
}

void Chain::clear() noexcept {
  for (std::size_t i = 0; i < count_; ++i) ring_[(head_ + i) & (cap_ - 1)].reset();
  head_ = count_ = bytes_ = 0;
}

Chain::Gather Chain::gather(std::size_t max_bytes) const noexcept {
  Gather g;
  for (std::size_t i = 0; i < count_ && g.count_ < kMaxIov && g.bytes_ < max_bytes; ++i) {
    const Buffer& b = ring_[(head_ + i) & (cap_ - 1)];
    const std::size_t take = std::min(b.size(), max_bytes - g.bytes_);
    g.bufs_[g.count_++] = boost::asio::const_buffer(b.data(), take);
    g.bytes_ += take;
  }
  return g;
}

Chain::Scatter Chain::prepare(Pool& pool, std::size_t max_bytes) {
  Scatter s;
  const bool small = max_bytes <= kSmallChunk;
  const SizeClass c = small ? SizeClass::small : SizeClass::large;
  std::size_t want = small ? 1 : std::min(kMaxScatter, (max_bytes + kLargeChunk - 1) / kLargeChunk);
  while (s.count_ < want) {
    Buffer b = Buffer::take(pool, c);
    if (!b) break;
    s.bufs_[s.count_] = b.asio_mutable();
    s.bytes_ += b.size();
    s.chunks_[s.count_++] = std::move(b);
  }
  return s;
}

void Chain::commit(Scatter& s, std::size_t n) {
  for (std::size_t i = 0; i < s.count_; ++i) {
    Buffer& b = s.chunks_[i];
    if (n > 0) {
      const std::size_t used = std::min(n, b.size());
      b.truncate(used);
      n -= used;
      append(std::move(b));
    } else {
      b.reset();
    }
  }
  s.count_ = s.bytes_ = 0;
}

}  // namespace flowrelay::buffers
