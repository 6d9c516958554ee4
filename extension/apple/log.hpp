#pragma once
// The macOS adapter's logger ("apple"). FlowRelayProvider registers it with a sink into the
// unified log before anything logs; elsewhere it is a stderr logger.

#include "relay/log.hpp"

namespace flowrelay::apple {

inline std::shared_ptr<spdlog::logger> logger() {
  static const auto l = relay::named_logger("apple");
  return l;
}

}  // namespace flowrelay::apple
