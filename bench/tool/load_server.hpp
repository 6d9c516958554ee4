#pragma once

#include "load_protocol.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace flowrelay::bench {

/// The bench's own far end: one TCP listener speaking the Command protocol (echo, sink, source,
/// both) and one UDP echo socket. Runs on `threads` io_contexts, one thread each, accepted flows
/// dealt round-robin. start() returns once both sockets are bound; stop() (or the destructor)
/// closes everything and joins the threads. Meant for loopback.
class LoadServer {
public:
  struct Options {
    std::string tcp_listen = "127.0.0.1:0"; // empty: no TCP
    std::string udp_listen = "127.0.0.1:0"; // empty: no UDP
    unsigned threads = 1;
  };

  explicit LoadServer(Options options);
  ~LoadServer();
  LoadServer(const LoadServer&) = delete;
  LoadServer& operator=(const LoadServer&) = delete;

  /// Throws std::runtime_error (with the address) when a socket cannot be bound.
  void start();
  void stop();

  std::uint16_t tcp_port() const;
  std::uint16_t udp_port() const;
  std::uint64_t tcp_accepted() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace flowrelay::bench
