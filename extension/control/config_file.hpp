#pragma once
// Reading the config file: the one way every reader (check-config, `run` at start, the file
// watcher's reloads, the CLI looking up the control socket) gets its bytes (DESIGN.md, "Security
// model": a regular file after links, read with a size cap and without blocking).
//
// Opened with O_NONBLOCK | O_NOCTTY, so a FIFO (or a terminal) at the path never hangs the open;
// fstat() on the opened file, not stat() on the name, so what is checked is what is read; at most
// the cap is read even when the size fstat() reported was wrong or the file grows meanwhile.
// POSIX only (open/fstat/read): portable to macOS like the rest of extension/control.

#include <cstddef>
#include <string>

namespace flowrelay::control {

inline constexpr std::size_t kMaxConfigFileBytes = std::size_t{1} << 20;  // 1 MiB

/// A config file's bytes, or why there are none.
struct ConfigFileText {
  std::string bytes;
  int error = 0;        // 0 when read; otherwise an errno value (ENOENT, EACCES, EISDIR, EINVAL, EFBIG, ...)
  std::string message;  // "PATH: is not a regular file (a FIFO)"; empty when read
  explicit operator bool() const { return error == 0; }
};

/// Reads the regular file at `path` (symbolic links followed), at most `limit` bytes. Never
/// blocks on a FIFO or device, never throws for a bad path.
ConfigFileText read_config_file(const std::string& path, std::size_t limit = kMaxConfigFileBytes);

}  // namespace flowrelay::control
