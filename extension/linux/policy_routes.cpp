#include "extension/linux/policy_routes.hpp"

#include "extension/linux/detail/netlink_socket.hpp"

#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <arpa/inet.h>

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
  mnl_attr_put_u32(nlh, FRA_FWMASK, s.fwmask);  // covers the bypass mark too: it must not match
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

std::string route_text(const nlmsghdr* m, const rtmsg* r) {
  std::string dst = r->rtm_family == AF_INET ? "0.0.0.0" : "::";
  std::uint32_t oif = 0;
  for_each_attr(m, sizeof(rtmsg), [&](const nlattr* a) {
    if (mnl_attr_get_type(a) == RTA_OIF) oif = mnl_attr_get_u32(a);
    if (mnl_attr_get_type(a) != RTA_DST) return;
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(r->rtm_family, mnl_attr_get_payload(a), buf, sizeof buf);
    dst = buf;
  });
  static const char* const types[] = {"unspec", "unicast", "local", "broadcast", "anycast", "multicast",
                                      "blackhole", "unreachable", "prohibit", "throw", "nat"};
  std::string type = r->rtm_type < std::size(types) ? types[r->rtm_type] : "type " + std::to_string(r->rtm_type);
  char dev[IF_NAMESIZE] = {};
  std::string out = type + " " + dst + "/" + std::to_string(r->rtm_dst_len);
  if (oif != 0) out += std::string(" dev ") + (::if_indextoname(oif, dev) ? dev : std::to_string(oif).c_str());
  return out;
}

/// Each route of `family` with the table it is in (RTA_TABLE over the 8-bit rtm_table).
template <typename Fn>
void for_each_route(NetlinkSocket& nl, int family, Fn&& fn) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(nl.request_buffer());
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
    fn(m, r, table);
  }), "dump routes");
}

}  // namespace

std::vector<std::string> PolicyRoutes::table_routes() {
  NetlinkSocket nl(NETLINK_ROUTE);
  std::vector<std::string> out;
  for (int family : kFamilies)
    for_each_route(nl, family, [&](const nlmsghdr* m, const rtmsg* r, std::uint32_t table) {
      if (table == spec_.table) out.push_back(route_text(m, r));
    });
  return out;
}

void PolicyRoutes::install() {
  if (auto routes = table_routes(); !routes.empty()) {
    std::string list;
    for (const auto& r : routes) list += (list.empty() ? "" : "; ") + r;
    throw RouteTableInUse("route table " + std::to_string(spec_.table) + " is in use (" + list +
                          "): choose a free linux.route_table, or remove those routes");
  }
  NetlinkSocket nl(NETLINK_ROUTE);
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    const int family = kFamilies[i];
    // NLM_F_EXCL turns "already there" into EEXIST: then the rule is someone else's, and stays theirs.
    int err = nl.request(rule_msg(nl, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
    added_[i].rule_preexisting = err == EEXIST;
    if (err != EEXIST) check(err, family == AF_INET ? "add ip rule" : "add ip -6 rule");
    added_[i].rule = err == 0;
    // The table was empty a moment ago: EEXIST here is another writer racing us, not success.
    err = nl.request(route_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
    check(err, family == AF_INET ? "add local route" : "add local -6 route");
    added_[i].route = true;
  }
}

int PolicyRoutes::repair() {
  NetlinkSocket nl(NETLINK_ROUTE);
  int repaired = 0;
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    const int family = kFamilies[i];
    // EXCL: EEXIST means still there, nothing to do.
    if (added_[i].rule) {
      int err = nl.request(rule_msg(nl, RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
      if (err != EEXIST) check(err, "re-add ip rule");
      repaired += err == 0 ? 1 : 0;
    }
    if (added_[i].route) {
      int err = nl.request(route_msg(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, family, spec_));
      if (err != EEXIST) check(err, "re-add local route");
      repaired += err == 0 ? 1 : 0;
    }
  }
  return repaired;
}

void PolicyRoutes::remove() {
  NetlinkSocket nl(NETLINK_ROUTE);
  for (std::size_t i = 0; i < std::size(kFamilies); ++i) {
    const int family = kFamilies[i];
    if (added_[i].rule) {
      int err = nl.request(rule_msg(nl, RTM_DELRULE, 0, family, spec_));
      if (err != ENOENT) check(err, "delete ip rule");
      added_[i].rule = false;
    }
    if (added_[i].route) {
      int err = nl.request(route_msg(nl, RTM_DELROUTE, 0, family, spec_));
      if (err != ESRCH && err != ENOENT) check(err, "delete local route");
      added_[i].route = false;
    }
  }
}

void PolicyRoutes::remove_stale() {
  NetlinkSocket nl(NETLINK_ROUTE);
  for (int family : kFamilies) {
    // Loop: a rule added twice by an older run without EXCL would otherwise survive. Bounded.
    for (int i = 0; i < 64; ++i) {
      int err = nl.request(rule_msg(nl, RTM_DELRULE, 0, family, spec_));
      if (err == ENOENT) break;
      check(err, "delete stale ip rule");
    }
    int err = nl.request(route_msg(nl, RTM_DELROUTE, 0, family, spec_));
    if (err != ESRCH && err != ENOENT) check(err, "delete stale local route");
  }
}

std::vector<std::string> PolicyRoutes::preexisting_rules() const {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < std::size(kFamilies); ++i)
    if (added_[i].rule_preexisting) out.emplace_back(kFamilies[i] == AF_INET ? "ip" : "ip -6");
  return out;
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
      if (has_mark && table == spec_.table && mark == spec_.fwmark && mask == spec_.fwmask) rule = true;
    }), "dump rules");

    for_each_route(nl, family, [&](const nlmsghdr*, const rtmsg* r, std::uint32_t table) {
      if (table == spec_.table && r->rtm_type == RTN_LOCAL && r->rtm_dst_len == 0) route = true;
    });
    if (!rule || !route) return false;
  }
  return true;
}

}  // namespace flowrelay::linux_host
