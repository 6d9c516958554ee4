#pragma once
// What the shared state of every NE flow (NeTcpFlow, NeUdpFlow) has in common: a mailbox that
// completions fill on any thread under one lock, the open's result, and the single wake-up that
// carries the mailbox to the flow's shard. Internal to the bridge.

#include "extension/apple/ne_flow_ops.hpp"
#include "extension/apple/reactor_port.hpp"

#include <memory>
#include <mutex>
#include <optional>

namespace flowrelay::apple::detail {

/// CRTP: Derived::wake() runs on the shard, takes the mailbox under `mu` and acts on it.
template <typename Derived>
class NeFlowState : public NeCompletionTarget {
 public:
  explicit NeFlowState(std::shared_ptr<ReactorPort> p) : port(std::move(p)) {}

  /// A completion for one call, reporting to `fn` with `tag` (e.g. the bytes a write carried).
  template <typename... Args>
  NeCompletion<Args...> completion(typename NeCompletion<Args...>::Fn fn, std::uint64_t tag = 0) {
    return NeCompletion<Args...>(boost::intrusive_ptr<NeCompletionTarget>(this), fn, tag);
  }

  static Derived& of(NeCompletionTarget& t) { return static_cast<Derived&>(t); }

  static void on_open(NeCompletionTarget& t, std::uint64_t, NeFlowError e) {
    auto& s = of(t);
    std::lock_guard lk(s.mu);
    s.opened = e;
    s.wake_locked();
  }

  /// Queues Derived::wake() on the shard unless one is queued already; `mu` held. The wake-up's
  /// memory is the flow's own slot: nothing allocates per completion.
  void wake_locked() {
    if (wake_posted) return;
    wake_posted = true;
    port->post(slot, [self = boost::intrusive_ptr<Derived>(static_cast<Derived*>(this))] { self->wake(); });
  }

  // ---- Written by completions on any thread, under `mu`; taken by the shard in wake().
  std::mutex mu;
  bool wake_posted = false;
  std::optional<NeFlowError> opened;
  HandlerSlot slot;

  const std::shared_ptr<ReactorPort> port;
};

}  // namespace flowrelay::apple::detail
