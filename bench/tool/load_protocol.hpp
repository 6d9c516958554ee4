#pragma once

#include <boost/asio/ip/address.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace flowrelay::bench {

/// The first byte a client sends on a TCP flow to the bench server says what the flow is for.
/// Everything after it is payload. A relay in between forwards it like any other byte.
enum class Command : char {
  echo = 'e',   // every byte comes back (rr, cps, hold)
  sink = 's',   // bytes are read and dropped (stream --direction up)
  source = 'd', // the server writes until the client goes away (stream --direction down)
  both = 'b',   // sink and source at once (stream --direction both)
  once = 'o',   // u16 length (big-endian), that many bytes; the server echoes them and closes (cps)
};

/// UDP datagrams carry this header; the server echoes the datagram unchanged.
struct DatagramHeader {
  std::uint64_t seq;
  std::uint64_t sent_ns; // the client's steady clock
};

struct HostPort {
  boost::asio::ip::address address;
  std::uint16_t port = 0;
};

/// "127.0.0.1:9000", "[::1]:9000" or ":9000" (loopback). Numeric addresses only: the tool
/// measures loopback paths, a name lookup would only hide where the traffic goes.
std::optional<HostPort> parse_host_port(const std::string& text);

} // namespace flowrelay::bench
