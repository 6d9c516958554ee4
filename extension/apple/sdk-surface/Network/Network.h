// flowrelay's declared SDK surface: the Network.framework endpoint API FlowRelayProvider uses
// (macOS 15's NE calls take nw_endpoint_t), written from Apple's public headers. See
// ../Foundation/Foundation.h for what this directory is.
#pragma once

#import <Foundation/Foundation.h>

#include <stdint.h>
#include <sys/socket.h>

NS_ASSUME_NONNULL_BEGIN

// Under Objective-C with ARC, Network.framework objects are Objective-C objects (OS_OBJECT_DECL):
// ARC retains and releases them; nw_retain/nw_release are not to be called.
@protocol OS_nw_endpoint <NSObject>
@end
typedef NSObject<OS_nw_endpoint>* nw_endpoint_t;

typedef enum {
  nw_endpoint_type_invalid = 0,
  nw_endpoint_type_address = 1,
  nw_endpoint_type_host = 2,
  nw_endpoint_type_bonjour_service = 3,
  nw_endpoint_type_url = 4,
} nw_endpoint_type_t;

extern "C" {
nw_endpoint_type_t nw_endpoint_get_type(nw_endpoint_t endpoint) FR_MACOS(10.14);
/// An IP literal for `hostname` makes an address endpoint. Returns retained (ARC manages it).
nw_endpoint_t nw_endpoint_create_host(const char* hostname, const char* port) __attribute__((ns_returns_retained))
FR_MACOS(10.14);
/// NULL for address endpoints; owned by the endpoint.
const char* _Nullable nw_endpoint_get_hostname(nw_endpoint_t endpoint) FR_MACOS(10.14);
/// Host byte order; 0 when the endpoint has no port.
uint16_t nw_endpoint_get_port(nw_endpoint_t endpoint) FR_MACOS(10.14);
/// Owned by the endpoint; NULL unless it is an address endpoint.
const struct sockaddr* _Nullable nw_endpoint_get_address(nw_endpoint_t endpoint) FR_MACOS(10.14);
/// The caller frees the result; NULL unless it is an address endpoint.
char* _Nullable nw_endpoint_copy_address_string(nw_endpoint_t endpoint) FR_MACOS(10.14);
}

NS_ASSUME_NONNULL_END
