"""Write ``k6_output.json.gz``: a k6 run's ``--out json`` file as k6 writes it.

Format from k6's documentation and its ``output/json`` package: one object per line; a
``Metric`` line ({name, type, contains, thresholds, submetrics}) the first time a metric is
seen, then ``Point`` lines {time (RFC 3339, nanoseconds, local offset), value (ms for time
metrics), tags}. Each HTTP request emits http_reqs, http_req_duration, its phases and
http_req_failed with the same tags (name defaults to the URL; expected_response; status 0 and
an ``error`` tag when there was no response); each iteration emits data_sent, data_received,
iteration_duration, iterations; vus and vus_max are sampled every second with no tags.

Also ``k6_summary.json``: the same run's end-of-test summary as ``--summary-export`` writes it
(``metrics``: trends with avg, min, med, max, p(90), p(95) -- k6 interpolates linearly between
the sorted values --, counters with count and rate, rates with passes, fails and value), with
``root_group``, ``options`` and ``state``.

Run ``python tests/integration/load/make_k6_output.py`` to write them again (deterministic).
"""

from __future__ import annotations

import gzip
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).with_name("k6_output.json.gz")
SUMMARY = Path(__file__).with_name("k6_summary.json")
START = datetime(2026, 11, 30, 10, 0, 0, tzinfo=timezone(timedelta(hours=1)))
HOST = "http://127.0.0.1:8000"
METRICS = {  # name -> (type, contains)
    "vus": ("gauge", "default"), "vus_max": ("gauge", "default"),
    "http_reqs": ("counter", "default"), "http_req_duration": ("trend", "time"),
    "http_req_blocked": ("trend", "time"), "http_req_connecting": ("trend", "time"),
    "http_req_tls_handshaking": ("trend", "time"), "http_req_sending": ("trend", "time"),
    "http_req_waiting": ("trend", "time"), "http_req_receiving": ("trend", "time"),
    "http_req_failed": ("rate", "default"), "checks": ("rate", "default"),
    "data_sent": ("counter", "data"), "data_received": ("counter", "data"),
    "iteration_duration": ("trend", "time"), "iterations": ("counter", "default"),
}
THRESHOLDS = {"http_req_duration": ["p(95)<500"], "http_req_failed": ["rate<0.01"]}


def stamp(t: datetime, nanos: int) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond:06d}{nanos:03d}" + "+01:00"


def write(requests: int = 1500, seed: int = 7) -> None:
    rng = random.Random(seed)
    seen: set[str] = set()
    lines: list[str] = []

    def emit(metric: str, t: datetime, value: float, tags: dict | None) -> None:
        if metric not in seen:
            seen.add(metric)
            kind, contains = METRICS[metric]
            lines.append(json.dumps({"type": "Metric", "data": {
                "name": metric, "type": kind, "contains": contains,
                "thresholds": THRESHOLDS.get(metric, []), "submetrics": None},
                "metric": metric}, separators=(",", ":")))
        lines.append(json.dumps({"type": "Point", "data": {
            "time": stamp(t, rng.randrange(1000)), "value": value, "tags": tags},
            "metric": metric}, separators=(",", ":")))

    durations: list[float] = []
    failures = 0
    t = START
    next_vus = START
    for _ in range(requests):
        if t >= next_vus:
            emit("vus", t, 10, None)
            emit("vus_max", t, 10, None)
            next_vus += timedelta(seconds=1)
        call = "predict" if rng.random() < 2 / 3 else "embed"
        url = f"{HOST}/call/{call}"
        named = call == "embed"  # the script names embed's calls; predict's keep the URL
        roll = rng.random()
        if roll < 0.004:
            status, error = "0", "dial tcp 127.0.0.1:8000: i/o timeout"
            ms = 60000.0
        else:
            status, error = ("500", None) if roll < 0.02 else ("200", None)
            base = 40.0 if call == "predict" else 12.0
            ms = round(base * math.exp(rng.gauss(0, 0.45)) + (rng.random() < 0.02) * 300, 6)
        failed = status != "200"
        tags = {"expected_response": "false" if failed else "true", "group": "",
                "method": "POST" if call == "predict" else "GET",
                "name": "embed" if named else url, "proto": "HTTP/1.1",
                "scenario": "default", "status": status, "url": url}
        if error:
            tags.update(error=error, error_code="1211")
        done = t + timedelta(milliseconds=ms)
        durations.append(ms)
        failures += failed
        emit("http_reqs", done, 1, tags)
        emit("http_req_duration", done, ms, tags)
        for phase, share in (("blocked", 0.01), ("connecting", 0.0), ("tls_handshaking", 0.0),
                             ("sending", 0.005), ("waiting", 0.97), ("receiving", 0.025)):
            emit(f"http_req_{phase}", done, round(ms * share, 6), tags)
        emit("http_req_failed", done, int(failed), tags)
        it_tags = {"group": "", "scenario": "default"}
        emit("checks", done, int(not failed), {**it_tags, "check": "status is 200"})
        emit("data_sent", done, 112, it_tags)
        emit("data_received", done, 0 if status == "0" else 240, it_tags)
        emit("iteration_duration", done, round(ms + 0.5, 6), it_tags)
        emit("iterations", done, 1, it_tags)
        t = done + timedelta(milliseconds=rng.expovariate(1 / 150.0))
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode())
    seconds = (t - START).total_seconds()
    SUMMARY.write_text(json.dumps({
        "root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e",
                       "groups": {}, "checks": {"status is 200": {
                           "name": "status is 200", "path": "::status is 200",
                           "id": "a0e1c2bd1d5c6b86a2c3a1e4c3c7d0f1",
                           "passes": requests - failures, "fails": failures}}},
        "options": {"summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)"],
                    "summaryTimeUnit": "", "noColor": False},
        "state": {"isStdOutTTY": False, "isStdErrTTY": False,
                  "testRunDurationMs": round(seconds * 1000, 6)},
        "metrics": {
            "http_req_duration": {**trend(durations), "thresholds": {"p(95)<500": False}},
            "http_reqs": {"count": requests, "rate": requests / seconds},
            "http_req_failed": {"passes": failures, "fails": requests - failures,
                                "value": failures / requests,
                                "thresholds": {"rate<0.01": True}},
            "iterations": {"count": requests, "rate": requests / seconds},
            "vus": {"value": 10, "min": 10, "max": 10},
        }}, indent=4) + "\n")


def trend(values: list[float]) -> dict[str, float]:
    """A trend's summary stats as k6 computes them."""
    v = sorted(values)

    def pct(p: float) -> float:
        i = p * (len(v) - 1)
        lo = math.floor(i)
        return v[lo] if lo + 1 >= len(v) else v[lo] + (i - lo) * (v[lo + 1] - v[lo])

    return {"avg": sum(v) / len(v), "min": v[0], "med": pct(0.5), "max": v[-1],
            "p(90)": pct(0.9), "p(95)": pct(0.95)}


if __name__ == "__main__":
    write()
    print(f"wrote {OUT} and {SUMMARY}")
