#pragma once
// A TCP echo server in a forked child process: scale tests put their servers in another process so
// that client, relay and server descriptors do not all count against one open-files limit.

#include "tests/support/net.hpp"

#include <sys/epoll.h>
#include <fcntl.h>
#include <sys/wait.h>

#include <csignal>

namespace flowrelay::test {

class EchoChild {
 public:
  /// Forks before any thread exists in the caller (call it first in a test).
  EchoChild() {
    Fd listener = tcp_listen();
    port_ = local_port(listener.get());
    int ctl[2];
    if (::pipe2(ctl, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(ctl[1]);
      serve(listener.get(), ctl[0]);
      ::_exit(0);
    }
    ::close(ctl[0]);
    ctl_ = Fd(ctl[1]);
  }
  ~EchoChild() {
    ctl_.reset();  // EOF on the control pipe: the child exits
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  std::uint16_t port() const { return port_; }

 private:
  static void serve(int listener, int ctl) {
    raise_fd_limit();
    ::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK);
    int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    ev.data.fd = ctl;
    ::epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev);
    std::vector<epoll_event> events(256);
    std::vector<char> buf(1 << 16);
    for (;;) {
      int n = ::epoll_wait(ep, events.data(), int(events.size()), -1);
      for (int i = 0; i < n; ++i) {
        int fd = events[i].data.fd;
        if (fd == ctl) return;
        if (fd == listener) {
          int c;
          while ((c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
            ev.events = EPOLLIN;
            ev.data.fd = c;
            ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
          }
          continue;
        }
        ssize_t k = ::recv(fd, buf.data(), buf.size(), 0);
        if (k > 0) {
          // Replies are small in these tests; a blocking-ish retry is enough.
          std::size_t off = 0;
          while (off < std::size_t(k)) {
            ssize_t w = ::send(fd, buf.data() + off, std::size_t(k) - off, MSG_NOSIGNAL);
            if (w > 0) off += std::size_t(w);
            else if (errno != EAGAIN) break;
          }
        } else if (k == 0 || errno != EAGAIN) {
          ::close(fd);
        }
      }
    }
  }

  Fd ctl_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

}  // namespace flowrelay::test
