#pragma once
// relay::TcpFlow over an NEAppProxyTCPFlow (through NeTcpFlowOps): the app's side of a claimed TCP
// flow on macOS.
//
// NE is completion-based, the relay's pumps are readiness-based; this class sits between:
//   reads   one NE read outstanding at a time, issued as soon as the flow is open and again after
//           each completion while fewer than `watermark` bytes wait for the relay. Each NSData
//           becomes an external Buffer (no copy); the pump takes them from `read()`.
//   writes  each Buffer the pump writes goes to NE as it is (NSData over the chunk, no copy) while
//           fewer than `watermark` bytes are in flight; past it `write()` would block, and
//           `wait_writable()` resumes once completions bring the bytes in flight down to half.
//   closes  EOF and half-closes map to closeRead/closeWrite; a close of the write side waits for
//           the writes in flight, and nothing is closed before the open completed.
// Completions arrive on any thread: each stores its result and posts one wake-up to the flow's
// shard (at most one queued per flow, in memory the flow owns); only the shard's thread touches
// the flow's state. A completion that arrives after the flow is gone is absorbed and its bytes are
// given back.

#include "extension/apple/ne_flow_ops.hpp"
#include "extension/apple/reactor_port.hpp"
#include "relay/tcp_flow.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/smart_ptr/intrusive_ptr.hpp>

#include <cstddef>
#include <memory>

namespace flowrelay::apple {

class NeTcpFlow final : public relay::TcpFlow {
 public:
  /// Opens `ops` at once. Construct, use and destroy on the shard `port` posts to.
  NeTcpFlow(std::shared_ptr<ReactorPort> port, std::unique_ptr<NeTcpFlowOps> ops, std::size_t watermark);
  /// Resets the flow if it is still open; writes in flight finish on their own.
  ~NeTcpFlow() override;
  NeTcpFlow(const NeTcpFlow&) = delete;
  NeTcpFlow& operator=(const NeTcpFlow&) = delete;

  void on_readable(ReadyFn fn, void* context) override;
  boost::asio::awaitable<boost::system::error_code> wait_writable() override;
  relay::IoResult read(buffers::Chain& into, std::size_t max) override;
  relay::IoResult write(buffers::Chain& from) override;
  void shutdown_write() override;
  void abort(bool reset) override;
  void close() override;

  struct State;  // shared with the completions in flight

 private:
  friend struct State;
  boost::intrusive_ptr<State> s_;
  boost::asio::steady_timer writable_;  // a writer waits on it; completions cancel it
  bool writer_waiting_ = false;
};

}  // namespace flowrelay::apple
