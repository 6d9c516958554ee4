#include "extension/linux/linux_bypassed_flows.hpp"

#include "extension/linux/ct_mark.hpp"

#include <dirent.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>

namespace flowrelay::linux_host {

namespace {

using boost::asio::ip::address;

/// Socket inodes of this process: the relay's own sockets, never app flows.
std::unordered_set<std::uint32_t> own_socket_inodes() {
  std::unordered_set<std::uint32_t> out;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return out;
  char path[300], target[64];
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    const ssize_t n = ::readlink(path, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) out.insert(static_cast<std::uint32_t>(inode));
  }
  ::closedir(d);
  return out;
}

/// The namespace's own addresses (a flow to one of them is local traffic, never claimed).
std::set<address> local_addresses() {
  std::set<address> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      auto* in = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      boost::asio::ip::address_v4::bytes_type b;
      std::memcpy(b.data(), &in->sin_addr, 4);
      out.insert(boost::asio::ip::address_v4(b));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
      boost::asio::ip::address_v6::bytes_type b;
      std::memcpy(b.data(), &in6->sin6_addr, 16);
      out.insert(boost::asio::ip::address_v6(b));
    }
  }
  ::freeifaddrs(list);
  return out;
}

bool is_local(const address& a, const std::set<address>& locals) {
  return a.is_loopback() || a.is_unspecified() || a.is_multicast() || locals.count(a) != 0;
}

using Tuple = std::tuple<relay::Proto, relay::Endpoint, relay::Endpoint>;

constexpr relay::FlowId kBypassedBit = relay::FlowId{1} << 63;

}  // namespace

relay::Endpoint unmapped(const relay::Endpoint& e) {
  if (e.address.is_v6() && e.address.to_v6().is_v4_mapped())
    return {boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, e.address.to_v6()), e.port};
  return e;
}

LinuxBypassedFlows::LinuxBypassedFlows(relay::Relay& relay, std::uint32_t bypass_mark)
    : relay_(relay), bypass_mark_(bypass_mark) {}

std::vector<relay::FlowMeta> LinuxBypassedFlows::snapshot() {
  std::vector<relay::FlowMeta> out;
  for (auto& f : list()) out.push_back(std::move(f.meta));
  return out;
}

const BypassedFlow* LinuxBypassedFlows::find(relay::FlowId id) const {
  auto it = last_.find(id);
  return it == last_.end() ? nullptr : &it->second;
}

void LinuxBypassedFlows::add_uids(std::vector<relay::FlowMeta>& claimed) {
  if (claimed.empty()) return;
  const auto own = own_socket_inodes();
  std::map<Tuple, std::uint32_t> tcp;                  // (app, dst) -> uid
  std::multimap<std::uint16_t, const SocketInfo*> udp;  // local port -> socket
  const auto sockets = diag_.dump();
  for (const auto& s : sockets) {
    if (s.inode == 0 || own.count(s.inode) != 0 || (bypass_mark_ != 0 && s.mark == bypass_mark_)) continue;
    if (s.proto == relay::Proto::tcp) tcp[{relay::Proto::tcp, unmapped(s.local), unmapped(s.remote)}] = s.uid;
    else udp.emplace(s.local.port, &s);
  }
  for (auto& m : claimed) {
    if (m.app_identity.uid) continue;
    const auto app = unmapped(m.app), dst = unmapped(m.dst);
    if (m.proto == relay::Proto::tcp) {
      if (auto it = tcp.find({relay::Proto::tcp, app, dst}); it != tcp.end()) m.app_identity.uid = it->second;
      continue;
    }
    auto [lo, hi] = udp.equal_range(app.port);
    for (auto it = lo; it != hi; ++it) {
      const auto l = unmapped(it->second->local), r = unmapped(it->second->remote);
      if ((l.address.is_unspecified() || l.address == app.address) && (r.port == 0 || r == dst)) {
        m.app_identity.uid = it->second->uid;
        break;
      }
    }
  }
}

std::vector<BypassedFlow> LinuxBypassedFlows::list() {
  // Order matters: sockets first, then what claims them. A flow that starts in between is then
  // seen with its conntrack entry (decided by the running table), never as an unmarked stranger.
  const auto own = own_socket_inodes();
  const auto locals = local_addresses();
  const auto sockets = diag_.dump();
  std::set<Tuple> claimed;
  for (const auto& s : relay_.snapshot()) claimed.insert({s.meta.proto, unmapped(s.meta.app), unmapped(s.meta.dst)});
  std::map<Tuple, std::uint32_t> ct_marks;
  std::vector<ConntrackEntry> ct_entries = ct_.list();
  for (const auto& e : ct_entries) ct_marks[{e.proto, e.orig_src, e.orig_dst}] = e.mark;

  std::set<std::uint16_t> listening;  // inbound TCP connections are not app flows to claim
  std::multimap<std::uint16_t, const SocketInfo*> udp_by_port;
  for (const auto& s : sockets) {
    const bool ours = (s.inode != 0 && own.count(s.inode) != 0) || (bypass_mark_ != 0 && s.mark == bypass_mark_);
    if (s.proto == relay::Proto::tcp && s.state == TCP_LISTEN && !ours) listening.insert(s.local.port);
    if (s.proto == relay::Proto::udp && !ours && s.inode != 0) udp_by_port.emplace(s.local.port, &s);
  }

  std::vector<BypassedFlow> out;
  last_.clear();
  auto add = [&](BypassedFlow f) {
    last_[f.meta.id] = f;
    out.push_back(std::move(f));
  };

  for (const auto& s : sockets) {
    if (s.proto != relay::Proto::tcp || s.state != TCP_ESTABLISHED || s.inode == 0) continue;
    if (own.count(s.inode) != 0 || (bypass_mark_ != 0 && s.mark == bypass_mark_)) continue;
    const auto local = unmapped(s.local), remote = unmapped(s.remote);
    if (is_local(remote.address, locals) || listening.count(local.port) != 0) continue;
    const Tuple t{relay::Proto::tcp, local, remote};
    if (claimed.count(t) != 0) continue;
    std::uint32_t mark = 0;
    if (auto it = ct_marks.find(t); it != ct_marks.end()) mark = it->second;
    if (CtMark::verdict(mark) == Verdict::claim) continue;  // claimed, the relay is about to hold it
    BypassedFlow f;
    f.meta.id = kBypassedBit | (s.cookie & ~kBypassedBit);
    f.meta.proto = relay::Proto::tcp;
    f.meta.app = local;
    f.meta.dst = remote;
    f.meta.app_identity.uid = s.uid;
    f.meta.epoch = CtMark::epoch(mark);
    f.socket = s;
    add(std::move(f));
  }

  for (const auto& e : ct_entries) {
    if (e.proto != relay::Proto::udp) continue;
    if (CtMark::verdict(e.mark) == Verdict::claim) continue;
    if (!locals.count(e.orig_src.address) || is_local(e.orig_dst.address, locals)) continue;
    const Tuple t{relay::Proto::udp, e.orig_src, e.orig_dst};
    if (claimed.count(t) != 0) continue;
    // Only flows of a live app socket: the relay's upstreams carry the mark, dead flows have none.
    const SocketInfo* owner = nullptr;
    auto [lo, hi] = udp_by_port.equal_range(e.orig_src.port);
    for (auto it = lo; it != hi; ++it) {
      const auto l = unmapped(it->second->local), r = unmapped(it->second->remote);
      if (!l.address.is_unspecified() && l.address != e.orig_src.address) continue;
      if (r.port != 0 && r != e.orig_dst) continue;
      owner = it->second;
      break;
    }
    if (owner == nullptr) continue;
    BypassedFlow f;
    f.meta.id = kBypassedBit | (std::hash<std::string>{}(e.orig_src.to_string() + ">" + e.orig_dst.to_string()) >> 1);
    f.meta.proto = relay::Proto::udp;
    f.meta.app = e.orig_src;
    f.meta.dst = e.orig_dst;
    f.meta.app_identity.uid = owner->uid;
    f.meta.epoch = CtMark::epoch(e.mark);
    add(std::move(f));
  }
  return out;
}

}  // namespace flowrelay::linux_host
