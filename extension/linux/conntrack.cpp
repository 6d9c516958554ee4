#include "extension/linux/conntrack.hpp"

#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace flowrelay::linux_host {
namespace {

constexpr int kAttempts = 5;  // for a query that came back EINTR

using boost::asio::ip::address_v4;
using boost::asio::ip::address_v6;

struct CtDeleter {
  void operator()(nf_conntrack* ct) const { nfct_destroy(ct); }
};
using CtPtr = std::unique_ptr<nf_conntrack, CtDeleter>;

relay::Endpoint endpoint(const nf_conntrack* ct, int family, nf_conntrack_attr a4, nf_conntrack_attr a6,
                         nf_conntrack_attr port) {
  relay::Endpoint e;
  if (family == AF_INET) {
    address_v4::bytes_type b;
    const std::uint32_t raw = nfct_get_attr_u32(ct, a4);
    std::memcpy(b.data(), &raw, 4);
    e.address = address_v4(b);
  } else {
    address_v6::bytes_type b;
    std::memcpy(b.data(), nfct_get_attr(ct, a6), 16);
    e.address = address_v6(b);
  }
  e.port = ntohs(nfct_get_attr_u16(ct, port));
  return e;
}

std::optional<ConntrackEntry> to_entry(const nf_conntrack* ct) {
  const int l4 = nfct_get_attr_u8(ct, ATTR_ORIG_L4PROTO);
  if (l4 != IPPROTO_TCP && l4 != IPPROTO_UDP) return std::nullopt;
  const int family = nfct_get_attr_u8(ct, ATTR_ORIG_L3PROTO);
  if (family != AF_INET && family != AF_INET6) return std::nullopt;
  ConntrackEntry e;
  e.proto = l4 == IPPROTO_TCP ? relay::Proto::tcp : relay::Proto::udp;
  e.orig_src = endpoint(ct, family, ATTR_ORIG_IPV4_SRC, ATTR_ORIG_IPV6_SRC, ATTR_ORIG_PORT_SRC);
  e.orig_dst = endpoint(ct, family, ATTR_ORIG_IPV4_DST, ATTR_ORIG_IPV6_DST, ATTR_ORIG_PORT_DST);
  e.reply_src = endpoint(ct, family, ATTR_REPL_IPV4_SRC, ATTR_REPL_IPV6_SRC, ATTR_REPL_PORT_SRC);
  e.reply_dst = endpoint(ct, family, ATTR_REPL_IPV4_DST, ATTR_REPL_IPV6_DST, ATTR_REPL_PORT_DST);
  e.mark = nfct_attr_is_set(ct, ATTR_MARK) > 0 ? nfct_get_attr_u32(ct, ATTR_MARK) : 0;
  return e;
}

/// A conntrack object holding only the original tuple (proto, src -> dst).
CtPtr orig_tuple(relay::Proto proto, const relay::Endpoint& src, const relay::Endpoint& dst) {
  if (src.address.is_v4() != dst.address.is_v4())
    throw std::invalid_argument("conntrack tuple mixes IPv4 and IPv6");
  CtPtr ct(nfct_new());
  if (!ct) throw std::system_error(errno, std::generic_category(), "nfct_new");
  if (src.address.is_v4()) {
    nfct_set_attr_u8(ct.get(), ATTR_ORIG_L3PROTO, AF_INET);
    auto s = src.address.to_v4().to_bytes(), d = dst.address.to_v4().to_bytes();
    std::uint32_t s32, d32;
    std::memcpy(&s32, s.data(), 4);
    std::memcpy(&d32, d.data(), 4);
    nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_SRC, s32);
    nfct_set_attr_u32(ct.get(), ATTR_ORIG_IPV4_DST, d32);
  } else {
    nfct_set_attr_u8(ct.get(), ATTR_ORIG_L3PROTO, AF_INET6);
    auto s = src.address.to_v6().to_bytes(), d = dst.address.to_v6().to_bytes();
    nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_SRC, s.data());
    nfct_set_attr(ct.get(), ATTR_ORIG_IPV6_DST, d.data());
  }
  nfct_set_attr_u8(ct.get(), ATTR_ORIG_L4PROTO, proto == relay::Proto::tcp ? IPPROTO_TCP : IPPROTO_UDP);
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_SRC, htons(src.port));
  nfct_set_attr_u16(ct.get(), ATTR_ORIG_PORT_DST, htons(dst.port));
  return ct;
}

struct Collect {
  std::vector<ConntrackEntry>* out;
  std::optional<relay::Proto> proto;
};

int collect(nf_conntrack_msg_type, nf_conntrack* ct, void* data) {
  auto* c = static_cast<Collect*>(data);
  if (auto e = to_entry(ct); e && (!c->proto || e->proto == *c->proto)) c->out->push_back(*e);
  return NFCT_CB_CONTINUE;
}

}  // namespace

Conntrack::Conntrack() {
  h_ = nfct_open(CONNTRACK, 0);
  if (h_ == nullptr) throw std::system_error(errno, std::generic_category(), "nfct_open");
}

Conntrack::~Conntrack() { nfct_close(h_); }

int Conntrack::query(int type, void* data, void* c, std::vector<ConntrackEntry>& out) {
  for (int attempt = 0;; ++attempt) {
    out.clear();
    nfct_callback_register(h_, NFCT_T_ALL, collect, c);
    const int rc = nfct_query(h_, static_cast<nf_conntrack_query>(type), data);
    const int err = errno;
    nfct_callback_unregister(h_);
    if (rc >= 0) return 0;
    if (err != EINTR || attempt + 1 == kAttempts) return err;
  }
}

std::vector<ConntrackEntry> Conntrack::list(std::optional<relay::Proto> proto) {
  std::vector<ConntrackEntry> out;
  Collect c{&out, proto};
  std::uint32_t family = AF_UNSPEC;
  if (const int err = query(NFCT_Q_DUMP, &family, &c, out); err != 0)
    throw std::system_error(err, std::generic_category(), "conntrack dump");
  return out;
}

std::optional<ConntrackEntry> Conntrack::find(relay::Proto proto, const relay::Endpoint& src,
                                              const relay::Endpoint& dst) {
  auto ct = orig_tuple(proto, src, dst);
  std::vector<ConntrackEntry> out;
  Collect c{&out, proto};
  if (const int err = query(NFCT_Q_GET, ct.get(), &c, out); err != 0) {
    if (err == ENOENT) return std::nullopt;
    throw std::system_error(err, std::generic_category(), "conntrack get");
  }
  if (out.empty()) return std::nullopt;
  return out.front();
}

bool Conntrack::set_mark(relay::Proto proto, const relay::Endpoint& src, const relay::Endpoint& dst,
                         std::uint32_t mark, std::uint32_t mask) {
  // libnetfilter_conntrack 1.0.9 cannot send CTA_MARK_MASK: build the update with libmnl, so the
  // kernel applies `mark = (mark & ~mask) ^ value` atomically (no read-modify-write race with
  // another tool re-marking the same entry).
  auto ct = orig_tuple(proto, src, dst);
  nfct_set_attr_u32(ct.get(), ATTR_MARK, mark & mask);
  if (!nl_) nl_ = std::make_unique<detail::NetlinkSocket>(NETLINK_NETFILTER);  // one for every re-mark
  auto& nl = *nl_;
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.request_buffer());
  nlh->nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;  // no NLM_F_CREATE: update an existing entry only
  auto* nfh = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfh->nfgen_family = static_cast<std::uint8_t>(src.address.is_v4() ? AF_INET : AF_INET6);
  nfh->version = NFNETLINK_V0;
  nfh->res_id = 0;
  if (nfct_nlmsg_build(nlh, ct.get()) < 0) throw std::system_error(errno, std::generic_category(), "conntrack message");
  mnl_attr_put_u32(nlh, CTA_MARK_MASK, htonl(mask));
  const int err = nl.request(nlh);
  if (err == 0) return true;
  if (err == ENOENT) return false;
  throw std::system_error(err, std::generic_category(), "conntrack update mark");
}

}  // namespace flowrelay::linux_host
