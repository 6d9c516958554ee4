#!/usr/bin/python3
"""Scrapes http://ADDR/metrics and parses it with the Prometheus client's own parser (Debian's
python3-prometheus-client): prints {"name{label=value,...}": value} as JSON, or exits 1 with the
parser's complaint. A test judges the daemon's metrics the way Prometheus reads them."""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=5) as r:
    if r.headers.get_content_type() != "text/plain":
        sys.exit(f"content type {r.headers.get('Content-Type')}")
    text = r.read().decode()
out = {}
try:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
except Exception as e:  # the parser's ValueError names the line
    sys.exit(f"unparsable exposition: {e}")
print(json.dumps(out))
