// FlowRelayProvider: a thin Objective-C++ shell around the portable ProviderCore
// (extension/apple/provider_core.hpp). It turns NE objects into the core's calls and implements
// the NE flow seams (NeTcpFlowOps, NeUdpFlowOps) over the real flows. It is the only file of the
// project that names a NetworkExtension type. Build: ARC (-fobjc-arc); see README.md here.
//
// Bytes cross without a copy both ways: a received NSData becomes the NeBytes a Buffer wraps (the
// NSData is retained until the relay lets go of it), and an outgoing Buffer becomes an NSData made
// with initWithBytesNoCopy:length:deallocator: whose deallocator block holds the Buffer.
// macOS 15 replaced NWEndpoint with nw_endpoint_t across NE; both are used behind @available, so
// one binary serves macOS 11 and later.

#import "extension/apple/flow_relay_provider.h"

#import <Foundation/Foundation.h>
#import <Network/Network.h>
#import <NetworkExtension/NetworkExtension.h>

#include <bsm/libbsm.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "extension/apple/log.hpp"
#include "extension/apple/provider_core.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using flowrelay::apple::NeBytes;
using flowrelay::apple::NeCompletion;
using flowrelay::apple::NeDatagram;
using flowrelay::apple::NeDatagramBatch;
using flowrelay::apple::NeFlowError;
namespace relay = flowrelay::relay;
namespace buffers = flowrelay::buffers;

// ---- Errors

NeFlowError FRFlowError(NSError* _Nullable error) {
  if (error == nil) return NeFlowError::none;
  if (![error.domain isEqualToString:NEAppProxyErrorDomain]) return NeFlowError::other;
  switch (error.code) {
    case NEAppProxyFlowErrorNotConnected: return NeFlowError::not_connected;
    case NEAppProxyFlowErrorPeerReset: return NeFlowError::peer_reset;
    case NEAppProxyFlowErrorHostUnreachable: return NeFlowError::host_unreachable;
    case NEAppProxyFlowErrorInvalidArgument: return NeFlowError::invalid_argument;
    case NEAppProxyFlowErrorAborted: return NeFlowError::aborted;
    case NEAppProxyFlowErrorRefused: return NeFlowError::refused;
    case NEAppProxyFlowErrorTimedOut: return NeFlowError::timed_out;
    case NEAppProxyFlowErrorInternal: return NeFlowError::internal;
    case NEAppProxyFlowErrorDatagramTooLarge: return NeFlowError::datagram_too_large;
    case NEAppProxyFlowErrorReadAlreadyPending: return NeFlowError::read_already_pending;
  }
  return NeFlowError::other;
}

// The error a close passes on to the app (nil: a clean half-close).
NSError* _Nullable FRNSError(NeFlowError e) {
  NSInteger code = NEAppProxyFlowErrorAborted;
  switch (e) {
    case NeFlowError::none: return nil;
    case NeFlowError::not_connected: code = NEAppProxyFlowErrorNotConnected; break;
    case NeFlowError::peer_reset: code = NEAppProxyFlowErrorPeerReset; break;
    case NeFlowError::host_unreachable: code = NEAppProxyFlowErrorHostUnreachable; break;
    case NeFlowError::invalid_argument: code = NEAppProxyFlowErrorInvalidArgument; break;
    case NeFlowError::aborted: code = NEAppProxyFlowErrorAborted; break;
    case NeFlowError::refused: code = NEAppProxyFlowErrorRefused; break;
    case NeFlowError::timed_out: code = NEAppProxyFlowErrorTimedOut; break;
    case NeFlowError::internal: code = NEAppProxyFlowErrorInternal; break;
    case NeFlowError::datagram_too_large: code = NEAppProxyFlowErrorDatagramTooLarge; break;
    case NeFlowError::read_already_pending: code = NEAppProxyFlowErrorReadAlreadyPending; break;
    case NeFlowError::other: code = NEAppProxyFlowErrorInternal; break;
  }
  return [NSError errorWithDomain:NEAppProxyErrorDomain code:code userInfo:nil];
}

NSString* FRString(const std::string& s) {
  NSString* text = [NSString stringWithUTF8String:s.c_str()];
  return text != nil ? text : @"(not UTF-8)";
}

std::string FRDescribe(NSError* error) {
  const char* text = error.localizedDescription.UTF8String;
  return text != nullptr ? text : "error";
}

NSError* FRError(const std::string& message) {
  return [NSError errorWithDomain:@"flowrelay" code:1 userInfo:@{NSLocalizedDescriptionKey : FRString(message)}];
}

// ---- Bytes: NSData <-> Buffer, no copy

void FRReleaseData(void* context, std::byte*, std::size_t) noexcept {
  NSData* data = (__bridge_transfer NSData*)context;  // ARC releases it at the end of this scope
  (void)data;
}

NeBytes FRBytes(NSData* _Nullable data) {
  if (data == nil || data.length == 0) return {};
  return NeBytes(data.bytes, data.length, &FRReleaseData, (__bridge_retained void*)data);
}

NSData* FRData(buffers::Buffer b) {
  void* bytes = const_cast<std::byte*>(b.data());
  const NSUInteger length = b.size();
  // The deallocator block holds a view of the chunk until NE is done with the NSData.
  return [[NSData alloc] initWithBytesNoCopy:bytes
                                      length:length
                                 deallocator:^(void*, NSUInteger) {
                                   (void)b;
                                 }];
}

// ---- Endpoints

std::optional<relay::Endpoint> FREndpoint(const std::string& host, std::uint16_t port) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (ec) return std::nullopt;  // a name, not an address: nothing to dial without DNS
  return relay::Endpoint{address, port};
}

std::optional<relay::Endpoint> FREndpoint(NWEndpoint* _Nullable endpoint) {
  if (![endpoint isKindOfClass:[NWHostEndpoint class]]) return std::nullopt;
  NWHostEndpoint* host = (NWHostEndpoint*)endpoint;
  const char* name = host.hostname.UTF8String;
  const char* port = host.port.UTF8String;
  if (name == nullptr || port == nullptr) return std::nullopt;
  return FREndpoint(name, static_cast<std::uint16_t>(strtoul(port, nullptr, 10)));
}

std::optional<relay::Endpoint> FREndpoint(nw_endpoint_t _Nullable endpoint) __attribute__((availability(macos, introduced = 10.14))) {
  if (endpoint == nil) return std::nullopt;
  if (nw_endpoint_get_type(endpoint) == nw_endpoint_type_address) {
    const struct sockaddr* sa = nw_endpoint_get_address(endpoint);
    if (sa == nullptr) return std::nullopt;
    if (sa->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      boost::asio::ip::address_v4::bytes_type b;
      memcpy(b.data(), &in->sin_addr, 4);
      return relay::Endpoint{boost::asio::ip::address_v4(b), ntohs(in->sin_port)};
    }
    if (sa->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      boost::asio::ip::address_v6::bytes_type b;
      memcpy(b.data(), &in6->sin6_addr, 16);
      return relay::Endpoint{boost::asio::ip::address_v6(b, in6->sin6_scope_id), ntohs(in6->sin6_port)};
    }
    return std::nullopt;
  }
  const char* name = nw_endpoint_get_hostname(endpoint);
  if (name == nullptr) return std::nullopt;
  return FREndpoint(name, nw_endpoint_get_port(endpoint));
}

NWHostEndpoint* FRHostEndpoint(const std::string& host, std::uint16_t port) {
  return [NWHostEndpoint endpointWithHostname:FRString(host) port:FRString(std::to_string(port))];
}

nw_endpoint_t FRNwEndpoint(const std::string& host, std::uint16_t port) __attribute__((availability(macos, introduced = 10.14))) {
  return nw_endpoint_create_host(host.c_str(), std::to_string(port).c_str());
}

// ---- Who opened a flow, and where it goes

relay::FlowMeta FRMeta(NEAppProxyFlow* flow) {
  relay::FlowMeta meta;
  NEFlowMetaData* md = flow.metaData;
  if (const char* id = md.sourceAppSigningIdentifier.UTF8String) meta.app_identity.signing_id = id;
  NSData* token = md.sourceAppAuditToken;
  if (token != nil && token.length == sizeof(audit_token_t)) {
    audit_token_t t;
    memcpy(&t, token.bytes, sizeof t);
    meta.app_identity.pid = audit_token_to_pid(t);
    meta.app_identity.uid = audit_token_to_euid(t);
  }
  if (const char* host = flow.remoteHostname.UTF8String) meta.hostname = host;
  return meta;
}

// ---- The NE flows behind the seams

class FRTcpOps final : public flowrelay::apple::NeTcpFlowOps {
 public:
  explicit FRTcpOps(NEAppProxyTCPFlow* flow) : flow_(flow) {}

  void open(NeCompletion<NeFlowError> done) override {
    void (^opened)(NSError*) = ^(NSError* error) {
      done(FRFlowError(error));
    };
    // The local endpoint is the app's own for a TCP flow: nil lets the system keep it.
    if (@available(macOS 15.0, *)) {
      [flow_ openWithLocalFlowEndpoint:nil completionHandler:opened];
    } else {
      [flow_ openWithLocalEndpoint:nil completionHandler:opened];
    }
  }
  void read(NeCompletion<NeBytes, NeFlowError> done) override {
    [flow_ readDataWithCompletionHandler:^(NSData* data, NSError* error) {
      if (error != nil) done(NeBytes{}, FRFlowError(error));
      else done(FRBytes(data), NeFlowError::none);  // empty data, no error: EOF
    }];
  }
  void write(buffers::Buffer bytes, NeCompletion<NeFlowError> done) override {
    [flow_ writeData:FRData(std::move(bytes))
        withCompletionHandler:^(NSError* error) {
          done(FRFlowError(error));
        }];
  }
  void close_read(NeFlowError e) override { [flow_ closeReadWithError:FRNSError(e)]; }
  void close_write(NeFlowError e) override { [flow_ closeWriteWithError:FRNSError(e)]; }

 private:
  NEAppProxyTCPFlow* flow_;  // strong: the provider keeps every claimed flow while it is used
};

class FRUdpOps final : public flowrelay::apple::NeUdpFlowOps {
 public:
  explicit FRUdpOps(NEAppProxyUDPFlow* flow) : flow_(flow) {}

  void open(NeCompletion<NeFlowError> done) override {
    void (^opened)(NSError*) = ^(NSError* error) {
      done(FRFlowError(error));
    };
    // Replies must leave from the address the app's socket has: open on its local endpoint.
    if (@available(macOS 15.0, *)) {
      [flow_ openWithLocalFlowEndpoint:flow_.localFlowEndpoint completionHandler:opened];
    } else {
      NWEndpoint* local = flow_.localEndpoint;
      [flow_ openWithLocalEndpoint:[local isKindOfClass:[NWHostEndpoint class]] ? (NWHostEndpoint*)local : nil
                 completionHandler:opened];
    }
  }

  void read(NeCompletion<NeDatagramBatch, NeFlowError> done) override {
    if (@available(macOS 15.0, *)) {
      [flow_ readDatagramsAndFlowEndpointsWithCompletionHandler:^(NSArray<NSData*>* datagrams,
                                                                 NWEndpointArray* endpoints, NSError* error) {
        done(batch(datagrams, endpoints, [](nw_endpoint_t e) { return FREndpoint(e); }), FRFlowError(error));
      }];
    } else {
      [flow_ readDatagramsWithCompletionHandler:^(NSArray<NSData*>* datagrams, NSArray<NWEndpoint*>* endpoints,
                                                  NSError* error) {
        done(batch(datagrams, endpoints, [](NWEndpoint* e) { return FREndpoint(e); }), FRFlowError(error));
      }];
    }
  }

  void write(std::span<const relay::Datagram> datagrams, NeCompletion<NeFlowError> done) override {
    NSMutableArray<NSData*>* payloads = [NSMutableArray arrayWithCapacity:datagrams.size()];
    for (const auto& d : datagrams) [payloads addObject:FRData(d.payload)];
    void (^written)(NSError*) = ^(NSError* error) {
      done(FRFlowError(error));
    };
    if (@available(macOS 15.0, *)) {
      NSMutableArray<nw_endpoint_t>* from = [NSMutableArray arrayWithCapacity:datagrams.size()];
      for (const auto& d : datagrams) [from addObject:FRNwEndpoint(d.peer.address.to_string(), d.peer.port)];
      [flow_ writeDatagrams:payloads sentByFlowEndpoints:from completionHandler:written];
    } else {
      NSMutableArray<NWEndpoint*>* from = [NSMutableArray arrayWithCapacity:datagrams.size()];
      for (const auto& d : datagrams) [from addObject:FRHostEndpoint(d.peer.address.to_string(), d.peer.port)];
      [flow_ writeDatagrams:payloads sentByEndpoints:from completionHandler:written];
    }
  }

  void close_read(NeFlowError e) override { [flow_ closeReadWithError:FRNSError(e)]; }
  void close_write(NeFlowError e) override { [flow_ closeWriteWithError:FRNSError(e)]; }

 private:
  // nil arrays: nothing yet (read again); empty arrays: EOF. A datagram whose endpoint is not an
  // address (nothing to send it to without DNS) is left out.
  template <typename Convert>
  static NeDatagramBatch batch(NSArray<NSData*>* _Nullable datagrams, NSArray* _Nullable endpoints, Convert convert) {
    if (datagrams == nil || endpoints == nil) return std::nullopt;
    std::vector<NeDatagram> out;
    out.reserve(datagrams.count);
    const NSUInteger n = datagrams.count < endpoints.count ? datagrams.count : endpoints.count;
    for (NSUInteger i = 0; i < n; ++i) {
      auto to = convert(endpoints[i]);
      if (!to) continue;
      out.push_back(NeDatagram{FRBytes(datagrams[i]), *to});
    }
    if (out.empty() && n > 0) return std::nullopt;  // only unusable datagrams: not EOF
    return out;
  }

  NEAppProxyUDPFlow* flow_;
};

// ---- Network settings: the included NENetworkRules (see network_settings.hpp)

NENetworkRuleProtocol FRProtocol(flowrelay::control::ProtoMatch p) {
  switch (p) {
    case flowrelay::control::ProtoMatch::any: return NENetworkRuleProtocolAny;
    case flowrelay::control::ProtoMatch::tcp: return NENetworkRuleProtocolTCP;
    case flowrelay::control::ProtoMatch::udp: return NENetworkRuleProtocolUDP;
  }
  return NENetworkRuleProtocolAny;
}

NENetworkRule* FRNetworkRule(const std::string& address, std::uint16_t port, NSUInteger prefix,
                             NENetworkRuleProtocol protocol) {
  if (@available(macOS 15.0, *)) {
    return [[NENetworkRule alloc] initWithDestinationNetworkEndpoint:FRNwEndpoint(address, port)
                                                              prefix:prefix
                                                            protocol:protocol];
  }
  return [[NENetworkRule alloc] initWithDestinationNetwork:FRHostEndpoint(address, port) prefix:prefix protocol:protocol];
}

NETransparentProxyNetworkSettings* FRSettings(const flowrelay::apple::NetworkSettings& s) {
  NSMutableArray<NENetworkRule*>* rules = [NSMutableArray arrayWithCapacity:s.included.size()];
  for (const auto& r : s.included) {
    const auto protocol = FRProtocol(r.proto);
    if (r.network) {
      [rules addObject:FRNetworkRule(r.network->network.to_string(), r.port, r.network->prefix, protocol)];
    } else if (r.port != 0) {  // a wildcard address needs a port: one rule per family
      [rules addObject:FRNetworkRule("0.0.0.0", r.port, 0, protocol)];
      [rules addObject:FRNetworkRule("::", r.port, 0, protocol)];
    } else if (@available(macOS 15.0, *)) {  // every destination but loopback
      [rules addObject:[[NENetworkRule alloc] initWithRemoteNetworkEndpoint:nil
                                                                remotePrefix:0
                                                        localNetworkEndpoint:nil
                                                                 localPrefix:0
                                                                    protocol:protocol
                                                                   direction:NETrafficDirectionOutbound]];
    } else {
      [rules addObject:[[NENetworkRule alloc] initWithRemoteNetwork:nil
                                                       remotePrefix:0
                                                       localNetwork:nil
                                                        localPrefix:0
                                                           protocol:protocol
                                                          direction:NETrafficDirectionOutbound]];
    }
  }
  NETransparentProxyNetworkSettings* settings =
      [[NETransparentProxyNetworkSettings alloc] initWithTunnelRemoteAddress:@"127.0.0.1"];
  settings.includedNetworkRules = rules;
  return settings;
}

// ---- The providerConfiguration as the config JSON (the same document as on Linux)

std::string FRConfigJSON(NEVPNProtocol* protocol) {
  if (![protocol isKindOfClass:[NETunnelProviderProtocol class]]) return "";
  NSDictionary<NSString*, id>* config = ((NETunnelProviderProtocol*)protocol).providerConfiguration;
  if (config == nil || ![NSJSONSerialization isValidJSONObject:config]) return "";
  NSError* error = nil;
  NSData* json = [NSJSONSerialization dataWithJSONObject:config options:NSJSONWritingSortedKeys error:&error];
  if (json == nil) return "";
  return std::string(static_cast<const char*>(json.bytes), json.length);
}

// ---- Logs into the unified log (a system extension's stderr goes nowhere)

class FRLogSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t text;
    formatter_->format(msg, text);
    NSLog(@"%.*s", static_cast<int>(text.size()), text.data());
  }
  void flush_() override {}
};

void FRInstallLogSink() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto sink = std::make_shared<FRLogSink>();
    for (const char* name : {"apple", "control", "relay"}) {
      spdlog::drop(name);
      spdlog::register_logger(std::make_shared<spdlog::logger>(name, sink));
    }
  });
}

// What outlives one provider instance in this process (restart rate limit, the last epoch log).
flowrelay::apple::ProviderMemory& FRMemory() {
  static flowrelay::apple::ProviderMemory memory;
  return memory;
}

}  // namespace

namespace {

/// What the core asks of the system, done through the provider's own NE calls.
class FRShell final : public flowrelay::apple::ProviderShell {
 public:
  explicit FRShell(FlowRelayProvider* provider) : provider_(provider) {}

  void apply_network_settings(const flowrelay::apple::NetworkSettings& settings,
                              std::function<void(std::string)> done) override {
    FlowRelayProvider* provider = provider_;
    if (provider == nil) {
      done("the provider is gone");
      return;
    }
    [provider setTunnelNetworkSettings:FRSettings(settings)
                     completionHandler:^(NSError* error) {
                       done(error == nil ? std::string() : FRDescribe(error));
                     }];
  }

  void cancel_proxy(const std::string& reason) override {
    [provider_ cancelProxyWithError:FRError(reason)];  // the container app starts us again
  }

 private:
  __weak FlowRelayProvider* provider_;
};

int kFRConfigContext;  // identifies our KVO registration

// The one UDP path for both handleNewUDPFlow: selectors.
BOOL FRClaimUDP(flowrelay::apple::ProviderCore* core, NEAppProxyUDPFlow* flow, std::optional<relay::Endpoint> dst) {
  if (core == nullptr || !dst) return NO;
  auto meta = FRMeta(flow);
  meta.dst = *dst;
  return core->handle_new_udp_flow(std::move(meta), std::make_unique<FRUdpOps>(flow)) ? YES : NO;
}

}  // namespace

@implementation FlowRelayProvider {
  std::unique_ptr<FRShell> _shell;
  std::unique_ptr<flowrelay::apple::ProviderCore> _core;  // thread-safe; lives as long as the provider
  BOOL _observing;
}

- (void)startProxyWithOptions:(NSDictionary<NSString*, id>*)options
            completionHandler:(void (^)(NSError* _Nullable error))completionHandler {
  FRInstallLogSink();
  if (!_core) {
    _shell = std::make_unique<FRShell>(self);
    _core = std::make_unique<flowrelay::apple::ProviderCore>(*_shell, FRMemory());
  }
  if (!_observing) {
    [self addObserver:self
           forKeyPath:@"protocolConfiguration"
              options:NSKeyValueObservingOptionNew
              context:&kFRConfigContext];
    _observing = YES;
  }
  _core->start(FRConfigJSON(self.protocolConfiguration), [completionHandler](std::string error) {
    completionHandler(error.empty() ? nil : FRError(error));
  });
}

- (void)stopProxyWithReason:(NEProviderStopReason)reason completionHandler:(void (^)(void))completionHandler {
  if (_observing) {
    [self removeObserver:self forKeyPath:@"protocolConfiguration" context:&kFRConfigContext];
    _observing = NO;
  }
  flowrelay::apple::logger()->info("stopProxyWithReason: {}", static_cast<long>(reason));
  // stop() drains the flows (blocking): off the system's queue, keeping the provider alive.
  FlowRelayProvider* keep = self;
  flowrelay::apple::ProviderCore* core = _core.get();
  std::thread([keep, core, completionHandler] {
    if (core != nullptr) core->stop();
    completionHandler();
    (void)keep;
  }).detach();
}

- (BOOL)handleNewFlow:(NEAppProxyFlow*)flow {
  if (!_core || ![flow isKindOfClass:[NEAppProxyTCPFlow class]]) return NO;  // UDP: handleNewUDPFlow:...
  NEAppProxyTCPFlow* tcp = (NEAppProxyTCPFlow*)flow;
  std::optional<relay::Endpoint> dst;
  if (@available(macOS 15.0, *)) dst = FREndpoint(tcp.remoteFlowEndpoint);
  else dst = FREndpoint(tcp.remoteEndpoint);
  if (!dst) return NO;  // no address to relay to: the system carries it
  auto meta = FRMeta(flow);
  meta.dst = *dst;
  return _core->handle_new_tcp_flow(std::move(meta), std::make_unique<FRTcpOps>(tcp)) ? YES : NO;
}

- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow*)flow initialRemoteEndpoint:(NWEndpoint*)remoteEndpoint {
  return FRClaimUDP(_core.get(), flow, FREndpoint(remoteEndpoint));
}

- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow*)flow initialRemoteFlowEndpoint:(nw_endpoint_t)remoteEndpoint {
  return FRClaimUDP(_core.get(), flow, FREndpoint(remoteEndpoint));
}

- (void)observeValueForKeyPath:(NSString*)keyPath
                      ofObject:(id)object
                        change:(NSDictionary<NSKeyValueChangeKey, id>*)change
                       context:(void*)context {
  if (context != &kFRConfigContext) {
    [super observeValueForKeyPath:keyPath ofObject:object change:change context:context];
    return;
  }
  // The container app saved a new providerConfiguration: a new epoch if it is valid, a rejection
  // in the epoch log (and the running epoch kept) if it is not.
  if (_core) _core->push_config(FRConfigJSON(self.protocolConfiguration));
}

- (void)handleAppMessage:(NSData*)messageData completionHandler:(void (^)(NSData* _Nullable))completionHandler {
  const std::string command(static_cast<const char*>(messageData.bytes), messageData.length);
  const std::string answer = _core ? _core->app_message(command) : std::string(R"({"error":"not running"})");
  if (completionHandler) completionHandler([NSData dataWithBytes:answer.data() length:answer.size()]);
}

@end
