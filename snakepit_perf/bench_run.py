"""``snakepit-perf bench run --scenario NAME -- <command>``: a benchmark run around any load
command (a Locust or k6 run, a script, ``snakepit-perf simulate``).

It marks the start, runs the command once per trial (telling it the run in
``SNAKEPIT_PERF_URL``/``SNAKEPIT_PERF_RUN``, which the Locust plugin reads), waits until the
windows of the last trial are stored (the count of requests over the run stops changing),
finishes the run, and prints its comparison with the baseline as Markdown. Exit status: the
command's if it failed; 1 with ``--fail-on-regression`` when the comparison found one (as
Bencher's ``--err``); else 0.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import time
from typing import Any

import httpx

SETTLE_TIMEOUT_S = 180.0


def fingerprint() -> dict[str, str]:
    """What the host says about itself; the run adds what the events say (pools, envs)."""
    return {"host": platform.node(), "cores": str(os.cpu_count() or 0),
            "os": f"{platform.system()} {platform.release()}", "machine": platform.machine()}


def run(url: str, scenario: str, command: list[str], labels: dict[str, str],
        methodology: dict[str, Any], where: list[str], baseline: str,
        fail_on_regression: bool, key: str | None, settle_s: float = 15.0,
        out=sys.stdout) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        created = _ok(client.post("/v1/benchmarks", json={
            "scenario": scenario, "labels": labels, "where": where,
            "methodology": methodology,
            "fingerprint": fingerprint()}))
        run_id = created["id"]
        print(f"benchmark run {run_id} ({scenario}) started", file=out)
        ranges: list[list[float]] = []
        # what the snakepit-perf Locust plugin reads: it streams client records into this run
        env = {**os.environ, "SNAKEPIT_PERF_URL": url, "SNAKEPIT_PERF_RUN": run_id,
               "SNAKEPIT_PERF_SCENARIO": scenario}
        for trial in range(methodology.get("trials", 1)):
            t0 = time.time()
            code = subprocess.call(command, env=env)
            ranges.append([t0, time.time()])
            if code != 0:
                print(f"snakepit-perf: trial {trial + 1}: {shlex.join(command)} exited {code}",
                      file=sys.stderr)
                return code
        settle(client, ranges, where, settle_s)
        finished = _ok(client.post(f"/v1/benchmarks/{run_id}/finish", json={"trials": ranges}))
        overall = finished["results"]["overall"]
        print(f"finished: {overall['requests']:.0f} requests, p99 "
              f"{_ms(overall['p99'])}, {overall['throughput']:.1f} req/s", file=out)
        r = client.get(f"/v1/benchmarks/{run_id}/compare",
                       params={"baseline": baseline, "format": "markdown"})
        if r.status_code == 404:
            print(f"no baseline yet: {r.json().get('detail')}", file=out)
            return 0
        if r.status_code != 200:
            _ok(r)
        print(r.text, file=out)
        verdict = r.text.split("**")[1] if "**" in r.text else ""
        return 1 if fail_on_regression and verdict == "regression" else 0


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.1f} ms"


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise SystemExit(f"snakepit-perf: {response.request.method} {response.request.url.path}"
                         f" answered {response.status_code}: {response.text[:500]}")
    return response.json()


def settle(client: httpx.Client, ranges: list[list[float]], where: list[str],
           settle_s: float = 15.0) -> None:
    """Until the last trial's windows are stored: past its end by ``settle_s`` (the engine's
    lateness and flush), then until the request count over every trial stops changing."""
    time.sleep(max(0.0, ranges[-1][1] + settle_s - time.time()))
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        total = 0.0
        for t0, t1 in ranges:
            body = _ok(client.get("/v1/query", params={
                "metric": "requests_total", "stat": "count", "from": t0, "to": t1,
                "where": where}))
            total += sum(p[1] for s in body["series"] for p in s["points"])
        if total == last:
            return
        last = total
        time.sleep(2.0)
