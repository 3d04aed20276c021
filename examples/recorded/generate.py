#!/usr/bin/env python3
"""Writes the recorded example stream for examples/slaflow.toml (service "webshop").

Synthetic, made to show a breach: six hours of Datadog APM traces (two requests a minute,
checkout slow during the outage) on 2026-03-10 from 08:00 UTC, and an Alertmanager
"Site down" alert firing 10:00-11:10 UTC, a 70-minute outage over the 1-hour limit.
Run from this folder: python3 generate.py
"""
import json

START_NS = 1773129600 * 10**9  # 2026-03-10T08:00:00Z
MIN = 60 * 10**9

traces = []
for m in range(6 * 60):
    t = START_NS + m * MIN
    down = 120 <= m < 190
    traces.append([
        {"trace_id": 2 * m + 1, "span_id": 1, "parent_id": 0, "service": "webshop", "name": "http.request",
         "resource": "GET /products", "start": t, "duration": 180_000_000 + (m % 7) * 10_000_000,
         "error": 1 if down else 0, "meta": {"http.status_code": "503" if down else "200"}},
    ])
    traces.append([
        {"trace_id": 2 * m + 2, "span_id": 1, "parent_id": 0, "service": "webshop", "name": "http.request",
         "resource": "POST /checkout", "start": t + 30 * 10**9,
         "duration": (6_500_000_000 if down else 900_000_000 + (m % 5) * 100_000_000),
         "error": 1 if down else 0, "meta": {"http.status_code": "503" if down else "200"}},
    ])
with open("webshop-apm.json", "w") as f:
    json.dump(traces, f, separators=(",", ":"))


def webhook(status, ends_at):
    return {
        "version": "4", "status": status, "receiver": "slaflow",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "Site down", "service": "webshop", "severity": "critical",
                       "instance": "shop-web-1:443"},
            "annotations": {"summary": "webshop does not answer"},
            "startsAt": "2026-03-10T10:00:00Z", "endsAt": ends_at,
            "generatorURL": "", "fingerprint": "5e7ed0a1b2c3d4e5",
        }],
        "groupLabels": {"alertname": "Site down"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093", "groupKey": "{}:{alertname=\"Site down\"}",
    }


with open("site-down-firing.json", "w") as f:
    json.dump(webhook("firing", "0001-01-01T00:00:00Z"), f, indent=1)
with open("site-down-resolved.json", "w") as f:
    json.dump(webhook("resolved", "2026-03-10T11:10:00Z"), f, indent=1)
