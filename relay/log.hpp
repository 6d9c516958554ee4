#pragma once
// One spdlog logger per module, looked up by name: the one registered under that name (a host
// program may register its own sinks first), or a stderr logger created once.

#include <spdlog/logger.h>

#include <memory>
#include <string>

namespace flowrelay::relay {

/// Thread-safe; the same logger every time for one name. Keep the result (a static local) on hot
/// paths: the lookup takes spdlog's registry lock.
std::shared_ptr<spdlog::logger> named_logger(const std::string& name);

}  // namespace flowrelay::relay
