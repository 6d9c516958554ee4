#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <variant>
#include <vector>

namespace flowrelay::bench {

class Histogram;

/// What one run measured, as ordered (key, value, unit) fields. Printed as an aligned table for
/// people, or as one flat JSON object on one line for scripts (`jq .p50_us`). Keys carry their
/// unit (`gbit_s`, `p99_us`) so the JSON needs no schema.
class Report {
public:
  using Value = std::variant<std::int64_t, double, std::string>;
  struct Field {
    std::string key;
    Value value;
    std::string unit; // for the human table only
  };

  void add(std::string key, Value value, std::string unit = {});
  void add_int(std::string key, std::uint64_t value, std::string unit = {});
  /// p50/p90/p99/p99.9/max/mean of a histogram of nanoseconds, as microseconds under `prefix`.
  void add_latency(const std::string& prefix, const Histogram& ns);

  const std::vector<Field>& fields() const { return fields_; }
  const Field* find(const std::string& key) const;
  double number(const std::string& key) const; // 0 when missing or not a number

  void print_table(std::ostream& out) const;
  void print_json(std::ostream& out) const;

private:
  std::vector<Field> fields_;
};

} // namespace flowrelay::bench
