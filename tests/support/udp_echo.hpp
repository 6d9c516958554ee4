#pragma once
// A UDP echo server on a loopback address in its own thread. With `tell_peer`, each reply starts
// with the address the server saw the datagram come from ("127.0.0.1 <payload>"): a test judges
// who carried a flow by what the far end saw.

#include "relay/flow_meta.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace flowrelay::test {

class UdpEcho {
 public:
  explicit UdpEcho(const char* address = "127.0.0.1", bool tell_peer = false) : tell_peer_(tell_peer) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 8 << 20;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    ::inet_pton(AF_INET, address, &a.sin_addr);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    endpoint_ = {boost::asio::ip::make_address(address), ntohs(a.sin_port)};
    thread_ = std::thread([this] { serve(); });
  }
  ~UdpEcho() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  UdpEcho(const UdpEcho&) = delete;
  UdpEcho& operator=(const UdpEcho&) = delete;

  const relay::Endpoint& endpoint() const { return endpoint_; }

 private:
  void serve() {
    std::vector<char> buf(65536);
    std::string reply;
    for (;;) {
      sockaddr_in from{};
      socklen_t fl = sizeof from;
      ssize_t n = ::recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &fl);
      if (n < 0 || stop_) return;  // shut down
      const char* out = buf.data();
      std::size_t len = std::size_t(n);
      if (tell_peer_) {
        char peer[INET_ADDRSTRLEN] = {};
        ::inet_ntop(AF_INET, &from.sin_addr, peer, sizeof peer);
        reply.assign(peer).append(" ").append(buf.data(), std::size_t(n));
        out = reply.data();
        len = reply.size();
      }
      ::sendto(fd_, out, len, 0, reinterpret_cast<sockaddr*>(&from), fl);
    }
  }

  bool tell_peer_;
  int fd_;
  std::atomic<bool> stop_{false};
  relay::Endpoint endpoint_;
  std::thread thread_;
};

}  // namespace flowrelay::test
