// Control-plane micro-benchmarks: verdict latency (handleNewFlow is serial on macOS, so a slow
// verdict stalls every new flow) and reclaim planning over many live flows.
//
//   flowrelay-micro --benchmark_filter='Control' --benchmark_repetitions=5 --benchmark_report_aggregates_only
//
// The per-iteration time of BM_ControlVerdict is the mean verdict latency; BM_ControlVerdictP50
// times single verdicts and reports the median and p99 as counters (in ns).

#include "extension/control/epoch_manager.hpp"
#include "extension/control/reclaim_planner.hpp"
#include "extension/control/rule_set.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>

namespace {

using namespace flowrelay;
using control::Cidr;
using control::Config;
using control::PortRange;
using control::Rule;
using control::Verdict;

// Realistic-looking rules: mostly destination prefixes (/16../32, a quarter IPv6) with optional
// port sets and protocol, some port-only rules, a few uid rules; none matches everything, so a
// lookup's answer may sit anywhere in the list. First match wins.
Config make_config(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t k) { return std::uniform_int_distribution<std::uint64_t>(0, k - 1)(rng); };
  Config c;
  c.default_verdict = Verdict::bypass;
  for (std::size_t i = 0; i < n; ++i) {
    Rule r;
    r.name = std::to_string(i);
    r.name.insert(0, 1, 'r');
    r.verdict = pick(2) ? Verdict::claim : Verdict::bypass;
    r.proto = static_cast<control::ProtoMatch>(pick(3));
    const bool has_dst = pick(10) < 9;
    if (has_dst) {
      if (pick(4) == 0) {
        boost::asio::ip::address_v6::bytes_type b{};
        b[0] = 0x20; b[1] = 0x01; b[2] = 0x0d; b[3] = 0xb8;
        for (int k = 4; k < 8; ++k) b[k] = static_cast<unsigned char>(pick(256));
        r.dst.push_back({boost::asio::ip::address_v6(b), 64});
      } else {
        static const int lens[] = {16, 20, 24, 24, 28, 32};
        int len = lens[pick(6)];
        std::uint32_t a = static_cast<std::uint32_t>(pick(1ULL << 32)) & (~0u << (32 - len));
        r.dst.push_back({boost::asio::ip::address_v4(a), static_cast<std::uint8_t>(len)});
      }
    }
    if (!has_dst || pick(2)) {  // no catch-all rules: each rule narrows by prefix or port
      auto p = static_cast<std::uint16_t>(1 + pick(65000));
      r.ports.push_back(pick(3) ? PortRange{p, p} : PortRange{p, static_cast<std::uint16_t>(p + pick(500))});
    }
    if (pick(20) == 0) r.uids.push_back(static_cast<std::uint32_t>(1000 + pick(50)));
    c.rules.push_back(std::move(r));
  }
  return c;
}

std::vector<relay::FlowMeta> make_flows(const Config& c, std::size_t n, std::uint64_t seed) {
  // Half the flows aim into some rule's prefix (so lookups walk populated trees), half anywhere.
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t k) { return std::uniform_int_distribution<std::uint64_t>(0, k - 1)(rng); };
  std::vector<relay::FlowMeta> flows(n);
  for (std::size_t i = 0; i < n; ++i) {
    auto& f = flows[i];
    f.id = i + 1;
    f.proto = pick(2) ? relay::Proto::tcp : relay::Proto::udp;
    const Rule& r = c.rules[pick(c.rules.size())];
    if (pick(2) && !r.dst.empty() && r.dst[0].network.is_v4()) {
      std::uint32_t host = static_cast<std::uint32_t>(pick(1ULL << (32 - r.dst[0].prefix)));
      f.dst.address = boost::asio::ip::address_v4(r.dst[0].network.to_v4().to_uint() | host);
    } else if (pick(4) == 0) {
      f.dst.address = boost::asio::ip::make_address("2001:db8::1");
    } else {
      f.dst.address = boost::asio::ip::address_v4(static_cast<std::uint32_t>(pick(1ULL << 32)));
    }
    f.dst.port = !r.ports.empty() && pick(2) ? r.ports[0].lo : static_cast<std::uint16_t>(1 + pick(65535));
    f.app.address = boost::asio::ip::make_address("10.0.0.2");
    f.app.port = static_cast<std::uint16_t>(30000 + pick(30000));
    f.app_identity.uid = static_cast<std::uint32_t>(1000 + pick(60));
  }
  return flows;
}

void BM_ControlVerdict(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const Config c = make_config(n, 42);
  const control::RuleSet rules(c);
  const auto flows = make_flows(c, 4096, 7);
  std::size_t i = 0, claims = 0;
  for (auto _ : state) {
    claims += rules.verdict(flows[i++ & 4095]) == Verdict::claim;
  }
  benchmark::DoNotOptimize(claims);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_ControlVerdict)->Arg(10)->Arg(10000);

void BM_ControlVerdictP50(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  const Config c = make_config(n, 42);
  const control::RuleSet rules(c);
  const auto flows = make_flows(c, 4096, 7);
  std::vector<double> samples;
  samples.reserve(1 << 20);
  std::size_t i = 0;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    auto v = rules.verdict(flows[i++ & 4095]);
    auto t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(v);
    if (samples.size() < samples.capacity()) samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  if (!samples.empty()) {
    std::sort(samples.begin(), samples.end());
    state.counters["p50_ns"] = samples[samples.size() / 2];
    state.counters["p99_ns"] = samples[samples.size() * 99 / 100];
  }
}
BENCHMARK(BM_ControlVerdictP50)->Arg(10)->Arg(10000);

void BM_ControlCompile(benchmark::State& state) {
  const Config c = make_config(static_cast<std::size_t>(state.range(0)), 42);
  for (auto _ : state) {
    control::RuleSet rules(c);
    benchmark::DoNotOptimize(rules.size());
  }
}
BENCHMARK(BM_ControlCompile)->Arg(10000)->Unit(benchmark::kMillisecond);

// Planning a change over 100,000 live flows (half claimed, half bypassed): two epochs of
// `rules` rules each, the second with a tenth of its verdicts flipped.
void BM_ControlPlan(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  auto make_epoch = [](Config c, relay::EpochId id) {
    auto e = std::make_shared<control::Epoch>();
    e->id = id;
    e->rules = std::make_shared<const control::RuleSet>(c);
    e->config = std::make_shared<const Config>(std::move(c));
    return e;
  };
  Config a = make_config(n, 42);
  Config b = a;
  // Flip a tenth of the rules, and at least one that some flow actually hits.
  auto flows = make_flows(a, 100000, 9);
  const control::RuleSet probe(a);
  std::size_t hit = 0;
  for (auto& f : flows)
    if (auto m = probe.first_match(f)) { hit = *m; break; }
  for (std::size_t i = 0; i < b.rules.size(); ++i)
    if (i % 10 == hit % 10)
      b.rules[i].verdict = b.rules[i].verdict == Verdict::claim ? Verdict::bypass : Verdict::claim;
  auto ea = make_epoch(a, 1), eb = make_epoch(b, 2);
  std::vector<relay::FlowMeta> claimed, bypassed;
  for (auto& f : flows) (ea->rules->verdict(f) == Verdict::claim ? claimed : bypassed).push_back(f);
  std::size_t moved = 0;
  for (auto _ : state) {
    auto p = control::plan(ea.get(), *eb, claimed, bypassed, {true, true, false});
    moved = p.release.size() + p.reclaim.size();
    benchmark::DoNotOptimize(p);
  }
  state.counters["flows"] = static_cast<double>(flows.size());
  state.counters["moved"] = static_cast<double>(moved);
  state.counters["claimed"] = static_cast<double>(claimed.size());
  std::size_t matched = 0;
  for (auto& f : flows) matched += eb->rules->first_match(f).has_value();
  state.counters["matched"] = static_cast<double>(matched);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * flows.size()));
}
BENCHMARK(BM_ControlPlan)->Arg(10)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
