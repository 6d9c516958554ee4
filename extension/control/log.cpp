#include "extension/control/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace flowrelay::control {

std::shared_ptr<spdlog::logger> logger() {
  static const std::shared_ptr<spdlog::logger> instance = [] {
    if (auto existing = spdlog::get("control")) return existing;
    try {
      return spdlog::stderr_color_mt("control");
    } catch (const spdlog::spdlog_ex&) {  // registered by someone else in the meantime
      return spdlog::get("control");
    }
  }();
  return instance;
}

}  // namespace flowrelay::control
