#include "extension/linux/policy_routes.hpp"

#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <system_error>

namespace flowrelay::linux_host {
namespace {

using detail::NetlinkSocket;

constexpr int kFamilies[] = {AF_INET, AF_INET6};

nlmsghdr* rule_msg(NetlinkSocket& nl, std::uint16_t type, std::uint16_t flags, int family,
                   const PolicyRouteSpec& s) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.request_buffer());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
  frh->family = static_cast<std::uint8_t>(family);
  frh->action = FR_ACT_TO_TBL;
  frh->table = static_cast<std::uint8_t>(s.table < 256 ? s.table : static_cast<std::uint32_t>(RT_TABLE_UNSPEC));
  mnl_attr_put_u32(nlh, FRA_TABLE, s.table);
  mnl_attr_put_u32(nlh, FRA_FWMARK, s.fwmark);
  mnl_attr_put_u32(nlh, FRA_FWMASK, 0xffffffffu);  // exact: the bypass mark must not match
  mnl_attr_put_u32(nlh, FRA_PRIORITY, s.priority);
  return nlh;
}

nlmsghdr* route_msg(NetlinkSocket& nl, std::uint16_t type, std::uint16_t flags, int family,
                    const PolicyRouteSpec& s) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.request_buffer());
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = static_cast<std::uint8_t>(family);
  rtm->rtm_dst_len = 0;
  rtm->rtm_table = static_cast<std::uint8_t>(s.table < 256 ? s.table : static_cast<std::uint32_t>(RT_TABLE_UNSPEC));
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_scope = RT_SCOPE_HOST;
  rtm->rtm_type = RTN_LOCAL;
  mnl_attr_put_u32(nlh, RTA_TABLE, s.table);
  mnl_attr_put_u32(nlh, RTA_OIF, if_nametoindex("lo"));
  return nlh;
}

template <class F>
void for_each_attr(const nlmsghdr* m, std::size_t header, F f) {
  mnl_attr_parse(m, static_cast<unsigned>(header), [](const nlattr* a, void* data) {
    (*static_cast<F*>(data))(a);
    return static_cast<int>(MNL_CB_OK);
  }, &f);
}

void check(int err, const char* what) {
  if (err != 0) throw std::system_error(err, std::generic_category(), what);
}

}  // namespace

void PolicyRoutes::install() {
  NetlinkSocket nl(NETLINK_ROUTE);
  for (int family : kFamilies) {
    // NLM_F_EXCL turns "already there" into EEXIST instead of a duplicate rule.
    int err = nl.request(rule_msg(nl, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
    if (err != EEXIST) check(err, family == AF_INET ? "add ip rule" : "add ip -6 rule");
    err = nl.request(route_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
    if (err != EEXIST) check(err, family == AF_INET ? "add local route" : "add local -6 route");
  }
}

void PolicyRoutes::remove() {
  NetlinkSocket nl(NETLINK_ROUTE);
  for (int family : kFamilies) {
    // Loop: a rule added twice by an older run without EXCL would otherwise survive. Bounded.
    for (int i = 0; i < 64; ++i) {
      int err = nl.request(rule_msg(nl, RTM_DELRULE, 0, family, spec_));
      if (err == ENOENT) break;
      check(err, "delete ip rule");
    }
    int err = nl.request(route_msg(nl, RTM_DELROUTE, 0, family, spec_));
    if (err != ESRCH && err != ENOENT) check(err, "delete local route");
  }
}

bool PolicyRoutes::installed() {
  NetlinkSocket nl(NETLINK_ROUTE);
  for (int family : kFamilies) {
    bool rule = false, route = false;
    nlmsghdr* nlh = mnl_nlmsg_put_header(nl.request_buffer());
    nlh->nlmsg_type = RTM_GETRULE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* frh = static_cast<fib_rule_hdr*>(mnl_nlmsg_put_extra_header(nlh, sizeof(fib_rule_hdr)));
    frh->family = static_cast<std::uint8_t>(family);
    check(nl.request(nlh, [&](const nlmsghdr* m) {
      std::uint32_t table = 0, mark = 0, mask = 0;
      bool has_mark = false;
      for_each_attr(m, sizeof(fib_rule_hdr), [&](const nlattr* a) {
        switch (mnl_attr_get_type(a)) {
          case FRA_TABLE: table = mnl_attr_get_u32(a); break;
          case FRA_FWMARK: mark = mnl_attr_get_u32(a); has_mark = true; break;
          case FRA_FWMASK: mask = mnl_attr_get_u32(a); break;
        }
      });
      if (has_mark && table == spec_.table && mark == spec_.fwmark && mask == 0xffffffffu) rule = true;
    }), "dump rules");

    nlh = mnl_nlmsg_put_header(nl.request_buffer());
    nlh->nlmsg_type = RTM_GETROUTE;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
    rtm->rtm_family = static_cast<std::uint8_t>(family);
    check(nl.request(nlh, [&](const nlmsghdr* m) {
      const auto* r = static_cast<const rtmsg*>(mnl_nlmsg_get_payload(m));
      std::uint32_t table = r->rtm_table;
      for_each_attr(m, sizeof(rtmsg), [&](const nlattr* a) {
        if (mnl_attr_get_type(a) == RTA_TABLE) table = mnl_attr_get_u32(a);
      });
      if (table == spec_.table && r->rtm_type == RTN_LOCAL && r->rtm_dst_len == 0) route = true;
    }), "dump routes");
    if (!rule || !route) return false;
  }
  return true;
}

}  // namespace flowrelay::linux_host
