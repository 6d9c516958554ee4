#include "extension/linux/privileges.hpp"

#include <cap-ng.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <stdexcept>
#include <vector>

namespace flowrelay::linux_host {

namespace {

constexpr int kKept[] = {CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE};

std::size_t thread_count() {
  std::error_code ec;
  auto it = std::filesystem::directory_iterator("/proc/self/task", ec);
  if (ec) return 0;
  return static_cast<std::size_t>(std::distance(it, std::filesystem::directory_iterator{}));
}

}  // namespace

std::uint64_t kept_capabilities() noexcept {
  std::uint64_t mask = 0;
  for (int c : kKept) mask |= std::uint64_t{1} << c;
  return mask;
}

std::string capability_names(std::uint64_t mask) {
  std::string out;
  for (unsigned c = 0; c < 64; ++c) {
    if ((mask & (std::uint64_t{1} << c)) == 0) continue;
    const char* name = capng_capability_to_name(c);
    if (!out.empty()) out += ",";
    out += name != nullptr ? std::string("cap_") + name : "cap_" + std::to_string(c);
  }
  return out.empty() ? "none" : out;
}

void drop_privileges(const std::string& run_as) {
  if (const auto n = thread_count(); n != 1)
    throw std::runtime_error("dropping privileges needs a single-threaded process (" + std::to_string(n) +
                             " threads): capabilities are per thread");
  capng_clear(CAPNG_SELECT_BOTH);
  for (int c : kKept)
    if (capng_update(CAPNG_ADD, static_cast<capng_type_t>(CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET),
                     static_cast<unsigned>(c)) != 0)
      throw std::runtime_error(std::string("capability ") + capng_capability_to_name(static_cast<unsigned>(c)) +
                               ": unknown to this kernel");
  // The bounding set first, while uid 0 still holds CAP_SETPCAP for it.
  if (int rc = capng_apply(CAPNG_SELECT_BOUNDS); rc != 0)
    throw std::runtime_error("dropping the capability bounding set failed (" + std::string(std::strerror(errno)) +
                             ", capng_apply " + std::to_string(rc) + ")");
  if (run_as.empty()) {
    if (int rc = capng_apply(CAPNG_SELECT_CAPS); rc != 0)
      throw std::runtime_error("capset failed (" + std::string(std::strerror(errno)) + ", capng_apply " +
                               std::to_string(rc) + ")");
  } else {
    errno = 0;
    const passwd* pw = ::getpwnam(run_as.c_str());
    if (pw == nullptr)
      throw std::runtime_error("run_as: no user \"" + run_as + "\"" +
                               (errno != 0 ? std::string(": ") + std::strerror(errno) : std::string()));
    // Keeps the selected capabilities across setresuid (PR_SET_KEEPCAPS), then applies them.
    if (int rc = capng_change_id(static_cast<int>(pw->pw_uid), static_cast<int>(pw->pw_gid), CAPNG_DROP_SUPP_GRP);
        rc != 0)
      throw std::runtime_error("run_as " + run_as + ": becoming uid " + std::to_string(pw->pw_uid) + " failed (" +
                               std::strerror(errno) + ", capng_change_id " + std::to_string(rc) + ")");
  }
  // Nothing the daemon runs later may gain privileges by exec (it execs nothing; belt and braces).
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    throw std::runtime_error(std::string("no_new_privs: ") + std::strerror(errno));
  // Leave no ambient capability behind either (the kernel refuses raising one not inheritable).
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
}

}  // namespace flowrelay::linux_host
