#include "relay/log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace flowrelay::relay {

std::shared_ptr<spdlog::logger> named_logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  try {
    return spdlog::stderr_color_mt(name);
  } catch (const spdlog::spdlog_ex&) {  // registered by another thread in the meantime
    return spdlog::get(name);
  }
}

}  // namespace flowrelay::relay
