#pragma once
// What every UDP receive loop does per wake-up: a bounded number of datagrams, each into a fresh
// 64 KiB chunk; and when the pool has no chunk, drop one datagram rather than spin on a socket that
// stays readable.

#include "buffers/buffer.hpp"

#include <sys/socket.h>

namespace flowrelay::relay {

/// Datagrams one loop reads per wake-up before it yields to the shard's other work.
inline constexpr int kDatagramsPerWake = 64;

/// A chunk for the next datagram on fd; empty when the pool is exhausted, in which case the next
/// pending datagram has been discarded (count it as dropped).
inline buffers::Buffer take_datagram_chunk(int fd) {
  auto chunk = buffers::Buffer::take(*buffers::Pool::local(), buffers::SizeClass::large);
  if (!chunk) ::recv(fd, nullptr, 0, MSG_DONTWAIT);
  return chunk;
}

}  // namespace flowrelay::relay
