#include "extension/linux/sock_diag.hpp"

#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <cstring>
#include <system_error>

namespace flowrelay::linux_host {
namespace {

using boost::asio::ip::address;
using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

address to_address(int family, const __be32 raw[4]) {
  if (family == AF_INET) {
    address_v4::bytes_type b;
    std::memcpy(b.data(), raw, 4);
    return address_v4(b);
  }
  address_v6::bytes_type b;
  std::memcpy(b.data(), raw, 16);
  return address_v6(b);
}

void from_address(const address& a, __be32 raw[4]) {
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::memcpy(raw, b.data(), 4);
  } else {
    auto b = a.to_v6().to_bytes();
    std::memcpy(raw, b.data(), 16);
  }
}

std::uint8_t ipproto(relay::Proto p) { return p == relay::Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP; }

int on_attr(const nlattr* attr, void* data) {
  auto* info = static_cast<SocketInfo*>(data);
  if (mnl_attr_get_type(attr) == INET_DIAG_MARK && mnl_attr_validate(attr, MNL_TYPE_U32) >= 0)
    info->mark = mnl_attr_get_u32(attr);
  return MNL_CB_OK;
}

}  // namespace

const char* to_string(DestroyResult r) {
  switch (r) {
    case DestroyResult::destroyed: return "destroyed";
    case DestroyResult::gone: return "gone";
    case DestroyResult::unavailable: return "surgical reclaim unavailable";
    case DestroyResult::not_permitted: return "not permitted";
    case DestroyResult::failed: break;
  }
  return "failed";
}

SockDiag::SockDiag() : nl_(std::make_unique<detail::NetlinkSocket>(NETLINK_SOCK_DIAG)) {}
SockDiag::~SockDiag() = default;
SockDiag::SockDiag(SockDiag&&) noexcept = default;
SockDiag& SockDiag::operator=(SockDiag&&) noexcept = default;

std::vector<SocketInfo> SockDiag::dump() {
  std::vector<SocketInfo> out;
  for (auto proto : {relay::Proto::tcp, relay::Proto::udp})
    for (int family : {AF_INET, AF_INET6}) {
      auto part = dump(proto, family);
      out.insert(out.end(), part.begin(), part.end());
    }
  return out;
}

std::vector<SocketInfo> SockDiag::dump(relay::Proto proto, int family) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl_->request_buffer());
  nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  auto* req = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = static_cast<std::uint8_t>(family);
  req->sdiag_protocol = ipproto(proto);
  req->idiag_states = ~0U;

  std::vector<SocketInfo> out;
  int err = nl_->request(nlh, [&](const nlmsghdr* m) {
    if (m->nlmsg_type != SOCK_DIAG_BY_FAMILY) return;
    if (mnl_nlmsg_get_payload_len(m) < sizeof(inet_diag_msg)) return;
    const auto* msg = static_cast<const inet_diag_msg*>(mnl_nlmsg_get_payload(m));
    SocketInfo s;
    s.proto = proto;
    s.family = msg->idiag_family;
    s.local = {to_address(msg->idiag_family, msg->id.idiag_src), ntohs(msg->id.idiag_sport)};
    s.remote = {to_address(msg->idiag_family, msg->id.idiag_dst), ntohs(msg->id.idiag_dport)};
    s.state = msg->idiag_state;
    s.uid = msg->idiag_uid;
    s.inode = msg->idiag_inode;
    s.cookie = static_cast<std::uint64_t>(msg->id.idiag_cookie[0]) |
               (static_cast<std::uint64_t>(msg->id.idiag_cookie[1]) << 32);
    s.ifindex = msg->id.idiag_if;
    mnl_attr_parse(m, sizeof(inet_diag_msg), on_attr, &s);
    out.push_back(std::move(s));
  });
  // A kernel without UDP diag (udp_diag module absent) answers ENOENT: no sockets to show.
  if (err == ENOENT) return {};
  if (err != 0) throw std::system_error(err, std::generic_category(), "sock_diag dump");
  return out;
}

DestroyOutcome SockDiag::destroy(const SocketInfo& s) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl_->request_buffer());
  nlh->nlmsg_type = SOCK_DESTROY;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  auto* req = static_cast<inet_diag_req_v2*>(mnl_nlmsg_put_extra_header(nlh, sizeof(inet_diag_req_v2)));
  req->sdiag_family = static_cast<std::uint8_t>(s.family);
  req->sdiag_protocol = ipproto(s.proto);
  req->idiag_states = ~0U;
  req->id.idiag_sport = htons(s.local.port);
  req->id.idiag_dport = htons(s.remote.port);
  from_address(s.local.address, req->id.idiag_src);
  from_address(s.remote.address, req->id.idiag_dst);
  req->id.idiag_if = s.ifindex;
  req->id.idiag_cookie[0] = static_cast<std::uint32_t>(s.cookie);
  req->id.idiag_cookie[1] = static_cast<std::uint32_t>(s.cookie >> 32);

  int err = nl_->request(nlh);
  switch (err) {
    case 0: return {DestroyResult::destroyed, 0};
    case ENOENT:
    case ESTALE: return {DestroyResult::gone, err};
    case EOPNOTSUPP: return {DestroyResult::unavailable, err};
    case EPERM: return {DestroyResult::not_permitted, err};
    default: return {DestroyResult::failed, err};
  }
}

}  // namespace flowrelay::linux_host
