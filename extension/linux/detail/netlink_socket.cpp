#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>

#include <algorithm>
#include <cerrno>
#include <system_error>
#include <ctime>

namespace flowrelay::linux_host::detail {
namespace {

// Dumps of a busy socket table come in multi-message datagrams of up to 32 KiB.
constexpr std::size_t kRecvBufferSize = 32768;
constexpr std::size_t kSendBufferSize = 8192;

int on_data(const nlmsghdr* nlh, void* data) {
  (*static_cast<const std::function<void(const nlmsghdr*)>*>(data))(nlh);
  return MNL_CB_OK;
}

}  // namespace

NetlinkSocket::NetlinkSocket(int bus) : send_buf_(kSendBufferSize), recv_buf_(kRecvBufferSize) {
  nl_ = mnl_socket_open2(bus, SOCK_CLOEXEC);
  if (nl_ == nullptr) throw std::system_error(errno, std::generic_category(), "netlink socket");
  if (mnl_socket_bind(nl_, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl_);
    throw std::system_error(err, std::generic_category(), "netlink bind");
  }
  portid_ = mnl_socket_get_portid(nl_);
  seq_ = static_cast<unsigned>(std::time(nullptr));
}

NetlinkSocket::~NetlinkSocket() { mnl_socket_close(nl_); }

char* NetlinkSocket::request_buffer() {
  std::fill(send_buf_.begin(), send_buf_.end(), 0);
  return send_buf_.data();
}

int NetlinkSocket::request(nlmsghdr* nlh, const std::function<void(const nlmsghdr*)>& on_message) {
  const unsigned seq = ++seq_;
  nlh->nlmsg_seq = seq;
  nlh->nlmsg_pid = 0;
  if (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0) return errno;

  std::function<void(const nlmsghdr*)> ignore = [](const nlmsghdr*) {};
  const auto& cb = on_message ? on_message : ignore;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, recv_buf_.data(), recv_buf_.size());
    if (n < 0) return errno;
    int rc = mnl_cb_run(recv_buf_.data(), static_cast<size_t>(n), seq, portid_, on_data,
                        const_cast<std::function<void(const nlmsghdr*)>*>(&cb));
    if (rc == MNL_CB_ERROR) return errno != 0 ? errno : EPROTO;
    if (rc == MNL_CB_STOP) return 0;
  }
}

}  // namespace flowrelay::linux_host::detail
