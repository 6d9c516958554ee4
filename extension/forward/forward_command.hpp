#pragma once
// `flowrelay forward`: the port-forward daemon.

#include <chrono>
#include <cstdint>
#include <string>

namespace flowrelay::forward {

struct ForwardCommand {
  std::string listen;  // ADDR:PORT
  std::string to;      // ADDR:PORT
  bool udp = false;
  unsigned threads = 0;  // 0: one per core
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds drain{5000};  // on SIGINT/SIGTERM, how long flows may finish
  std::uint32_t mark = 0;                 // SO_MARK on upstream sockets
  bool splice = false;                    // move bulk bytes with splice(2)
  std::string metrics_listen;             // ADDR:PORT for Prometheus; empty: none
  std::string via;                        // socks5://ADDR:PORT or http://ADDR:PORT; empty: direct
};

/// Runs until SIGINT or SIGTERM, then stops accepting, drains and returns 0. Returns 2 on bad
/// arguments and 1 when it cannot listen, with the reason on stderr.
int run_forward(const ForwardCommand& cmd);

}  // namespace flowrelay::forward
