// flowrelay's declared SDK surface: the NetworkExtension API FlowRelayProvider uses, with the real
// selectors, types, nullability and availability, written from Apple's public headers (facts, not
// their text): NEProvider.h, NETunnelProvider.h, NEAppProxyProvider.h, NETransparentProxyProvider.h,
// NEAppProxyFlow.h, NEAppProxyTCPFlow.h, NEAppProxyUDPFlow.h, NEFlowMetaData.h, NWEndpoint.h,
// NWHostEndpoint.h, NETunnelNetworkSettings.h, NETransparentProxyNetworkSettings.h, NENetworkRule.h,
// NEVPNProtocol.h, NETunnelProviderProtocol.h. See ../Foundation/Foundation.h for what this
// directory is. A selector misspelled in the .mm, or one not declared here, fails the check.
#pragma once

#import <Foundation/Foundation.h>
#import <Network/Network.h>

NS_ASSUME_NONNULL_BEGIN

// ---- NWEndpoint.h, NWHostEndpoint.h (deprecated in macOS 15 for nw_endpoint_t)
FR_MACOS_DEPRECATED(10.11, 15.0, "nw_endpoint_t")
@interface NWEndpoint : NSObject <NSSecureCoding, NSCopying>
@end

FR_MACOS_DEPRECATED(10.11, 15.0, "nw_endpoint_t")
@interface NWHostEndpoint : NWEndpoint
+ (instancetype)endpointWithHostname:(NSString*)hostname port:(NSString*)port;
@property(readonly) NSString* hostname;
@property(readonly) NSString* port;  // decimal, e.g. @"443"
@end

// ---- NEFlowMetaData.h
FR_MACOS(10.11)
@interface NEFlowMetaData : NSObject <NSCopying, NSSecureCoding>
@property(readonly) NSData* sourceAppUniqueIdentifier;
@property(readonly) NSString* sourceAppSigningIdentifier;  // may be empty (system processes)
@property(readonly, nullable) NSData* sourceAppAuditToken FR_MACOS(10.15);  // an audit_token_t
@end

// ---- NEAppProxyFlow.h
typedef NS_ENUM(NSInteger, NEAppProxyFlowError){
    NEAppProxyFlowErrorNotConnected = 1,
    NEAppProxyFlowErrorPeerReset = 2,
    NEAppProxyFlowErrorHostUnreachable = 3,
    NEAppProxyFlowErrorInvalidArgument = 4,
    NEAppProxyFlowErrorAborted = 5,
    NEAppProxyFlowErrorRefused = 6,
    NEAppProxyFlowErrorTimedOut = 7,
    NEAppProxyFlowErrorInternal = 8,
    NEAppProxyFlowErrorDatagramTooLarge = 9,
    NEAppProxyFlowErrorReadAlreadyPending = 10,
} FR_MACOS(10.11);

FOUNDATION_EXPORT NSString* const NEAppProxyErrorDomain FR_MACOS(10.11);

FR_MACOS(10.11)
@interface NEAppProxyFlow : NSObject
- (void)openWithLocalEndpoint:(nullable NWHostEndpoint*)localEndpoint
            completionHandler:(void (^)(NSError* _Nullable error))completionHandler
    FR_MACOS_DEPRECATED(10.11, 15.0, "openWithLocalFlowEndpoint:completionHandler:");
- (void)openWithLocalFlowEndpoint:(nullable nw_endpoint_t)localEndpoint
                completionHandler:(void (^)(NSError* _Nullable error))completionHandler FR_MACOS(15.0);
- (void)closeReadWithError:(nullable NSError*)error;
- (void)closeWriteWithError:(nullable NSError*)error;
@property(readonly) NEFlowMetaData* metaData;
@property(readonly, nullable) NSString* remoteHostname FR_MACOS(11.0);
@property(readonly) BOOL isBound FR_MACOS(11.1);
@end

// ---- NEAppProxyTCPFlow.h
FR_MACOS(10.11)
@interface NEAppProxyTCPFlow : NEAppProxyFlow
- (void)readDataWithCompletionHandler:(void (^)(NSData* _Nullable data, NSError* _Nullable error))completionHandler;
- (void)writeData:(NSData*)data withCompletionHandler:(void (^)(NSError* _Nullable error))completionHandler;
@property(readonly) NWEndpoint* remoteEndpoint FR_MACOS_DEPRECATED(10.11, 15.0, "remoteFlowEndpoint");
@property(readonly) nw_endpoint_t remoteFlowEndpoint FR_MACOS(15.0);
@end

// ---- NEAppProxyUDPFlow.h
typedef NSArray<nw_endpoint_t> NWEndpointArray;

FR_MACOS(10.11)
@interface NEAppProxyUDPFlow : NEAppProxyFlow
- (void)readDatagramsWithCompletionHandler:(void (^)(NSArray<NSData*>* _Nullable datagrams,
                                                     NSArray<NWEndpoint*>* _Nullable remoteEndpoints,
                                                     NSError* _Nullable error))completionHandler
    FR_MACOS_DEPRECATED(10.11, 15.0, "readDatagramsAndFlowEndpointsWithCompletionHandler:");
- (void)readDatagramsAndFlowEndpointsWithCompletionHandler:(void (^)(NSArray<NSData*>* _Nullable datagrams,
                                                                     NWEndpointArray* _Nullable remoteEndpoints,
                                                                     NSError* _Nullable error))completionHandler
    FR_MACOS(15.0);
- (void)writeDatagrams:(NSArray<NSData*>*)datagrams
       sentByEndpoints:(NSArray<NWEndpoint*>*)remoteEndpoints
     completionHandler:(void (^)(NSError* _Nullable error))completionHandler
    FR_MACOS_DEPRECATED(10.11, 15.0, "writeDatagrams:sentByFlowEndpoints:completionHandler:");
- (void)writeDatagrams:(NSArray<NSData*>*)datagrams
    sentByFlowEndpoints:(NWEndpointArray*)remoteEndpoints
      completionHandler:(void (^)(NSError* _Nullable error))completionHandler FR_MACOS(15.0);
@property(readonly, nullable) NWEndpoint* localEndpoint FR_MACOS_DEPRECATED(10.11, 15.0, "localFlowEndpoint");
@property(readonly, nullable) nw_endpoint_t localFlowEndpoint FR_MACOS(15.0);
@end

// ---- NETunnelNetworkSettings.h, NETransparentProxyNetworkSettings.h, NENetworkRule.h
FR_MACOS(10.11)
@interface NETunnelNetworkSettings : NSObject <NSSecureCoding, NSCopying>
- (instancetype)initWithTunnelRemoteAddress:(NSString*)address;
@property(readonly) NSString* tunnelRemoteAddress;
@end

typedef NS_ENUM(NSInteger, NENetworkRuleProtocol){
    NENetworkRuleProtocolAny = 0,
    NENetworkRuleProtocolTCP = 1,
    NENetworkRuleProtocolUDP = 2,
} FR_MACOS(10.15);

typedef NS_ENUM(NSInteger, NETrafficDirection){
    NETrafficDirectionAny = 0,
    NETrafficDirectionInbound = 1,
    NETrafficDirectionOutbound = 2,
} FR_MACOS(10.15);

FR_MACOS(10.15)
@interface NENetworkRule : NSObject <NSSecureCoding, NSCopying>
// An address endpoint (a port of "0" matches any; a wildcard address needs a port).
- (instancetype)initWithDestinationNetwork:(NWHostEndpoint*)networkEndpoint
                                    prefix:(NSUInteger)destinationPrefix
                                  protocol:(NENetworkRuleProtocol)protocol
    FR_MACOS_DEPRECATED(10.15, 15.0, "initWithDestinationNetworkEndpoint:prefix:protocol:");
- (instancetype)initWithDestinationNetworkEndpoint:(nw_endpoint_t)networkEndpoint
                                            prefix:(NSUInteger)destinationPrefix
                                          protocol:(NENetworkRuleProtocol)protocol FR_MACOS(15.0);
// Both networks nil: all traffic of the protocol and direction but loopback.
- (instancetype)initWithRemoteNetwork:(nullable NWHostEndpoint*)remoteNetwork
                         remotePrefix:(NSUInteger)remotePrefix
                         localNetwork:(nullable NWHostEndpoint*)localNetwork
                          localPrefix:(NSUInteger)localPrefix
                             protocol:(NENetworkRuleProtocol)protocol
                            direction:(NETrafficDirection)direction
    FR_MACOS_DEPRECATED(10.15, 15.0,
                        "initWithRemoteNetworkEndpoint:remotePrefix:localNetworkEndpoint:localPrefix:protocol:direction:");
- (instancetype)initWithRemoteNetworkEndpoint:(nullable nw_endpoint_t)remoteNetwork
                                 remotePrefix:(NSUInteger)remotePrefix
                         localNetworkEndpoint:(nullable nw_endpoint_t)localNetwork
                                  localPrefix:(NSUInteger)localPrefix
                                     protocol:(NENetworkRuleProtocol)protocol
                                    direction:(NETrafficDirection)direction FR_MACOS(15.0);
@end

FR_MACOS(10.15)
@interface NETransparentProxyNetworkSettings : NETunnelNetworkSettings
@property(copy, nullable) NSArray<NENetworkRule*>* includedNetworkRules;
@property(copy, nullable) NSArray<NENetworkRule*>* excludedNetworkRules;
@end

// ---- NEVPNProtocol.h, NETunnelProviderProtocol.h
FR_MACOS(10.11)
@interface NEVPNProtocol : NSObject <NSCopying, NSSecureCoding>
@property(copy, nullable) NSString* serverAddress;
@end

FR_MACOS(10.11)
@interface NETunnelProviderProtocol : NEVPNProtocol
@property(copy, nullable) NSDictionary<NSString*, id>* providerConfiguration;
@property(copy, nullable) NSString* providerBundleIdentifier;
@end

// ---- NEProvider.h, NETunnelProvider.h, NEAppProxyProvider.h, NETransparentProxyProvider.h
typedef NS_ENUM(NSInteger, NEProviderStopReason){
    NEProviderStopReasonNone = 0,
    NEProviderStopReasonUserInitiated = 1,
    NEProviderStopReasonProviderFailed = 2,
    NEProviderStopReasonNoNetworkAvailable = 3,
    NEProviderStopReasonUnrecoverableNetworkChange = 4,
    NEProviderStopReasonProviderDisabled = 5,
    NEProviderStopReasonAuthenticationCanceled = 6,
    NEProviderStopReasonConfigurationFailed = 7,
    NEProviderStopReasonIdleTimeout = 8,
    NEProviderStopReasonConfigurationDisabled = 9,
    NEProviderStopReasonConfigurationRemoved = 10,
    NEProviderStopReasonSuperceded = 11,
    NEProviderStopReasonUserLogout = 12,
    NEProviderStopReasonUserSwitch = 13,
    NEProviderStopReasonConnectionFailed = 14,
    NEProviderStopReasonSleep = 15,
    NEProviderStopReasonAppUpdate = 16,
} FR_MACOS(10.11);

FR_MACOS(10.11)
@interface NEProvider : NSObject
- (void)sleepWithCompletionHandler:(void (^)(void))completionHandler;
- (void)wake;
@end

FR_MACOS(10.11)
@interface NETunnelProvider : NEProvider
- (void)handleAppMessage:(NSData*)messageData
       completionHandler:(nullable void (^)(NSData* _Nullable responseData))completionHandler;
- (void)setTunnelNetworkSettings:(nullable NETunnelNetworkSettings*)tunnelNetworkSettings
               completionHandler:(nullable void (^)(NSError* _Nullable error))completionHandler;
@property(readonly) NEVPNProtocol* protocolConfiguration;  // KVO-observable
@property BOOL reasserting;
@end

FR_MACOS(10.11)
@interface NEAppProxyProvider : NETunnelProvider
- (void)startProxyWithOptions:(nullable NSDictionary<NSString*, id>*)options
            completionHandler:(void (^)(NSError* _Nullable error))completionHandler;
- (void)stopProxyWithReason:(NEProviderStopReason)reason completionHandler:(void (^)(void))completionHandler;
- (void)cancelProxyWithError:(nullable NSError*)error;
- (BOOL)handleNewFlow:(NEAppProxyFlow*)flow;
- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow*)flow
    initialRemoteEndpoint:(NWEndpoint*)remoteEndpoint
    FR_MACOS_DEPRECATED(10.15, 15.0, "handleNewUDPFlow:initialRemoteFlowEndpoint:");
- (BOOL)handleNewUDPFlow:(NEAppProxyUDPFlow*)flow
    initialRemoteFlowEndpoint:(nw_endpoint_t)remoteEndpoint FR_MACOS(15.0);
@end

FR_MACOS(11.0)
@interface NETransparentProxyProvider : NEAppProxyProvider
@end

NS_ASSUME_NONNULL_END
