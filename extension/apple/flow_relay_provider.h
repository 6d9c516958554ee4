// FlowRelayProvider: flowrelay's NETransparentProxyProvider. Name it in the system extension's
// Info.plist (NetworkExtension > NEProviderClasses > com.apple.networkextension.app-proxy); see
// extension/apple/README.md.
#pragma once

#import <NetworkExtension/NetworkExtension.h>

__attribute__((availability(macos, introduced = 11.0)))
@interface FlowRelayProvider : NETransparentProxyProvider
@end
