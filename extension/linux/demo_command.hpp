#pragma once
// `flowrelay demo`: the reclaim scenario on real sockets in two private network namespaces
// (an app namespace running the daemon, a world namespace with the destinations), with a live
// timeline and a closing table. Removes everything it made, also on Ctrl-C.

#include <cstddef>
#include <iosfwd>
#include <string>

namespace flowrelay::linux_host {

struct DemoOptions {
  std::size_t flows_per_kind = 4;
  /// 0: the A -> B -> C walk. N > 0: the reclaim figure instead: N cycles of A -> B (tcp/80 and
  /// udp/5353 reclaimed) and back to A (released), timeline off, median and max at the end.
  std::size_t cycles = 0;
};

/// `self` is the path of the flowrelay binary (the daemon is started from it). Exit 0 when every
/// check held, 1 when one failed, 3 when root / namespaces are missing (said exactly).
int demo_command(const DemoOptions& options, const std::string& self, std::ostream& out, std::ostream& err);

}  // namespace flowrelay::linux_host
