#!/usr/bin/env bash
# The macOS adapter's layering, from the source (DESIGN.md "Layers"; issue "macOS: the
# NETransparentProxyProvider adapter"):
#  - extension/control imports nothing from extension/apple (nor extension/linux);
#  - the NE bridge (ne_*, reactor_port) imports relay/ and buffers/ only, besides its own files;
#  - no code outside the .mm (and its header and the declared SDK surface) names an NE or Network
#    framework type: comments may mention them, code may not.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail=0

bad=$(grep -HnE '#include "extension/(apple|linux)/' extension/control/* || true)
if [[ -n "$bad" ]]; then echo "extension/control imports a platform layer:"; echo "$bad"; fail=1; fi

for f in extension/apple/ne_*.hpp extension/apple/ne_*.cpp extension/apple/reactor_port.hpp; do
  bad=$(grep -HnE '#include "' "$f" | grep -vE '#include "(relay|buffers)/|#include "extension/apple/(ne_|reactor_port)' || true)
  if [[ -n "$bad" ]]; then echo "the NE bridge imports more than relay and buffers:"; echo "$bad"; fail=1; fi
done

ne_types='\b(NE[A-Z][A-Za-z]+|NW[A-Z][A-Za-z]*Endpoint|nw_endpoint_t|NSData|NSError|NSArray|audit_token_t)\b'
while IFS= read -r f; do
  case "$f" in
    extension/apple/*.mm | extension/apple/flow_relay_provider.h | extension/apple/sdk-surface/*) continue ;;
  esac
  # Code only: drop // comments and the text of string literals first.
  bad=$(sed -E 's://.*$::; s/"([^"\\]|\\.)*"/""/g' "$f" | grep -nE "$ne_types" || true)
  if [[ -n "$bad" ]]; then echo "$f names an NE type outside the .mm:"; echo "$bad"; fail=1; fi
done < <(find buffers relay extension tests -name '*.hpp' -o -name '*.cpp' -o -name '*.h' | sort)

if ((fail == 0)); then
  echo "layering holds: control imports no platform, the NE bridge imports relay and buffers only, NE types live in the .mm"
fi
exit $fail
