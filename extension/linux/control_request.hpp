#pragma once
// The control socket's request parsing, apart from its sockets (control_socket.cpp) so that it can
// be tested and fuzzed (tests/fuzz/control_request_fuzzer.cpp) without a daemon.

#include <string_view>

namespace flowrelay::linux_host {

/// The command of a request line as the control socket read it: the bytes up to and including the
/// first '\n' (empty when the client closed without one). Trailing CR and LF are dropped; the
/// command is compared as is (no other trimming, no case folding).
inline std::string_view control_command(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  return line;
}

}  // namespace flowrelay::linux_host
