"""k6's JSON output (a file in k6's format: load/make_k6_output.py) imported into a real
embedded `run` with `snakepit-perf import k6`: client-side counts exact, percentiles within
the digest's rank error of an exact computation over the same file; bad lines reported while
the good ones still count."""

from __future__ import annotations

import gzip
import json
import math
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pytest

from harness import kafka as kh
from harness.procs import recording

K6_FILE = Path(__file__).with_name("load") / "k6_output.json.gz"
K6_SUMMARY = K6_FILE.with_name("k6_summary.json")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text)).timestamp()


def exact(path: Path) -> dict:
    """The file's http_req_duration points, read with the standard library alone."""
    ms, failed, times = [], 0, []
    with gzip.open(path, "rt") as f:
        for line in f:
            obj = json.loads(line)
            if obj["type"] == "Point" and obj["metric"] == "http_req_duration":
                ms.append(obj["data"]["value"])
                failed += obj["data"]["tags"]["expected_response"] == "false"
                times.append(obj["data"]["time"])
    return {"ms": np.sort(np.array(ms)), "failed": failed, "start": _epoch(times[0]),
            "end": _epoch(times[-1])}


def k6_import(monitor: str, path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([kh.EXE, "import", "k6", str(path), "--url", monitor, *extra],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[str]:
    with recording(tmp_path) as url:
        yield url


def test_k6_output_imported_into_a_run_agrees_with_an_exact_computation(monitor: str):
    truth = exact(K6_FILE)
    values = truth["ms"]
    assert len(values) == 1500 and truth["failed"] > 10  # the file has what the test needs
    # whole hours: a run's figures come from the windows wholly inside it, and windows of old
    # runs are 1 min, then 1 h
    created = httpx.post(f"{monitor}/v1/benchmarks", json={
        "scenario": "k6-import", "from": math.floor(truth["start"] / 3600) * 3600,
        "to": math.ceil(truth["end"] / 3600) * 3600}).json()
    out = k6_import(monitor, K6_FILE, "--run", created["id"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"imported 1500 k6 requests ({truth['failed']} failed)" in out.stdout

    def client() -> dict | None:
        run = httpx.get(f"{monitor}/v1/benchmarks/{created['id']}").json()
        return run["results"]["client"]

    kh.wait_for(lambda: (client() or {}).get("overall", {}).get("requests") == 1500, 60,
                f"1500 client requests in the run, last {client()}")
    overall = client()["overall"]
    assert overall["errors"] == truth["failed"]
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        got_ms = overall[name] * 1000
        # within the digest's rank error: between the exact quantiles half a percent around q
        lo, hi = np.quantile(values, max(0.0, q - 0.005)), np.quantile(values, min(1, q + 0.005))
        assert lo - 1e-3 <= got_ms <= hi + 1e-3, (name, got_ms, lo, hi)
    # per request name: the script named embed's calls; predict's kept the URL k6 tags them by
    assert client()["k6 embed"]["requests"] + \
        client()["k6 http://127.0.0.1:8000/call/predict"]["requests"] == 1500
    # the same numbers through /v1/query
    r = httpx.get(f"{monitor}/v1/query", params={
        "metric": "client_requests_total", "stat": "count", "from": int(truth["start"]) - 60,
        "to": int(truth["end"]) + 60, "step": "1h", "group_by": "tool"}).json()
    assert {s["labels"]["tool"]: sum(p[1] for p in s["points"]) for s in r["series"]} == \
        {"k6": 1500}
    # k6's own end-of-test summary of the same run, attached beside what was measured
    summary = json.loads(K6_SUMMARY.read_text())["metrics"]
    out = k6_import(monitor, K6_SUMMARY, "--run", created["id"])
    assert out.returncode == 0 and "attached k6's summary" in out.stdout, out.stderr
    attached = httpx.get(f"{monitor}/v1/benchmarks/{created['id']}").json()["client_summary"]
    k6_duration = {k: v for k, v in summary["http_req_duration"].items() if k != "thresholds"}
    assert attached["metrics"]["http_req_duration"] == k6_duration
    assert attached["metrics"]["http_req_failed"]["passes"] == truth["failed"]
    assert k6_duration["p(95)"] == pytest.approx(np.quantile(values, 0.95))  # k6 is exact
    ours, theirs = client()["overall"]["p95"] * 1000, k6_duration["p(95)"]
    assert np.quantile(values, 0.945) <= ours <= np.quantile(values, 0.955), (ours, theirs)
    out = k6_import(monitor, K6_SUMMARY)
    assert out.returncode == 2 and "give --run ID" in out.stderr
    # the server's requests are not touched: a load test's calls are not counted twice
    r = httpx.get(f"{monitor}/v1/query", params={
        "metric": "requests_total", "stat": "count", "from": int(truth["start"]) - 60,
        "to": int(truth["end"]) + 60, "step": "1h"}).json()
    assert sum(p[1] for s in r["series"] for p in s["points"]) == 0


def test_bad_lines_are_reported_and_the_good_points_still_count(monitor: str, tmp_path: Path):
    with gzip.open(K6_FILE, "rt") as f:
        lines = f.read().splitlines()[:400]
    points = sum('"metric":"http_req_duration"' in x and '"Point"' in x for x in lines)
    hostile = [*lines[:50], "{not json", '{"type":"Sample","data":{}}',
               '{"type":"Point","data":{"time":"yesterday","value":1,"tags":{}},'
               '"metric":"http_req_duration"}', "[" * 100_000 + "]" * 100_000, *lines[50:]]
    path = tmp_path / "k6.json"
    path.write_text("\n".join(hostile) + "\n")
    out = k6_import(monitor, path)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"imported {points} k6 requests" in out.stdout
    assert "line 52: not a k6 Metric or Point line" in out.stderr
    assert "line 51:" in out.stderr and "line 53:" in out.stderr and "line 54:" in out.stderr
    empty = tmp_path / "empty.json"
    empty.write_text("\n".join(x for x in lines if '"http_req_duration"' not in x) + "\n")
    out = k6_import(monitor, empty)
    assert out.returncode == 2 and "no http_req_duration points" in out.stderr, out.stderr
    out = k6_import(monitor, K6_FILE, "--run", "no-such-run")
    assert out.returncode == 2 and "no benchmark run 'no-such-run'" in out.stderr
