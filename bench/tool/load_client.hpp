#pragma once

#include "histogram.hpp"
#include "report.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace flowrelay::bench {

/// Every client mode: where to connect, for how long, how many flows on how many threads
/// (one io_context per thread, flow i on thread i % threads).
struct ClientOptions {
  std::string target = "127.0.0.1:9000";
  double duration_s = 5.0;
  unsigned flows = 1;
  unsigned threads = 1;
};

// --- stream: bulk throughput -------------------------------------------------------------------
enum class Direction { up, down, both };
struct StreamOptions : ClientOptions {
  Direction direction = Direction::down;
  std::size_t chunk_bytes = 128 * 1024;
};
struct StreamResult {
  double seconds = 0;
  std::uint64_t bytes_up = 0;
  std::uint64_t bytes_down = 0;
  std::vector<std::uint64_t> flow_bytes; // both directions, per flow
  std::uint64_t errors = 0;              // flows that could not connect
};
StreamResult run_stream(const StreamOptions& options);
Report to_report(const StreamOptions& options, const StreamResult& result);

// --- rr: request/response latency --------------------------------------------------------------
struct RrOptions : ClientOptions {
  std::size_t size = 64; // request and response bytes, 1..65536 (written whole before reading)
};
struct RrResult {
  double seconds = 0;
  std::uint64_t transactions = 0;
  std::uint64_t errors = 0;
  Histogram latency_ns;
};
RrResult run_rr(const RrOptions& options);
Report to_report(const RrOptions& options, const RrResult& result);

// --- cps: connect, one round trip, close ---------------------------------------------------------
struct CpsOptions : ClientOptions { // flows = concurrency
  std::size_t size = 1;
};
struct CpsResult {
  double seconds = 0;
  std::uint64_t connections = 0;
  std::uint64_t errors = 0;
  Histogram latency_ns; // connect + first response byte
};
CpsResult run_cps(const CpsOptions& options);
Report to_report(const CpsOptions& options, const CpsResult& result);

// --- udp: datagrams ------------------------------------------------------------------------------
struct UdpOptions : ClientOptions { // flows = client sockets
  std::size_t size = 64;
  double rate = 0;          // datagrams/s per flow; 0 = as fast as the window allows
  unsigned window = 32;     // datagrams in flight per flow; 0 = unbounded (needs a rate)
  double stall_ms = 50;     // a full window with no reply this long counts as lost
  double drain_s = 0.2;     // how long to wait for late replies after the last send
};
struct UdpResult {
  double seconds = 0;
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t reordered = 0;
  std::uint64_t errors = 0;
  Histogram latency_ns;
};
UdpResult run_udp(const UdpOptions& options);
Report to_report(const UdpOptions& options, const UdpResult& result);

// --- hold: many idle flows, memory per flow ------------------------------------------------------
struct HoldOptions : ClientOptions { // flows = how many to hold; duration_s = open timeout
  int pid = 0;             // process whose memory is measured; 0 = none
  bool tree = false;       // sum PSS over pid and its descendants (forking relays)
  double hold_s = 0;       // keep the flows open this long after measuring
  unsigned parallel = 64;  // connects in flight while opening
};
struct HoldResult {
  double open_seconds = 0;
  std::uint64_t opened = 0;
  std::uint64_t failed = 0;
  std::int64_t memory_before = -1; // bytes; -1 = not measured
  std::int64_t memory_after = -1;
};
HoldResult run_hold(const HoldOptions& options);
Report to_report(const HoldOptions& options, const HoldResult& result);

/// Resident memory of `pid` in bytes (VmRSS), or with `tree` the PSS summed over pid and every
/// descendant. -1 when the process cannot be read.
std::int64_t process_memory(int pid, bool tree);

/// Raises the soft open-files limit to the hard limit (hold opens thousands of sockets).
void raise_fd_limit();

} // namespace flowrelay::bench
