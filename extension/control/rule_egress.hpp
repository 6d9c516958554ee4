#pragma once
// The egress of a daemon whose rules name upstreams: each claimed TCP flow leaves the way the rule
// that claimed it says (`via`: an upstream proxy, or direct when absent). Each epoch brings its own
// table of upstreams; a flow dialled under an older table keeps it until its dial ends.

#include "extension/control/epoch_manager.hpp"
#include "relay/egress.hpp"
#include "relay/proxy_egress.hpp"

#include <memory>
#include <mutex>
#include <vector>

namespace flowrelay::control {

class RuleEgress final : public relay::Egress {
 public:
  /// What one epoch dials with: its rules and one ProxyEgress per upstream a rule names.
  struct Table;

  /// `direct`: connect timeout and mark for direct flows and for the sockets to the upstreams.
  explicit RuleEgress(relay::DirectEgressOptions direct);
  ~RuleEgress() override;

  /// Builds `epoch`'s table, reading each upstream's password_file. Throws std::runtime_error that
  /// names the upstream and the file when one cannot be read; nothing changes then.
  std::shared_ptr<const Table> prepare(const Epoch& epoch) const;
  /// New dials use `table` from now on.
  void install(std::shared_ptr<const Table> table);

  boost::asio::awaitable<relay::DialResult> dial_tcp(const relay::FlowMeta& meta,
                                                     boost::asio::any_io_executor ex) override;
  /// UDP rules cannot name an upstream (config validation), so UDP always leaves directly.
  boost::system::error_code open_udp(boost::asio::ip::udp::socket& socket, const relay::Endpoint& dst) override {
    return direct_.open_udp(socket, dst);
  }

 private:
  std::shared_ptr<const Table> current() const;

  relay::DirectEgress direct_;
  mutable std::mutex mu_;  // one short lock per dial, never per packet
  std::shared_ptr<const Table> table_;
};

}  // namespace flowrelay::control
