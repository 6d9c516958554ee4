#!/usr/bin/env bash
# `cpack -G DEB` in the build folder makes the package README.md describes: the binary, a default
# config that check-config accepts and that claims nothing, and the systemd unit with the settings
# the daemon is written for. Judged from the .deb itself (dpkg-deb), not from the build folder.
# usage: package_test.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || fail "dpkg-deb missing (scripts/install-deps installs dpkg-dev)"

(cd "$build" && cpack -G DEB -B "$tmp/out" >"$tmp/cpack.log" 2>&1) || { cat "$tmp/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(ls "$tmp"/out/*.deb 2>/dev/null | head -1)
[[ -n "$deb" ]] || fail "no .deb in $tmp/out: $(cat "$tmp/cpack.log")"
echo "package: $(basename "$deb")"

contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/flowrelay ./etc/flowrelay/flowrelay.json ./lib/systemd/system/flowrelay.service; do
  grep -q " $f\$" <<<"$contents" || fail "$f is not in the package:
$contents"
done
grep -q '/etc/flowrelay/flowrelay.json' <(dpkg-deb -I "$deb" conffiles) || fail "the config is not a conffile (an upgrade would overwrite an edited one)"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libnftables libmnl libsystemd; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done

dpkg-deb -x "$deb" "$tmp/root"
"$tmp/root/usr/bin/flowrelay" check-config "$tmp/root/etc/flowrelay/flowrelay.json" >"$tmp/check.out" 2>&1 ||
  fail "check-config rejects the packaged config: $(cat "$tmp/check.out")"
grep -qi 'rules: 0\|0 rules' "$tmp/check.out" || fail "the packaged config should have no rules: $(cat "$tmp/check.out")"
grep -qi 'default: bypass\|default bypass' "$tmp/check.out" || fail "the packaged config should bypass by default: $(cat "$tmp/check.out")"

unit="$tmp/root/lib/systemd/system/flowrelay.service"
for line in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' \
  'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE' 'NoNewPrivileges=yes' \
  'ProtectSystem=strict' 'RuntimeDirectory=flowrelay' \
  'ExecStart=/usr/bin/flowrelay run --config /etc/flowrelay/flowrelay.json --replace'; do
  grep -qxF "$line" "$unit" || fail "the unit lacks: $line"
done
# The control socket must be where the unit lets the daemon write (ProtectSystem=strict).
grep -q '"/run/flowrelay/' "$tmp/root/etc/flowrelay/flowrelay.json" || fail "control.socket is outside RuntimeDirectory"
# systemd's own parser: an unknown key or a bad value in the unit fails here (the binary is not
# installed on this machine, so "not executable" is expected and ignored).
if command -v systemd-analyze >/dev/null; then
  verify=$(systemd-analyze verify "$unit" 2>&1 || true)
  if grep -E 'Unknown (key|section)|Failed to parse|Invalid|bad-setting' <<<"$verify"; then fail "systemd rejects the unit"; fi
fi
echo "package_test: ok"
