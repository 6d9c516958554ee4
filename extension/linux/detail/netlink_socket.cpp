#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <system_error>

namespace flowrelay::linux_host::detail {
namespace {

// Dumps of a busy socket table come in multi-message datagrams of up to 32 KiB.
constexpr std::size_t kRecvBufferSize = 32768;
constexpr std::size_t kSendBufferSize = 8192;
constexpr int kDumpAttempts = 5;

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
  std::function<void(const nlmsghdr*)> ignore = [](const nlmsghdr*) {};
  const auto& cb = on_message ? on_message : ignore;
  if ((nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) return exchange(nlh, &cb);
  // A dump the kernel marks NLM_F_DUMP_INTR (the table changed under it) may miss or repeat
  // entries: it is read whole, and only a consistent one is handed to `on_message`.
  for (int attempt = 0; attempt < kDumpAttempts; ++attempt) {
    dump_.clear();
    dump_sizes_.clear();
    int err = exchange(nlh, nullptr);
    if (err != 0) return err;
    if (dump_interrupted_) continue;
    std::size_t off = 0;
    for (std::size_t n : dump_sizes_) {
      mnl_cb_run(dump_.data() + off, n, nlh->nlmsg_seq, portid_, on_data,
                 const_cast<std::function<void(const nlmsghdr*)>*>(&cb));
      off += n;
    }
    return 0;
  }
  return EINTR;  // the table kept changing: the caller's cycle fails and says so
}

int NetlinkSocket::exchange(nlmsghdr* nlh, const std::function<void(const nlmsghdr*)>* cb) {
  const unsigned seq = ++seq_;
  nlh->nlmsg_seq = seq;
  nlh->nlmsg_pid = 0;
  while (mnl_socket_sendto(nl_, nlh, nlh->nlmsg_len) < 0)
    if (errno != EINTR) return errno;

  dump_interrupted_ = false;
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_, recv_buf_.data(), recv_buf_.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    int rc;
    if (cb != nullptr) {
      rc = mnl_cb_run(recv_buf_.data(), static_cast<size_t>(n), seq, portid_, on_data,
                      const_cast<std::function<void(const nlmsghdr*)>*>(cb));
    } else {
      rc = mnl_cb_run(recv_buf_.data(), static_cast<size_t>(n), seq, portid_, note_dump, this);
      if (rc != MNL_CB_ERROR) {
        dump_.insert(dump_.end(), recv_buf_.data(), recv_buf_.data() + n);
        dump_sizes_.push_back(static_cast<std::size_t>(n));
      }
    }
    if (rc == MNL_CB_ERROR) return errno != 0 ? errno : EPROTO;
    if (rc == MNL_CB_STOP) return 0;
  }
}

int NetlinkSocket::note_dump(const nlmsghdr* nlh, void* self) {
  if ((nlh->nlmsg_flags & NLM_F_DUMP_INTR) != 0) static_cast<NetlinkSocket*>(self)->dump_interrupted_ = true;
  return MNL_CB_OK;
}

}  // namespace flowrelay::linux_host::detail
