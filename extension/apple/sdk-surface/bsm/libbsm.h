// flowrelay's declared SDK surface: the audit-token accessors FlowRelayProvider uses to learn a
// flow's pid and uid (NEFlowMetaData.sourceAppAuditToken holds an audit_token_t), written from
// Apple's public headers. See ../Foundation/Foundation.h for what this directory is.
#pragma once

#include <sys/types.h>

// mach/message.h: read it only through the accessors below; its layout may change.
typedef struct {
  unsigned int val[8];
} audit_token_t;

extern "C" {
pid_t audit_token_to_pid(audit_token_t atoken) __attribute__((availability(macos, introduced = 10.8)));
uid_t audit_token_to_euid(audit_token_t atoken) __attribute__((availability(macos, introduced = 10.8)));
}
