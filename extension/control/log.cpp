#include "extension/control/log.hpp"

#include "relay/log.hpp"

namespace flowrelay::control {

std::shared_ptr<spdlog::logger> logger() {
  static const auto instance = relay::named_logger("control");
  return instance;
}

}  // namespace flowrelay::control
