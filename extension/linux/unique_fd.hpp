#pragma once
// Owning file descriptor: the Linux helpers hand out plain fds so callers can wrap them in
// whatever reactor they run (e.g. asio::ip::tcp::acceptor::assign, posix::stream_descriptor).

#include <unistd.h>

#include <utility>

namespace flowrelay::linux_host {

/// Closes its fd on destruction. Move-only; release() hands ownership over (e.g. to Asio).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace flowrelay::linux_host
