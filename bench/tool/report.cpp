#include "report.hpp"

#include "histogram.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>

namespace flowrelay::bench {
namespace {

std::string format_number(double v) {
  char buf[64];
  if (!std::isfinite(v)) return "null";
  const double a = std::fabs(v);
  if (a != 0 && (a < 0.001 || a >= 1e15)) std::snprintf(buf, sizeof buf, "%.6g", v);
  else if (a >= 1000) std::snprintf(buf, sizeof buf, "%.1f", v);
  else std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    default:
      if (static_cast<unsigned char>(c) < 0x20) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04x", c);
        out += buf;
      } else {
        out += c;
      }
    }
  }
  return out;
}

std::string to_text(const Report::Value& v, bool json) {
  if (auto i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (auto d = std::get_if<double>(&v)) return format_number(*d);
  const auto& s = std::get<std::string>(v);
  if (!json) return s;
  std::string quoted(1, '"');
  quoted.append(json_escape(s)).push_back('"');
  return quoted;
}

} // namespace

void Report::add(std::string key, Value value, std::string unit) {
  fields_.push_back({std::move(key), std::move(value), std::move(unit)});
}

void Report::add_int(std::string key, std::uint64_t value, std::string unit) {
  add(std::move(key), static_cast<std::int64_t>(value), std::move(unit));
}

void Report::add_latency(const std::string& prefix, const Histogram& ns) {
  auto us = [](std::uint64_t v) { return static_cast<double>(v) / 1000.0; };
  add(prefix + "p50_us", us(ns.percentile(0.50)), "us");
  add(prefix + "p90_us", us(ns.percentile(0.90)), "us");
  add(prefix + "p99_us", us(ns.percentile(0.99)), "us");
  add(prefix + "p999_us", us(ns.percentile(0.999)), "us");
  add(prefix + "max_us", us(ns.max()), "us");
  add(prefix + "mean_us", ns.mean() / 1000.0, "us");
}

const Report::Field* Report::find(const std::string& key) const {
  auto it = std::find_if(fields_.begin(), fields_.end(), [&](const Field& f) { return f.key == key; });
  return it == fields_.end() ? nullptr : &*it;
}

double Report::number(const std::string& key) const {
  const Field* f = find(key);
  if (!f) return 0;
  if (auto i = std::get_if<std::int64_t>(&f->value)) return static_cast<double>(*i);
  if (auto d = std::get_if<double>(&f->value)) return *d;
  return 0;
}

void Report::print_table(std::ostream& out) const {
  std::size_t width = 0;
  for (const auto& f : fields_) width = std::max(width, f.key.size());
  for (const auto& f : fields_) {
    out << f.key << std::string(width - f.key.size() + 2, ' ') << to_text(f.value, false);
    if (!f.unit.empty()) out << ' ' << f.unit;
    out << '\n';
  }
}

void Report::print_json(std::ostream& out) const {
  out << '{';
  bool first = true;
  for (const auto& f : fields_) {
    if (!first) out << ',';
    first = false;
    out << '"' << json_escape(f.key) << "\":" << to_text(f.value, true);
  }
  out << "}\n";
}

} // namespace flowrelay::bench
