#pragma once
// control::ConfigSource over ConfigFileSource: the Linux file source the ConfigWatcher consumes.
// Header-only so flowrelay::linux_host itself does not link the control plane; whoever includes
// this (the daemon) links both.
//
// The owner drives it on the watcher's thread: after ConfigWatcher::add_source(src), wait for
// src.fd() to be readable (asio::posix::stream_descriptor on a dup of it, or any poll loop) and call
// src.handle_events(); events reach the sink inside that call, as the ConfigSource contract asks.

#include "extension/control/config_watcher.hpp"
#include "extension/linux/config_file_source.hpp"

#include <string>
#include <utility>

namespace flowrelay::linux_host {

class InotifyConfigSource final : public control::ConfigSource {
 public:
  /// Throws std::system_error if the file's directory cannot be watched.
  explicit InotifyConfigSource(std::string path)
      : file_(std::move(path), [this](const ConfigFileEvent& e) { deliver(e); }) {}
  InotifyConfigSource(const InotifyConfigSource&) = delete;
  InotifyConfigSource& operator=(const InotifyConfigSource&) = delete;

  /// Delivers the file's current state at once (content, or deleted/error), then every change.
  void start(control::ConfigSink sink) override {
    sink_ = std::move(sink);
    deliver(file_.read_current());
  }
  void stop() override { sink_ = nullptr; }
  /// Delivers the file's current content again (SIGHUP): the watcher reports it as unchanged
  /// when it is, or accepts it as a new epoch.
  void reread() { deliver(file_.read_current()); }

  int fd() const { return file_.fd(); }
  std::size_t handle_events() { return file_.handle_events(); }
  std::string name() const { return file_.name(); }

 private:
  void deliver(const ConfigFileEvent& e) {
    if (!sink_) return;
    control::ConfigEvent ev;
    switch (e.kind) {
      case ConfigFileEvent::Kind::content: ev.kind = control::ConfigEvent::Kind::content; break;
      case ConfigFileEvent::Kind::deleted: ev.kind = control::ConfigEvent::Kind::deleted; break;
      case ConfigFileEvent::Kind::error: ev.kind = control::ConfigEvent::Kind::error; break;
    }
    ev.source = file_.name();
    ev.bytes = e.bytes;
    ev.detail = e.detail;
    sink_(std::move(ev));
  }

  ConfigFileSource file_;
  control::ConfigSink sink_;
};

}  // namespace flowrelay::linux_host
