"""``snakepit-perf import k6 FILE [--run ID]``: k6's JSON output as client-side request events.

k6 (``k6 run --out json=FILE``, optionally ``.gz``) writes one JSON object per line: ``Metric``
lines declare a metric, ``Point`` lines are samples ``{"time", "value", "tags"}`` with times
in RFC 3339 at nanosecond precision and durations in milliseconds. Each ``http_req_duration``
point is one HTTP request; it becomes one ``client`` event (tool ``k6``) named by its ``name``
tag (k6 sets it to the URL unless the script names it), failed as k6's ``http_req_failed``
decides: the ``expected_response`` tag, else a status of 400 or more (or 0: no response).
Every other metric is counted and skipped, and lines that are not k6's are reported, not
guessed at.

k6's end-of-test summary (``--summary-export FILE``, or ``handleSummary``'s ``data`` as JSON:
one object with ``metrics``) has no times; it is attached to the run given with ``--run`` as
k6 computed it (its own percentiles, threshold results), to sit beside what snakepit-perf
measured.
"""

from __future__ import annotations

import gzip
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from snakepit_perf.event_import import ImportFailed, post_events

BATCH = 2000  # events per POST, well under the ingest body limit
_FRACTION = re.compile(r"(\.\d{6})\d+")  # k6 writes nanoseconds; datetime takes microseconds


@dataclass
class Imported:
    requests: int = 0
    errors: int = 0
    skipped: Counter = field(default_factory=Counter)  # metric name -> points not imported
    bad_lines: list[str] = field(default_factory=list)  # "line N: reason"
    rejected: list[dict] = field(default_factory=list)  # what the server refused, with reasons


def parse_time(text: str) -> float:
    """k6's RFC 3339 time (nanoseconds, any offset, or ``Z``) as epoch seconds."""
    return datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00")).timestamp()


def _failed(tags: dict[str, str]) -> bool:
    expected = tags.get("expected_response")
    if expected is not None:
        return expected != "true"
    status = tags.get("status", "")
    return not status.isdigit() or int(status) == 0 or int(status) >= 400


def to_event(point: dict[str, Any], scenario: str | None, run_id: str | None) -> dict[str, Any]:
    """One ``http_req_duration`` point as a ``client`` event."""
    tags = point.get("tags") or {}
    event: dict[str, Any] = {
        "type": "client", "tool": "k6", "time": parse_time(point["time"]),
        "name": str(tags.get("name") or tags.get("url") or "unnamed")[:128],
        "duration_us": max(0, round(float(point["value"]) * 1000)),
        "status": "error" if _failed(tags) else "ok",
    }
    if tags.get("method"):
        event["method"] = str(tags["method"])[:128]
    if scenario or tags.get("scenario"):
        event["scenario"] = str(scenario or tags["scenario"])[:128]
    if run_id:
        event["run_id"] = run_id
    if str(tags.get("status", "")).isdigit():
        event["status_code"] = int(tags["status"])
    if tags.get("error"):
        event["error"] = str(tags["error"])[:1000]
    return event


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        yield from f


def events(path: Path, scenario: str | None, run_id: str | None, report: Imported
           ) -> Iterator[dict[str, Any]]:
    """The file's requests as events, in file order; everything else tallied in ``report``."""
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
            if obj.get("type") == "Metric":
                continue
            if obj.get("type") != "Point" or not isinstance(obj.get("data"), dict):
                raise ValueError("not a k6 Metric or Point line")
            if obj.get("metric") != "http_req_duration":
                report.skipped[str(obj.get("metric"))] += 1
                continue
            yield to_event(obj["data"], scenario, run_id)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            report.bad_lines.append(f"line {n}: {exc}")


def summary(path: Path) -> dict[str, Any] | None:
    """The file as k6's end-of-test summary, or None if it is not one (a JSON output file)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(64 * 1024 * 1024)
    try:
        doc = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None  # NDJSON: many objects
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        return None
    metrics: dict[str, dict[str, float]] = {}
    thresholds: dict[str, dict[str, bool]] = {}
    for name, m in doc["metrics"].items():
        if not isinstance(m, dict):
            continue
        values = m.get("values", m)  # handleSummary nests them; --summary-export does not
        metrics[str(name)] = {str(k): float(v) for k, v in values.items()
                              if isinstance(v, int | float) and not isinstance(v, bool)}
        if isinstance(m.get("thresholds"), dict):
            thresholds[str(name)] = {str(k): (v.get("ok") if isinstance(v, dict) else v)
                                     for k, v in m["thresholds"].items()}
    return {"tool": "k6", "metrics": metrics, "thresholds": thresholds}


def attach(client: httpx.Client, path: Path, run_id: str | None, doc: dict[str, Any],
           out) -> int:
    if not run_id:
        print(f"snakepit-perf: import k6: {path} is an end-of-test summary (no times): give "
              f"--run ID to attach it to a run", file=sys.stderr)
        return 2
    r = client.post(f"/v1/benchmarks/{run_id}/client-summary", json=doc)
    if r.status_code != 200:
        print(f"snakepit-perf: import k6: attaching the summary answered {r.status_code}: "
              f"{r.text[:500]}", file=sys.stderr)
        return 2
    print(f"attached k6's summary ({len(doc['metrics'])} metrics) to run {run_id}", file=out)
    return 0


def run(url: str, path: Path, run_id: str | None, scenario: str | None, key: str | None,
        out=sys.stdout) -> int:
    """Import one file; 0 when every request was accepted, 1 when some were refused or some
    lines were not k6's, 2 when nothing could be imported."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    report = Imported()
    try:
        doc = summary(path)
    except OSError as exc:
        print(f"snakepit-perf: import k6: {path}: {exc}", file=sys.stderr)
        return 2
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        if doc is not None:
            return attach(client, path, run_id, doc, out)
        if run_id:
            r = client.get(f"/v1/benchmarks/{run_id}")
            if r.status_code != 200:
                print(f"snakepit-perf: import k6: no benchmark run {run_id!r} "
                      f"({r.status_code})", file=sys.stderr)
                return 2
            scenario = scenario or r.json()["scenario"]
        batch: list[dict[str, Any]] = []

        def send() -> None:
            r = post_events(client, orjson.dumps(batch), "application/json", str(path))
            if r.status_code not in (200, 202):
                raise SystemExit(f"snakepit-perf: import k6: POST /v1/events answered "
                                 f"{r.status_code}: {r.text[:500]}")
            body = r.json()
            report.rejected.extend(body.get("rejected", []))
            refused = {x.get("index") for x in body.get("rejected", [])}
            if -1 in refused:  # the whole body
                refused = set(range(len(batch)))
            for i, e in enumerate(batch):
                if i not in refused:
                    report.requests += 1
                    report.errors += e["status"] == "error"
            batch.clear()

        try:
            for event in events(path, scenario, run_id, report):
                batch.append(event)
                if len(batch) >= BATCH:
                    send()
            if batch:
                send()
        except ImportFailed as exc:
            print(f"snakepit-perf: import k6: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"snakepit-perf: import k6: {path}: {exc}", file=sys.stderr)
            return 2
    skipped = ", ".join(f"{m} {n}" for m, n in sorted(report.skipped.items())) or "none"
    print(f"imported {report.requests} k6 requests ({report.errors} failed) from {path}"
          f"{f' into run {run_id}' if run_id else ''}; other metrics skipped: {skipped}",
          file=out)
    for line in report.bad_lines[:20]:
        print(f"not imported: {line}", file=sys.stderr)
    for reject in report.rejected[:20]:
        print(f"refused: {reject}", file=sys.stderr)
    if report.requests == 0:
        print(f"snakepit-perf: import k6: no http_req_duration points in {path}",
              file=sys.stderr)
        return 2
    return 1 if report.bad_lines or report.rejected else 0
