#pragma once
// The control plane's named spdlog logger ("control").

#include <spdlog/logger.h>

#include <memory>

namespace flowrelay::control {

/// The "control" logger: the one registered under that name, or a stderr logger created once.
std::shared_ptr<spdlog::logger> logger();

}  // namespace flowrelay::control
