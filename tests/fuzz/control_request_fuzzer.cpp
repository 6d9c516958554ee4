// The control socket's request parsing: what the server reads as one request (up to the first '\n'
// within max_request bytes, as async_read_until does; nothing when the client closes without one)
// and the command it hands the daemon (control_command). Properties, not just "no crash": the
// command is the line less trailing CR/LF only, and never ends in one.
#include "extension/linux/control_request.hpp"
#include "extension/linux/control_socket.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "control_request_fuzzer: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace flowrelay::linux_host;
  const std::string_view received(reinterpret_cast<const char*>(data), size);
  const std::size_t max_request = ControlServerLimits{}.max_request;
  const std::size_t nl = received.substr(0, max_request).find('\n');
  if (nl == std::string_view::npos && received.size() >= max_request) return 0;  // too long: closed unanswered
  const std::string_view line = nl == std::string_view::npos ? std::string_view() : received.substr(0, nl + 1);

  const std::string_view cmd = control_command(line);
  check(cmd.data() == line.data() && cmd.size() <= line.size(), "command is not a prefix of its line");
  check(cmd.empty() || (cmd.back() != '\n' && cmd.back() != '\r'), "command ends in CR or LF");
  check(line.substr(cmd.size()).find_first_not_of("\r\n") == std::string_view::npos,
        "more than CR/LF dropped from the line");
  check(cmd.find('\n') == std::string_view::npos, "command spans two lines");
  return 0;
}
