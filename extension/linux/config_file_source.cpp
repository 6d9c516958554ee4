#include "extension/linux/config_file_source.hpp"

#include "extension/control/config_file.hpp"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace flowrelay::linux_host {
namespace {

constexpr std::uint32_t kDirMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                   IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

}  // namespace

ConfigFileSource::ConfigFileSource(std::string path, Callback callback)
    : path_(std::move(path)), callback_(std::move(callback)) {
  const auto slash = path_.rfind('/');
  dir_ = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  base_ = slash == std::string::npos ? path_ : path_.substr(slash + 1);
  if (base_.empty()) throw std::system_error(EISDIR, std::generic_category(), path_);

  fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!fd_) throw std::system_error(errno, std::generic_category(), "inotify_init1");
  wd_ = ::inotify_add_watch(fd_.get(), dir_.c_str(), kDirMask);
  if (wd_ < 0) throw std::system_error(errno, std::generic_category(), "inotify watch " + dir_);
}

ConfigFileEvent ConfigFileSource::read_file() const {
  // A FIFO, a device or a directory renamed over the config is an error event, never a hang.
  control::ConfigFileText file = control::read_config_file(path_);
  ConfigFileEvent e;
  if (file) {
    e.bytes = std::move(file.bytes);
  } else if (file.error == ENOENT) {
    e.kind = ConfigFileEvent::Kind::deleted;
  } else {
    e.kind = ConfigFileEvent::Kind::error;
    e.detail = std::move(file.message);
  }
  return e;
}

bool ConfigFileSource::report(ConfigFileEvent event) {
  // Silent when nothing changed since the last report (same content, or still deleted).
  if (reported_any_ && event.kind == last_.kind && event.bytes == last_.bytes && event.detail == last_.detail)
    return false;
  reported_any_ = true;
  last_ = event;
  callback_(event);
  return true;
}

ConfigFileEvent ConfigFileSource::read_current() {
  auto e = read_file();
  reported_any_ = true;
  last_ = e;
  return e;
}

std::size_t ConfigFileSource::handle_events() {
  std::size_t calls = 0;
  alignas(inotify_event) char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) break;  // EAGAIN: drained
    bool touched = false, dir_gone = false;
    for (char* p = buf; p < buf + n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(p);
      p += sizeof(inotify_event) + ev->len;
      if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) dir_gone = true;
      else if (ev->len > 0 && base_ == ev->name) touched = true;
    }
    if (dir_gone) {
      ConfigFileEvent e;
      e.kind = ConfigFileEvent::Kind::deleted;
      e.detail = dir_ + ": directory removed or moved; no longer watched";
      calls += report(std::move(e)) ? 1 : 0;
    } else if (touched) {
      // Whatever happened to the name (written, renamed in or away, unlinked), the file's state
      // now is what counts: read it once per batch.
      calls += report(read_file()) ? 1 : 0;
    }
  }
  return calls;
}

}  // namespace flowrelay::linux_host
