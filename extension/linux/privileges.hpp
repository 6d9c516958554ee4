#pragma once
// Least privilege for the daemon (DESIGN.md, "Security model"): once its sockets are bound and its
// routes installed, it keeps CAP_NET_ADMIN (nftables, policy routes, SOCK_DESTROY, conntrack,
// SO_MARK, IP_TRANSPARENT), CAP_NET_RAW (IP_TRANSPARENT on older kernels) and CAP_NET_BIND_SERVICE
// (UDP reply sockets bound to an original destination below 1024), and nothing else.

#include <cstdint>
#include <string>

namespace flowrelay::linux_host {

/// The capabilities the daemon keeps, as a bit mask over capability numbers (CapEff in
/// /proc/PID/status shows the same mask).
std::uint64_t kept_capabilities() noexcept;

/// Reduces the process to kept_capabilities() in its effective, permitted and bounding sets (the
/// inheritable and ambient sets are emptied) and sets no_new_privs. With `run_as` non-empty, it
/// also becomes that user (its primary group, no supplementary groups) and keeps the same
/// capabilities. Capabilities are per thread on Linux: call it while the process has one thread,
/// before the reactor starts. Throws std::runtime_error naming what failed (an unknown user, a
/// second thread, a refused capset).
void drop_privileges(const std::string& run_as);

/// "cap_net_admin,cap_net_bind_service,..." for a mask: for logs.
std::string capability_names(std::uint64_t mask);

}  // namespace flowrelay::linux_host
