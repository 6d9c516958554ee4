#pragma once
// The platform seam for splice(2): socket -> pipe -> socket moves pages inside the kernel, so bulk
// bytes never cross into userspace at all. Linux only; elsewhere supported() is false and the relay
// uses its chunk pumps.
//
// A pipe is held only while a direction is moving bytes: a parked (idle) direction gives it back
// to its shard's small cache of empty pipes.

#include "relay/tcp_flow.hpp"

#include <cstddef>
#include <vector>

namespace flowrelay::relay {

class SplicePipe {
 public:
  SplicePipe() = default;
  SplicePipe(SplicePipe&& o) noexcept;
  SplicePipe& operator=(SplicePipe&& o) noexcept;
  SplicePipe(const SplicePipe&) = delete;
  SplicePipe& operator=(const SplicePipe&) = delete;
  ~SplicePipe();

  static bool supported() noexcept;

  /// An empty pipe holding at least `capacity` bytes, from the calling thread's cache or new;
  /// an invalid pipe when none can be had (out of descriptors): the caller falls back.
  static SplicePipe take(std::size_t capacity);
  /// Returns an empty pipe to the calling thread's cache (closes it when the cache is full or the
  /// pipe still holds bytes).
  static void give_back(SplicePipe pipe);

  explicit operator bool() const noexcept { return write_fd_ >= 0; }
  std::size_t held() const noexcept { return held_; }  // bytes in the pipe

  /// Moves up to max bytes from socket `from` into the pipe without blocking.
  IoResult fill(int from, std::size_t max);
  /// Moves what the pipe holds to socket `to` without blocking.
  IoResult drain(int to);

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::size_t capacity_ = 0;
  std::size_t held_ = 0;
};

}  // namespace flowrelay::relay
