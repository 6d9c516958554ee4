#pragma once
// The seam between the relay and Apple's NEAppProxyTCPFlow / NEAppProxyUDPFlow.
//
// FlowRelayProvider (the .mm) implements NeTcpFlowOps and NeUdpFlowOps over the real flows; the
// strict simulator in tests/apple implements them for Linux. Everything above this header is
// portable C++ and never names an NE type.
//
// The platform's rules, which every caller of these interfaces keeps (DESIGN.md "The macOS adapter"):
// - open() first, and no read or write before its completion reported success;
// - at most one read outstanding; an empty read with no error is EOF (UDP: an empty batch; a nil
//   batch means "nothing yet, read again");
// - a write's completion is the backpressure signal: bytes in flight stay under the watermark;
// - close_read() and close_write() are separate half-closes, each at most once; nothing is read
//   after close_read() and nothing written after close_write();
// - completions run on queues the system picks, possibly before the call that started them returns.

#include "buffers/buffer.hpp"
#include "relay/flow_meta.hpp"
#include "relay/udp_flow.hpp"

#include <boost/smart_ptr/intrusive_ptr.hpp>
#include <boost/system/error_code.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

namespace flowrelay::apple {

/// What an NE completion or a close carries in place of an NSError: none (nil) or the
/// NEAppProxyFlowError code; errors of other domains map to `other`.
enum class NeFlowError : std::uint8_t {
  none,
  not_connected,
  peer_reset,
  host_unreachable,
  invalid_argument,
  aborted,
  refused,
  timed_out,
  internal,
  datagram_too_large,
  read_already_pending,
  other,
};

const char* to_string(NeFlowError e);
/// The relay's view of an NE error (peer_reset -> connection_reset, ...); none -> success.
boost::system::error_code to_error_code(NeFlowError e);

/// Bytes the platform owns (an NSData's), handed over with the way to give them back. Move-only:
/// dropping it gives the bytes back; into_buffer() hands them to a Buffer without copying.
class NeBytes {
 public:
  NeBytes() noexcept = default;
  /// `release(context, data, size)` runs exactly once, on whichever thread drops the last view.
  NeBytes(const void* data, std::size_t size, buffers::ReleaseFn release, void* context) noexcept
      : data_(static_cast<std::byte*>(const_cast<void*>(data))), size_(size), release_(release), context_(context) {}
  NeBytes(NeBytes&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
        release_(std::exchange(o.release_, nullptr)), context_(std::exchange(o.context_, nullptr)) {}
  NeBytes& operator=(NeBytes&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      release_ = std::exchange(o.release_, nullptr);
      context_ = std::exchange(o.context_, nullptr);
    }
    return *this;
  }
  NeBytes(const NeBytes&) = delete;
  NeBytes& operator=(const NeBytes&) = delete;
  ~NeBytes() { reset(); }

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// A Buffer viewing these bytes, its control block taken from `pool` (the calling reactor
  /// thread's). Empty bytes, or a pool with no control block left, give an empty Buffer; the bytes
  /// are given back then.
  buffers::Buffer into_buffer(buffers::Pool& pool) && {
    if (size_ == 0 || release_ == nullptr) {
      reset();
      return {};
    }
    auto b = buffers::Buffer::wrap(pool, data_, size_, release_, context_);
    if (!b) {
      reset();
      return b;
    }
    data_ = nullptr;
    size_ = 0;
    release_ = nullptr;
    context_ = nullptr;
    return b;
  }

  void reset() noexcept {
    if (release_ != nullptr) release_(context_, data_, size_);
    data_ = nullptr;
    size_ = 0;
    release_ = nullptr;
    context_ = nullptr;
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  buffers::ReleaseFn release_ = nullptr;
  void* context_ = nullptr;
};

/// One datagram read from an NEAppProxyUDPFlow: its bytes and the endpoint the app sent it to.
struct NeDatagram {
  NeBytes payload;
  relay::Endpoint endpoint;
};

/// One readDatagrams completion: nullopt for nil arrays (nothing yet: read again), an empty vector
/// for EOF, else the datagrams in the order the app sent them.
using NeDatagramBatch = std::optional<std::vector<NeDatagram>>;

namespace detail {

/// Whatever an NE completion reports to: refcounted, so it lives until the last completion in
/// flight has run, whichever thread that is on.
class NeCompletionTarget {
 public:
  virtual ~NeCompletionTarget() = default;

  friend void intrusive_ptr_add_ref(NeCompletionTarget* t) noexcept {
    t->refs_.fetch_add(1, std::memory_order_relaxed);
  }
  friend void intrusive_ptr_release(NeCompletionTarget* t) noexcept {
    if (t->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete t;
  }

 private:
  std::atomic<std::uint32_t> refs_{0};
};

}  // namespace detail

/// A completion handler for one NE call. Copyable and allocation-free (a refcounted target, a
/// function pointer and a tag the caller chose, e.g. the bytes a write carried), so the .mm can
/// capture it in a block. Call it exactly once, from any thread.
template <typename... Args>
class NeCompletion {
 public:
  using Fn = void (*)(detail::NeCompletionTarget& target, std::uint64_t tag, Args... args);

  NeCompletion(boost::intrusive_ptr<detail::NeCompletionTarget> target, Fn fn, std::uint64_t tag = 0) noexcept
      : target_(std::move(target)), fn_(fn), tag_(tag) {}

  void operator()(Args... args) const { fn_(*target_, tag_, std::move(args)...); }

 private:
  boost::intrusive_ptr<detail::NeCompletionTarget> target_;
  Fn fn_;
  std::uint64_t tag_;
};

/// An NEAppProxyTCPFlow, as the bridge uses it.
class NeTcpFlowOps {
 public:
  virtual ~NeTcpFlowOps() = default;
  /// openWithLocalEndpoint: / openWithLocalFlowEndpoint:.
  virtual void open(NeCompletion<NeFlowError> done) = 0;
  /// readDataWithCompletionHandler:. Empty bytes with no error: the app closed its side (EOF).
  virtual void read(NeCompletion<NeBytes, NeFlowError> done) = 0;
  /// writeData:withCompletionHandler: over `bytes` without copying them (NSData with a
  /// deallocator that drops the Buffer); `done` runs once the flow has taken them.
  virtual void write(buffers::Buffer bytes, NeCompletion<NeFlowError> done) = 0;
  /// closeReadWithError: / closeWriteWithError: (none = nil: a clean half-close).
  virtual void close_read(NeFlowError error) = 0;
  virtual void close_write(NeFlowError error) = 0;
};

/// An NEAppProxyUDPFlow, as the bridge uses it.
class NeUdpFlowOps {
 public:
  virtual ~NeUdpFlowOps() = default;
  virtual void open(NeCompletion<NeFlowError> done) = 0;
  /// readDatagramsWithCompletionHandler:.
  virtual void read(NeCompletion<NeDatagramBatch, NeFlowError> done) = 0;
  /// writeDatagrams:sentByEndpoints:completionHandler:, each datagram to appear from its `peer`.
  /// Take what is needed before returning: copying a Buffer shares its bytes, never copies them.
  virtual void write(std::span<const relay::Datagram> datagrams, NeCompletion<NeFlowError> done) = 0;
  virtual void close_read(NeFlowError error) = 0;
  virtual void close_write(NeFlowError error) = 0;
};

}  // namespace flowrelay::apple
