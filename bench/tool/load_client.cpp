#include "load_client.hpp"

#include "load_protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <exception>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace flowrelay::bench {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using asio::ip::udp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

Clock::duration to_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

HostPort target_of(const ClientOptions& options) {
  auto hp = parse_host_port(options.target);
  if (!hp || hp->port == 0) throw std::invalid_argument("bad --target (want ADDR:PORT): " + options.target);
  return *hp;
}

void report_exception(std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "flowrelay-bench: %s\n", ex.what());
  }
}

/// One client thread: its io_context, the sockets its flows use, its counters. At the hard
/// deadline every socket is closed, so a flow stuck on a stalled relay ends too; when the last
/// flow ends the deadline is cancelled and run() returns.
struct Worker {
  asio::io_context context{1};
  asio::steady_timer deadline{context};
  std::vector<std::shared_ptr<tcp::socket>> tcp_sockets;
  std::vector<std::shared_ptr<udp::socket>> udp_sockets;
  bool stopped = false;
  unsigned active = 0;
  Histogram latency;
  std::uint64_t count_a = 0, count_b = 0, count_c = 0, errors = 0;
  std::vector<std::uint64_t> flow_bytes;
  std::vector<char> out_buffer, in_buffer;

  void stop() {
    stopped = true;
    error_code ignored;
    for (auto& s : tcp_sockets)
      if (s) s->close(ignored);
    for (auto& s : udp_sockets)
      if (s) s->close(ignored);
  }
  void flow_done() {
    if (--active == 0) deadline.cancel();
  }
  template <class Coroutine> void spawn(Coroutine&& coroutine) {
    ++active;
    asio::co_spawn(context, std::forward<Coroutine>(coroutine), report_exception);
  }
};

using Workers = std::vector<std::unique_ptr<Worker>>;

/// Builds `threads` workers, lets `setup(worker, index)` spawn flows on each, runs them all to
/// completion (or to `hard_deadline`) and returns them for their counters.
template <class Setup> Workers run_workers(unsigned threads, Clock::time_point hard_deadline, Setup setup) {
  threads = std::max(1u, threads);
  Workers workers;
  for (unsigned i = 0; i < threads; ++i) workers.push_back(std::make_unique<Worker>());
  for (unsigned i = 0; i < threads; ++i) {
    Worker& w = *workers[i];
    setup(w, i);
    if (w.active > 0) {
      w.deadline.expires_at(hard_deadline);
      w.deadline.async_wait([&w](error_code ec) {
        if (!ec) w.stop();
      });
    }
  }
  std::vector<std::thread> threads_running;
  for (unsigned i = 1; i < threads; ++i) threads_running.emplace_back([&w = *workers[i]] { w.context.run(); });
  workers[0]->context.run();
  for (auto& t : threads_running) t.join();
  return workers;
}

/// Flows are dealt round-robin: flow f runs on worker f % threads, in its slot f / threads.
unsigned flows_on(unsigned worker, unsigned flows, unsigned threads) {
  return flows / threads + (worker < flows % threads ? 1 : 0);
}

awaitable<error_code> connect_flow(Worker& w, tcp::socket& socket, const tcp::endpoint& endpoint) {
  if (w.stopped) co_return asio::error::operation_aborted;
  auto [ec] = co_await socket.async_connect(endpoint, use_tuple);
  if (!ec && w.stopped) ec = asio::error::operation_aborted;
  if (!ec) socket.set_option(tcp::no_delay(true), ec);
  co_return ec;
}

awaitable<error_code> send_command(tcp::socket& socket, Command command) {
  const char c = static_cast<char>(command);
  auto [ec, n] = co_await asio::async_write(socket, asio::buffer(&c, 1), use_tuple);
  co_return ec;
}

// ---- stream ----

awaitable<void> stream_out(Worker& w, std::shared_ptr<tcp::socket> s, std::size_t slot) {
  while (!w.stopped) {
    auto [ec, n] = co_await s->async_write_some(asio::buffer(w.out_buffer), use_tuple);
    if (ec) break;
    w.count_a += n;
    w.flow_bytes[slot] += n;
  }
  w.flow_done();
}

awaitable<void> stream_in(Worker& w, std::shared_ptr<tcp::socket> s, std::size_t slot) {
  while (!w.stopped) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(w.in_buffer), use_tuple);
    if (ec) break;
    w.count_b += n;
    w.flow_bytes[slot] += n;
  }
  w.flow_done();
}

awaitable<void> stream_flow(Worker& w, std::size_t slot, tcp::endpoint endpoint, Direction direction) {
  auto s = w.tcp_sockets[slot];
  auto ec = co_await connect_flow(w, *s, endpoint);
  const Command command = direction == Direction::up     ? Command::sink
                          : direction == Direction::down ? Command::source
                                                         : Command::both;
  if (!ec) ec = co_await send_command(*s, command);
  if (ec) {
    if (!w.stopped) ++w.errors;
    w.flow_done();
    co_return;
  }
  if (direction == Direction::both) {
    w.spawn(stream_out(w, s, slot));
    co_await stream_in(w, s, slot);
  } else if (direction == Direction::up) {
    co_await stream_out(w, s, slot);
  } else {
    co_await stream_in(w, s, slot);
  }
}

// ---- rr ----

awaitable<void> rr_flow(Worker& w, std::size_t slot, tcp::endpoint endpoint, std::size_t size) {
  auto s = w.tcp_sockets[slot];
  std::vector<char> request(size, 'r'), response(size);
  auto ec = co_await connect_flow(w, *s, endpoint);
  if (!ec) ec = co_await send_command(*s, Command::echo);
  while (!ec && !w.stopped) {
    const auto t0 = now_ns();
    auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(request), use_tuple);
    if (wec) break;
    auto [rec, rn] = co_await asio::async_read(*s, asio::buffer(response), use_tuple);
    if (rec) break;
    w.latency.record(now_ns() - t0);
    ++w.count_a;
  }
  if (ec && !w.stopped) ++w.errors;
  w.flow_done();
}

// ---- cps ----

awaitable<void> cps_slot(Worker& w, std::size_t slot, tcp::endpoint endpoint, std::size_t size,
                         Clock::time_point until) {
  // Command::once: the server answers and closes first, the client waits for that EOF and
  // then closes, so no TIME_WAIT piles up on the client's or a relay's ephemeral ports.
  std::vector<char> request(size + 3, 'c'), response(size);
  request[0] = static_cast<char>(Command::once);
  request[1] = static_cast<char>((size >> 8) & 0xff);
  request[2] = static_cast<char>(size & 0xff);
  char trailing = 0;
  unsigned failures_in_a_row = 0;
  while (!w.stopped && Clock::now() < until && failures_in_a_row < 1000) {
    auto s = std::make_shared<tcp::socket>(w.context);
    w.tcp_sockets[slot] = s;
    const auto t0 = now_ns();
    std::uint64_t first_byte = 0;
    auto ec = co_await connect_flow(w, *s, endpoint);
    if (!ec) {
      auto [wec, wn] = co_await asio::async_write(*s, asio::buffer(request), use_tuple);
      ec = wec;
    }
    if (!ec) {
      auto [rec, rn] = co_await asio::async_read(*s, asio::buffer(response), use_tuple);
      ec = rec;
      first_byte = now_ns();
    }
    if (!ec) { // the server's close: EOF, nothing else
      auto [rec, rn] = co_await s->async_read_some(asio::buffer(&trailing, 1), use_tuple);
      if (rec != asio::error::eof) ec = rec ? rec : asio::error::invalid_argument;
    }
    if (w.stopped) break;
    if (ec) {
      ++w.errors;
      ++failures_in_a_row;
    } else {
      w.latency.record(first_byte - t0);
      ++w.count_a;
      failures_in_a_row = 0;
    }
    error_code ignored;
    s->close(ignored);
  }
  w.tcp_sockets[slot].reset();
  w.flow_done();
}

// ---- udp ----

awaitable<void> udp_receiver(Worker& w, std::shared_ptr<udp::socket> s, asio::steady_timer& wake,
                             std::uint64_t& received, std::size_t size) {
  std::vector<char> buffer(std::max<std::size_t>(size, sizeof(DatagramHeader)) + 64);
  std::uint64_t highest = 0;
  bool any = false;
  for (;;) {
    // Readable: drain without blocking, then wake the sender once for the whole burst.
    auto [wec] = co_await s->async_wait(udp::socket::wait_read, use_tuple);
    if (wec == asio::error::operation_aborted || !s->is_open()) break;
    bool got = false;
    for (int i = 0; i < 256; ++i) {
      error_code ec;
      const std::size_t n = s->receive(asio::buffer(buffer), 0, ec);
      if (ec == asio::error::would_block) break;
      if (ec) { // ECONNREFUSED from an ICMP port unreachable: nobody listens there (yet)
        ++w.errors;
        continue;
      }
      if (n < sizeof(DatagramHeader)) continue;
      DatagramHeader h;
      std::memcpy(&h, buffer.data(), sizeof h);
      w.latency.record(now_ns() - h.sent_ns);
      ++received;
      ++w.count_b;
      if (any && h.seq < highest) ++w.count_c;
      else highest = h.seq;
      any = true;
      got = true;
    }
    if (got) wake.cancel();
  }
  w.flow_done();
}

awaitable<void> udp_flow(Worker& w, std::size_t slot, udp::endpoint endpoint, UdpOptions options,
                         Clock::time_point start, Clock::time_point until) {
  auto s = w.udp_sockets[slot];
  error_code ec;
  s->open(endpoint.protocol(), ec);
  if (!ec) s->connect(endpoint, ec);
  if (ec) {
    ++w.errors;
    w.flow_done();
    co_return;
  }
  s->set_option(asio::socket_base::receive_buffer_size(4 << 20), ec);
  s->set_option(asio::socket_base::send_buffer_size(4 << 20), ec);
  s->non_blocking(true, ec);

  asio::steady_timer wake(w.context);
  std::uint64_t received = 0, sent = 0, presumed_lost = 0;
  w.spawn(udp_receiver(w, s, wake, received, options.size));

  std::vector<char> datagram(std::max(options.size, sizeof(DatagramHeader)), 'u');
  const auto stall = to_duration(options.stall_ms / 1000.0);
  const std::uint64_t unbounded = ~std::uint64_t{0};
  while (!w.stopped) {
    const auto now = Clock::now();
    if (now >= until) break;
    std::uint64_t budget = unbounded;
    if (options.rate > 0) {
      const auto due = static_cast<std::uint64_t>(seconds_between(start, now) * options.rate) + 1;
      budget = due > sent ? due - sent : 0;
    }
    const std::uint64_t in_flight = sent - std::min(sent, received + presumed_lost);
    std::uint64_t room = options.window ? (options.window > in_flight ? options.window - in_flight : 0) : unbounded;
    std::uint64_t burst = std::min<std::uint64_t>({budget, room, 64});
    if (burst > 0) {
      for (std::uint64_t i = 0; i < burst && !w.stopped; ++i) {
        DatagramHeader h{sent, now_ns()};
        std::memcpy(datagram.data(), &h, sizeof h);
        error_code sec;
        s->send(asio::buffer(datagram), 0, sec);
        if (sec == asio::error::would_block) {
          co_await s->async_wait(udp::socket::wait_write, use_tuple);
          break;
        }
        if (sec) { // e.g. ECONNREFUSED after an ICMP port unreachable: do not spin on it
          ++w.errors;
          wake.expires_after(std::chrono::milliseconds(1));
          co_await wake.async_wait(use_tuple);
          break;
        }
        ++sent;
        ++w.count_a;
      }
      continue;
    }
    // Nothing may be sent now: wait for a reply (window full) or for the next slot (rate).
    const std::uint64_t received_before = received;
    if (room == 0) {
      wake.expires_after(stall);
    } else {
      const auto next = start + to_duration(static_cast<double>(sent + 1) / options.rate);
      wake.expires_at(std::min(next, until));
    }
    co_await wake.async_wait(use_tuple);
    if (room == 0 && received == received_before && Clock::now() - now >= stall) {
      presumed_lost += in_flight; // a stalled window: count those as lost and go on
    }
  }
  // Late replies count until the drain timer closes the socket.
  asio::steady_timer drain(w.context);
  drain.expires_after(to_duration(options.drain_s));
  co_await drain.async_wait(use_tuple);
  error_code ignored;
  s->close(ignored);
  w.flow_done();
}

// ---- hold ----

awaitable<void> hold_opener(Worker& w, tcp::endpoint endpoint, std::size_t& next, std::size_t total) {
  const char request[2] = {static_cast<char>(Command::echo), 'h'};
  char response = 0;
  while (!w.stopped && next < total) {
    const std::size_t slot = next++;
    auto s = std::make_shared<tcp::socket>(w.context);
    w.tcp_sockets[slot] = s;
    auto ec = co_await connect_flow(w, *s, endpoint);
    if (!ec) {
      auto [wec, n] = co_await asio::async_write(*s, asio::buffer(request), use_tuple);
      ec = wec;
    }
    if (!ec) {
      auto [rec, n] = co_await asio::async_read(*s, asio::buffer(&response, 1), use_tuple);
      ec = rec;
    }
    if (ec) {
      ++w.errors;
      error_code ignored;
      s->close(ignored);
      w.tcp_sockets[slot].reset();
    } else {
      ++w.count_a;
    }
  }
  w.flow_done();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "Key:   1234 kB" -> bytes, or -1.
std::int64_t kib_field(const std::string& text, const std::string& key) {
  auto at = text.find("\n" + key + ":");
  if (at == std::string::npos) {
    if (text.rfind(key + ":", 0) != 0) return -1;
    at = 0;
  } else {
    at += 1;
  }
  return std::strtoll(text.c_str() + at + key.size() + 1, nullptr, 10) * 1024;
}

std::vector<int> descendants_and_self(int pid) {
  std::vector<std::pair<int, int>> parent_of; // (pid, ppid)
  if (DIR* dir = opendir("/proc")) {
    while (dirent* e = readdir(dir)) {
      const int p = std::atoi(e->d_name);
      if (p <= 0) continue;
      const std::string stat = read_file("/proc/" + std::to_string(p) + "/stat");
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
      const auto close = stat.rfind(')');
      if (close == std::string::npos) continue;
      char state = 0;
      int ppid = 0;
      if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) == 2) parent_of.emplace_back(p, ppid);
    }
    closedir(dir);
  }
  std::vector<int> out{pid};
  for (std::size_t i = 0; i < out.size(); ++i)
    for (auto [p, pp] : parent_of)
      if (pp == out[i]) out.push_back(p);
  return out;
}

void add_common(Report& r, const char* mode, const ClientOptions& o) {
  r.add("mode", std::string(mode));
  r.add("target", o.target);
  r.add_int("flows", o.flows);
  r.add_int("threads", o.threads);
}

} // namespace

std::int64_t process_memory(int pid, bool tree) {
  if (pid <= 0) return -1;
  if (!tree) return kib_field(read_file("/proc/" + std::to_string(pid) + "/status"), "VmRSS");
  std::int64_t total = -1;
  for (int p : descendants_and_self(pid)) {
    const auto pss = kib_field(read_file("/proc/" + std::to_string(p) + "/smaps_rollup"), "Pss");
    if (pss >= 0) total = (total < 0 ? 0 : total) + pss;
  }
  return total;
}

void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

StreamResult run_stream(const StreamOptions& options) {
  const auto hp = target_of(options);
  const tcp::endpoint endpoint(hp.address, hp.port);
  const auto start = Clock::now();
  const auto until = start + to_duration(options.duration_s);
  auto workers = run_workers(options.threads, until, [&](Worker& w, unsigned index) {
    const unsigned flows = flows_on(index, options.flows, std::max(1u, options.threads));
    w.out_buffer.assign(options.chunk_bytes, 's');
    w.in_buffer.resize(options.chunk_bytes);
    w.flow_bytes.assign(flows, 0);
    for (unsigned f = 0; f < flows; ++f) {
      w.tcp_sockets.push_back(std::make_shared<tcp::socket>(w.context));
      w.spawn(stream_flow(w, f, endpoint, options.direction));
    }
  });
  StreamResult result;
  result.seconds = seconds_between(start, std::max(Clock::now(), start));
  result.seconds = std::min(result.seconds, options.duration_s);
  for (auto& w : workers) {
    result.bytes_up += w->count_a;
    result.bytes_down += w->count_b;
    result.errors += w->errors;
    result.flow_bytes.insert(result.flow_bytes.end(), w->flow_bytes.begin(), w->flow_bytes.end());
  }
  return result;
}

Report to_report(const StreamOptions& o, const StreamResult& r) {
  Report report;
  add_common(report, "stream", o);
  report.add("direction", std::string(o.direction == Direction::up ? "up" : o.direction == Direction::down ? "down" : "both"));
  report.add("seconds", r.seconds, "s");
  report.add_int("bytes_up", r.bytes_up, "B");
  report.add_int("bytes_down", r.bytes_down, "B");
  const double secs = r.seconds > 0 ? r.seconds : 1;
  const double total = static_cast<double>(r.bytes_up + r.bytes_down) * 8 / secs / 1e9;
  report.add("gbit_s", total, "Gbit/s");
  report.add("gbit_s_per_flow", r.flow_bytes.empty() ? 0.0 : total / static_cast<double>(r.flow_bytes.size()), "Gbit/s");
  if (!r.flow_bytes.empty()) {
    auto [lo, hi] = std::minmax_element(r.flow_bytes.begin(), r.flow_bytes.end());
    report.add("gbit_s_flow_min", static_cast<double>(*lo) * 8 / secs / 1e9, "Gbit/s");
    report.add("gbit_s_flow_max", static_cast<double>(*hi) * 8 / secs / 1e9, "Gbit/s");
  }
  report.add_int("errors", r.errors);
  return report;
}

RrResult run_rr(const RrOptions& options) {
  if (options.size == 0 || options.size > 65536) throw std::invalid_argument("rr: --size must be 1..65536");
  const auto hp = target_of(options);
  const tcp::endpoint endpoint(hp.address, hp.port);
  const auto start = Clock::now();
  const auto until = start + to_duration(options.duration_s);
  auto workers = run_workers(options.threads, until, [&](Worker& w, unsigned index) {
    const unsigned flows = flows_on(index, options.flows, std::max(1u, options.threads));
    for (unsigned f = 0; f < flows; ++f) {
      w.tcp_sockets.push_back(std::make_shared<tcp::socket>(w.context));
      w.spawn(rr_flow(w, f, endpoint, std::max<std::size_t>(1, options.size)));
    }
  });
  RrResult result;
  result.seconds = std::min(seconds_between(start, Clock::now()), options.duration_s);
  for (auto& w : workers) {
    result.transactions += w->count_a;
    result.errors += w->errors;
    result.latency_ns.merge(w->latency);
  }
  return result;
}

Report to_report(const RrOptions& o, const RrResult& r) {
  Report report;
  add_common(report, "rr", o);
  report.add_int("size", o.size, "B");
  report.add("seconds", r.seconds, "s");
  report.add_int("transactions", r.transactions);
  report.add("rate", r.seconds > 0 ? static_cast<double>(r.transactions) / r.seconds : 0.0, "/s");
  report.add_latency("", r.latency_ns);
  report.add_int("errors", r.errors);
  return report;
}

CpsResult run_cps(const CpsOptions& options) {
  if (options.size == 0 || options.size > 65535) throw std::invalid_argument("cps: --size must be 1..65535");
  const auto hp = target_of(options);
  const tcp::endpoint endpoint(hp.address, hp.port);
  const auto start = Clock::now();
  const auto until = start + to_duration(options.duration_s);
  // A connection in progress at the deadline may finish within a grace period; then it is cut.
  auto workers = run_workers(options.threads, until + std::chrono::seconds(2), [&](Worker& w, unsigned index) {
    const unsigned slots = flows_on(index, options.flows, std::max(1u, options.threads));
    w.tcp_sockets.resize(slots);
    for (unsigned f = 0; f < slots; ++f) w.spawn(cps_slot(w, f, endpoint, std::max<std::size_t>(1, options.size), until));
  });
  CpsResult result;
  result.seconds = std::max(seconds_between(start, Clock::now()), 1e-9);
  for (auto& w : workers) {
    result.connections += w->count_a;
    result.errors += w->errors;
    result.latency_ns.merge(w->latency);
  }
  return result;
}

Report to_report(const CpsOptions& o, const CpsResult& r) {
  Report report;
  add_common(report, "cps", o);
  report.add_int("size", o.size, "B");
  report.add("seconds", r.seconds, "s");
  report.add_int("connections", r.connections);
  report.add("rate", static_cast<double>(r.connections) / r.seconds, "conn/s");
  report.add_latency("", r.latency_ns);
  report.add_int("errors", r.errors);
  return report;
}

UdpResult run_udp(const UdpOptions& options) {
  if (options.window == 0 && options.rate <= 0) throw std::invalid_argument("udp: --window 0 needs a --rate");
  if (options.size < sizeof(DatagramHeader)) throw std::invalid_argument("udp: --size must be at least 16 bytes");
  const auto hp = target_of(options);
  const udp::endpoint endpoint(hp.address, hp.port);
  const auto start = Clock::now();
  const auto until = start + to_duration(options.duration_s);
  const auto hard = until + to_duration(options.drain_s) + std::chrono::seconds(1);
  auto workers = run_workers(options.threads, hard, [&](Worker& w, unsigned index) {
    const unsigned flows = flows_on(index, options.flows, std::max(1u, options.threads));
    for (unsigned f = 0; f < flows; ++f) {
      w.udp_sockets.push_back(std::make_shared<udp::socket>(w.context));
      w.spawn(udp_flow(w, f, endpoint, options, start, until));
    }
  });
  UdpResult result;
  result.seconds = options.duration_s;
  for (auto& w : workers) {
    result.sent += w->count_a;
    result.received += w->count_b;
    result.reordered += w->count_c;
    result.errors += w->errors;
    result.latency_ns.merge(w->latency);
  }
  return result;
}

Report to_report(const UdpOptions& o, const UdpResult& r) {
  Report report;
  add_common(report, "udp", o);
  report.add_int("size", o.size, "B");
  report.add_int("window", o.window);
  report.add("target_rate", o.rate, "dgram/s per flow");
  report.add("seconds", r.seconds, "s");
  report.add_int("sent", r.sent);
  report.add_int("received", r.received);
  report.add("rate", static_cast<double>(r.received) / r.seconds, "dgram/s");
  report.add("mbit_s", static_cast<double>(r.received) * static_cast<double>(o.size) * 8 / r.seconds / 1e6, "Mbit/s");
  const std::uint64_t lost = r.sent > r.received ? r.sent - r.received : 0;
  report.add_int("lost", lost);
  report.add("loss_pct", r.sent ? 100.0 * static_cast<double>(lost) / static_cast<double>(r.sent) : 0.0, "%");
  report.add_int("reordered", r.reordered);
  report.add_latency("", r.latency_ns);
  report.add_int("errors", r.errors);
  return report;
}

HoldResult run_hold(const HoldOptions& options) {
  const auto hp = target_of(options);
  const tcp::endpoint endpoint(hp.address, hp.port);
  HoldResult result;
  result.memory_before = process_memory(options.pid, options.tree);
  const auto start = Clock::now();
  const auto until = start + to_duration(options.duration_s);
  // The workers must outlive the measurement: their sockets are the held flows.
  std::vector<std::size_t> next(std::max(1u, options.threads), 0);
  Workers workers = run_workers(options.threads, until, [&](Worker& w, unsigned index) {
    const unsigned flows = flows_on(index, options.flows, std::max(1u, options.threads));
    w.tcp_sockets.resize(flows);
    const unsigned parallel = std::clamp(options.parallel, 1u, std::max(1u, flows));
    for (unsigned i = 0; i < parallel && flows > 0; ++i) w.spawn(hold_opener(w, endpoint, next[index], flows));
  });
  result.open_seconds = seconds_between(start, Clock::now());
  for (auto& w : workers) {
    result.opened += w->count_a;
    result.failed += w->tcp_sockets.size() - std::min<std::size_t>(w->tcp_sockets.size(), w->count_a);
  }
  result.memory_after = process_memory(options.pid, options.tree);
  if (options.hold_s > 0) std::this_thread::sleep_for(to_duration(options.hold_s));
  for (auto& w : workers) w->stop();
  return result;
}

Report to_report(const HoldOptions& o, const HoldResult& r) {
  Report report;
  add_common(report, "hold", o);
  report.add_int("pid", static_cast<std::uint64_t>(std::max(0, o.pid)));
  report.add("memory", std::string(o.pid <= 0 ? "none" : o.tree ? "pss of process tree" : "rss"));
  report.add_int("opened", r.opened);
  report.add_int("failed", r.failed);
  report.add("open_seconds", r.open_seconds, "s");
  if (r.memory_before >= 0 && r.memory_after >= 0) {
    report.add("memory_before_kib", static_cast<double>(r.memory_before) / 1024, "KiB");
    report.add("memory_after_kib", static_cast<double>(r.memory_after) / 1024, "KiB");
    const double per_flow = r.opened ? static_cast<double>(r.memory_after - r.memory_before) / static_cast<double>(r.opened) : 0.0;
    report.add("bytes_per_flow", per_flow, "B");
    report.add("kib_per_flow", per_flow / 1024, "KiB");
  }
  return report;
}

} // namespace flowrelay::bench
