#pragma once
// `flowrelay check-config FILE`: validate a config file and summarise it on one screen.

#include "extension/control/config.hpp"
#include "extension/control/platform.hpp"

#include <iosfwd>
#include <string>

namespace flowrelay::control {

/// Reads and validates `path` for this platform. Valid: prints a summary to `out`, returns 0.
/// Invalid: prints "PATH: <error path>: <message>" to `err`, returns 2. Not a regular file, over
/// the size cap, unreadable: prints read_config_file's "PATH: <what is wrong>", returns 2.
int check_config_command(const std::string& path, std::ostream& out, std::ostream& err);
/// The same for a chosen platform (e.g. checking a macOS config on Linux).
int check_config_command(const std::string& path, std::ostream& out, std::ostream& err, const PlatformCaps& platform);

/// The summary check-config prints: default, rules as a table (first 20), reclaim, limits, linux.
std::string config_summary(const Config& config, const PlatformCaps& platform);

}  // namespace flowrelay::control
