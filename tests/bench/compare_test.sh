#!/usr/bin/env bash
# bench/compare as a newcomer meets it: a run that cannot measure flowrelay fails instead of
# reporting a table without it, and the report has both tables (one worker each, each relay's
# default) with ratios to the flowrelay column of the same table.
# usage: compare_test.sh BENCH_BINARY
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. No flowrelay binary: exit non-zero and say which binary is missing.
if "$repo/bench/compare" --no-install --bench "$bench" --flowrelay "$tmp/no-such-flowrelay" \
  --peers direct,flowrelay --repeat 1 --duration 1 --out "$tmp/missing" >"$tmp/out" 2>&1; then
  fail "compare exited 0 without a flowrelay binary"
fi
grep -q "no binary at $tmp/no-such-flowrelay" "$tmp/out" || fail "no reason given: $(cat "$tmp/out")"

# 2. The report from recorded figures: both tables, ratios against their own flowrelay column.
mkdir -p "$tmp/rep"
printf 'repeat=1\nduration=1\nrelay_threads=1\npeers_wanted=direct,flowrelay,nginx,flowrelay-auto,nginx-auto\nhold_flows=10\nsocat_hold_flows=10\n' >"$tmp/rep/settings.sh"
printf 'date: 2026-12-02 00:00 UTC\ncpu: test, 2 cores\nmemory: 1 GiB\n' >"$tmp/rep/machine.txt"
{
  printf 'direct\trr_p50\t1\t10\n'
  printf 'flowrelay\trr_p50\t1\t30\nnginx\trr_p50\t1\t40\n'
  printf 'flowrelay-auto\trr_p50\t1\t20\nnginx-auto\trr_p50\t1\t50\n'
  printf 'flowrelay\tcps_rate\t1\t1000\nnginx\tcps_rate\t1\t500\n'
  printf 'flowrelay-auto\tcps_rate\t1\t900\nnginx-auto\tcps_rate\t1\t1000\n'
} >"$tmp/rep/results.tsv"
"$repo/bench/compare" --out "$tmp/rep" --report-only >"$tmp/report" 2>&1 || fail "report-only failed: $(cat "$tmp/report")"
md="$tmp/rep/results.md"
grep -q '^### One worker each' "$md" || fail "no one-worker table"
grep -q '^### Each relay.s default worker setting' "$md" || fail "no defaults table"
# Added p50: flowrelay 20 us, nginx 30 us (1.50x); defaults: flowrelay 10, nginx 40 (4.00x).
grep -q 'added p50 over direct.*| 20.0 | 30.0 (1.50x) |' "$md" || fail "one-worker rr ratio wrong: $(grep 'added p50 over' "$md")"
grep -q 'added p50 over direct.*| 10.0 | 40.0 (4.00x) |' "$md" || fail "defaults rr ratio wrong: $(grep 'added p50 over' "$md")"
grep -q '| connections/s, sequential | 1000 | 500 | 2.00 | >= 1.2x nginx | \*\*met\*\* |' "$md" || fail "cps target (one worker) wrong"
grep -q '| connections/s, sequential | 900 | 1000 | 0.90 | >= 1.2x nginx | \*\*missed\*\* |' "$md" || fail "cps target (defaults) wrong"
echo "compare_test: ok"
