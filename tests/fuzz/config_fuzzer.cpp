// control::parse_config on arbitrary bytes with the Linux platform caps. A ConfigError is the
// parser's answer to bad input; any other exception (an uncaught one aborts) or a sanitizer report
// is a crash.
#include "extension/control/config.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace flowrelay::control;
  try {
    (void)parse_config(std::string_view(reinterpret_cast<const char*>(data), size), PlatformCaps::for_linux());
  } catch (const ConfigError&) {
  }
  return 0;
}
