#include "relay/splice_pipe.hpp"

#include <boost/asio/error.hpp>

#include <cerrno>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace flowrelay::relay {

namespace {
using boost::system::error_code;

constexpr std::size_t kCachedPipes = 32;  // per thread: enough for the flows moving bulk at once
thread_local std::vector<SplicePipe> cache;

IoResult result_of(ssize_t n) {
  IoResult r;
  if (n > 0) {
    r.bytes = std::size_t(n);
  } else if (n == 0) {
    r.eof = true;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    r.would_block = true;
  } else {
    r.ec = error_code(errno, boost::system::system_category());
  }
  return r;
}
}  // namespace

SplicePipe::SplicePipe(SplicePipe&& o) noexcept
    : read_fd_(std::exchange(o.read_fd_, -1)),
      write_fd_(std::exchange(o.write_fd_, -1)),
      capacity_(std::exchange(o.capacity_, 0)),
      held_(std::exchange(o.held_, 0)) {}

SplicePipe& SplicePipe::operator=(SplicePipe&& o) noexcept {
  if (this != &o) {
    this->~SplicePipe();
    read_fd_ = std::exchange(o.read_fd_, -1);
    write_fd_ = std::exchange(o.write_fd_, -1);
    capacity_ = std::exchange(o.capacity_, 0);
    held_ = std::exchange(o.held_, 0);
  }
  return *this;
}

SplicePipe::~SplicePipe() {
  if (read_fd_ >= 0) ::close(read_fd_);
  if (write_fd_ >= 0) ::close(write_fd_);
  read_fd_ = write_fd_ = -1;
}

#ifdef __linux__

bool SplicePipe::supported() noexcept { return true; }

SplicePipe SplicePipe::take(std::size_t capacity) {
  while (!cache.empty()) {
    SplicePipe p = std::move(cache.back());
    cache.pop_back();
    if (p.capacity_ >= capacity) return p;
  }
  SplicePipe p;
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) return p;
  p.read_fd_ = fds[0];
  p.write_fd_ = fds[1];
  const int got = ::fcntl(p.write_fd_, F_SETPIPE_SZ, int(capacity));
  p.capacity_ = got > 0 ? std::size_t(got) : 65536;
  return p;
}

void SplicePipe::give_back(SplicePipe pipe) {
  if (pipe && pipe.held_ == 0 && cache.size() < kCachedPipes) cache.push_back(std::move(pipe));
}

IoResult SplicePipe::fill(int from, std::size_t max) {
  IoResult r = result_of(::splice(from, nullptr, write_fd_, nullptr, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
  held_ += r.bytes;
  return r;
}

IoResult SplicePipe::drain(int to) {
  IoResult r = result_of(::splice(read_fd_, nullptr, to, nullptr, held_, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
  held_ -= r.bytes;
  r.eof = false;  // 0 from a pipe with bytes held does not happen; never an EOF of the peer
  return r;
}

#else

bool SplicePipe::supported() noexcept { return false; }
SplicePipe SplicePipe::take(std::size_t) { return {}; }
void SplicePipe::give_back(SplicePipe) {}
IoResult SplicePipe::fill(int, std::size_t) { return {0, false, false, boost::asio::error::operation_not_supported}; }
IoResult SplicePipe::drain(int) { return {0, false, false, boost::asio::error::operation_not_supported}; }

#endif

}  // namespace flowrelay::relay
