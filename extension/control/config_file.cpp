#include "extension/control/config_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace flowrelay::control {
namespace {

/// "2 MiB", "512 KiB", "1048577 bytes": exact, in the largest unit that divides the size.
std::string size_text(std::size_t n) {
  constexpr std::size_t KiB = 1024, MiB = KiB * KiB;
  if (n >= MiB && n % MiB == 0) return std::to_string(n / MiB) + " MiB";
  if (n >= KiB && n % KiB == 0) return std::to_string(n / KiB) + " KiB";
  return std::to_string(n) + " bytes";
}

const char* file_type(mode_t mode) {
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a file";
}

ConfigFileText failed(const std::string& path, int error, const std::string& what) {
  ConfigFileText t;
  t.error = error;
  t.message = path + ": " + what;
  return t;
}

/// The file behind `fd` is a regular file no larger than `limit`; otherwise why not.
ConfigFileText check_opened(const std::string& path, int fd, std::size_t limit) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return failed(path, errno, std::string("cannot read: ") + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) return failed(path, EISDIR, "is a directory");
  if (!S_ISREG(st.st_mode))
    return failed(path, EINVAL, std::string("is not a regular file (") + file_type(st.st_mode) + ")");
  if (st.st_size > 0 && static_cast<std::size_t>(st.st_size) > limit)
    return failed(path, EFBIG,
                  "is " + size_text(static_cast<std::size_t>(st.st_size)) + ", over the " + size_text(limit) + " limit");
  ConfigFileText ok;
  ok.bytes.reserve(static_cast<std::size_t>(st.st_size));
  return ok;
}

}  // namespace

ConfigFileText read_config_file(const std::string& path, std::size_t limit) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    const int err = errno;
    // A Unix socket cannot be opened at all (ENXIO): name what is there rather than errno's text.
    struct stat st {};
    if (err == ENXIO && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      return failed(path, EINVAL, std::string("is not a regular file (") + file_type(st.st_mode) + ")");
    return failed(path, err, std::string("cannot read: ") + std::strerror(err));
  }
  ConfigFileText t = check_opened(path, fd, limit);
  // Until EOF, but never more than the cap: the file may have grown since fstat(), or have a size
  // fstat() does not know (procfs says 0).
  char buf[16384];
  while (t) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      t = failed(path, errno, std::string("cannot read: ") + std::strerror(errno));
      break;
    }
    if (t.bytes.size() + static_cast<std::size_t>(n) > limit) {
      t = failed(path, EFBIG, "passed the " + size_text(limit) + " limit while being read");
      break;
    }
    t.bytes.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return t;
}

}  // namespace flowrelay::control
