#pragma once
// Private: one libmnl netlink socket and a request/response loop shared by sock_diag and
// rtnetlink. Not part of the public API.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

struct mnl_socket;
struct nlmsghdr;

namespace flowrelay::linux_host::detail {

/// A bound netlink socket of one bus (NETLINK_SOCK_DIAG, NETLINK_ROUTE). Not thread-safe:
/// one request at a time.
class NetlinkSocket {
 public:
  /// Throws std::system_error when the socket cannot be opened or bound.
  explicit NetlinkSocket(int bus);
  ~NetlinkSocket();
  NetlinkSocket(const NetlinkSocket&) = delete;
  NetlinkSocket& operator=(const NetlinkSocket&) = delete;

  /// Scratch buffer for building a request; valid until the next call to request_buffer().
  char* request_buffer();

  /// Sends `nlh` (built in request_buffer(); seq and portid are filled in here) and feeds each
  /// data message of the answer to `on_message` (may be empty) until DONE or the ack.
  /// Returns 0, or the positive errno the kernel answered with. EINTR from a signal is retried;
  /// a dump (NLM_F_DUMP) the kernel flags as interrupted is asked again, and EINTR comes back only
  /// when five in a row were.
  int request(nlmsghdr* nlh, const std::function<void(const nlmsghdr*)>& on_message = {});

 private:
  /// One send and its answer; `cb` null: the datagrams are kept in dump_ instead.
  int exchange(nlmsghdr* nlh, const std::function<void(const nlmsghdr*)>* cb);
  static int note_dump(const nlmsghdr* nlh, void* self);

  mnl_socket* nl_ = nullptr;
  unsigned portid_ = 0;
  unsigned seq_ = 0;
  std::vector<char> send_buf_;
  std::vector<char> recv_buf_;
  std::vector<char> dump_;               // a dump's datagrams, back to back
  std::vector<std::size_t> dump_sizes_;  // and their sizes
  bool dump_interrupted_ = false;
};

}  // namespace flowrelay::linux_host::detail
