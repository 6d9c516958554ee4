#pragma once
// The config file, watched with inotify. It watches the file's DIRECTORY, not the file's inode:
// editors and config managers write a temp file and rename it over the target, which an inode
// watch would miss (the watched inode is simply unlinked).
//
// Driven by its fd so it runs on whichever thread owns it (the control plane's): register fd()
// for readability (e.g. asio::posix::stream_descriptor::async_wait(wait_read)) and call
// handle_events() when readable; the callback runs inside handle_events(), on that thread.
//
// Its event shape mirrors control::ConfigEvent (content | deleted | error, whole bytes each time),
// so adapting it to control::ConfigSource is a few lines (inotify_config_source.hpp). The bytes come
// from control::read_config_file: a regular file only, at most 1 MiB, never a blocking open.

#include "extension/linux/unique_fd.hpp"

#include <cstdint>
#include <functional>
#include <string>

namespace flowrelay::linux_host {

struct ConfigFileEvent {
  enum class Kind : std::uint8_t {
    content,  // the file was (re)written or renamed into place: `bytes` is its whole content
    deleted,  // the file was unlinked or renamed away (or its directory went away)
    error,    // the file could not be read: `detail` says why
  };
  Kind kind = Kind::content;
  std::string bytes;
  std::string detail;
};

/// Watches one file. Reports content only when it differs from what was last reported (a `touch`
/// or a rewrite with the same bytes is silent). Not thread-safe: one owner thread.
class ConfigFileSource {
 public:
  using Callback = std::function<void(const ConfigFileEvent&)>;

  /// Starts watching `path`'s directory. The file itself need not exist yet. Throws
  /// std::system_error if inotify or the directory watch cannot be set up.
  ConfigFileSource(std::string path, Callback callback);

  /// The inotify fd (non-blocking); readable when handle_events() has work.
  int fd() const { return fd_.get(); }

  /// Drains pending inotify events and invokes the callback for each change of the file.
  /// Returns the number of callbacks made. Never blocks.
  std::size_t handle_events();

  /// Reads the file now, as a `content` (or `deleted` / `error`) event, without invoking the
  /// callback; what it returns counts as reported (a later identical content stays silent).
  ConfigFileEvent read_current();

  const std::string& path() const { return path_; }
  /// "file:<path>": how the control plane names this source in its history.
  std::string name() const { return "file:" + path_; }

 private:
  ConfigFileEvent read_file() const;
  bool report(ConfigFileEvent event);

  std::string path_;
  std::string dir_;
  std::string base_;
  Callback callback_;
  UniqueFd fd_;
  int wd_ = -1;
  bool reported_any_ = false;
  ConfigFileEvent last_;
};

}  // namespace flowrelay::linux_host
