"""The label attack against a real embedded `run`: every (pool, command) pair of 1,000 pools and
1,000 commands, each label within its per-dimension limit, a million series asked for.

Two `run` processes in one invocation, each fed the same number of events: the baseline (4
pools, 2 commands) and the attack. Reports each one's RSS, the attack's as a ratio of the
baseline's, the active series and the overflow from `/metrics`, the last checkpoint's duration
and age, `/health`, and that the per-pool totals are exact.

    .venv/bin/python -m bench.label_attack [--pools 1000 --commands 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgspec
import psutil

from bench.common import wait_healthy
from harness.metrics import samples
from schemas.events import Request

EXE = str(Path(sys.executable).with_name("snakepit-perf"))
BATCH = 5000


def events(n: int, pools: int, commands: int, start: float, seconds: float) -> list[Request]:
    """``n`` requests cycling through every (pool, command) pair."""
    return [Request(time=start + i * seconds / n, pool=f"pool-{i % pools}",
                    command=f"cmd-{(i // pools) % commands}", worker_id=f"w{i % 7}",
                    duration_us=1000 + i % 5000, status="ok") for i in range(n)]


def metric(text: str, name: str) -> dict[str, float]:
    """``name``'s samples in a Prometheus exposition, by their label text (``{family="x"}``)."""
    return {key[len(name):]: value for key, value in samples(text).items()
            if key == name or key.startswith(name + "{")}


def attack(label: str, stream: list[Request], start: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(dir=Path.home()) as d:
        port = 18000 + os.getpid() % 1000
        run = subprocess.Popen([EXE, "run", "--port", str(port)],
                               env={**os.environ, "SNAKEPIT_PERF_DATA_DIR": d},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        proc = psutil.Process(run.pid)
        try:
            wait_healthy(base)
            idle_rss = proc.memory_info().rss
            peak = idle_rss
            enc = msgspec.json.Encoder()
            t = time.perf_counter()
            with httpx.Client(timeout=120) as client:
                for i in range(0, len(stream), BATCH):
                    body = enc.encode(stream[i:i + BATCH])
                    while (r := client.post(f"{base}/v1/events", content=body, headers={
                            "Content-Type": "application/json"})).status_code == 429:
                        time.sleep(float(r.headers.get("Retry-After", "1")))
                    r.raise_for_status()
                    peak = max(peak, proc.memory_info().rss)
            ingest_s = time.perf_counter() - t
            deadline = time.monotonic() + 180  # until the idle stream's windows are stored
            while time.monotonic() < deadline:
                peak = max(peak, proc.memory_info().rss)
                q = httpx.get(f"{base}/v1/query", params={
                    "metric": "requests_total", "stat": "count", "from": int(start),
                    "to": int(start) + 3600, "step": "1h", "group_by": "pool"}, timeout=120)
                total = sum(p[1] for s in q.json()["series"] for p in s["points"])
                if total >= len(stream):
                    break
                time.sleep(2)
            per_pool = {s["labels"]["pool"]: sum(p[1] for p in s["points"])
                        for s in q.json()["series"]}
            expected: dict[str, int] = {}
            for e in stream:
                expected[e.pool] = expected.get(e.pool, 0) + 1
            text = httpx.get(f"{base}/metrics", timeout=30).text
            health = httpx.get(f"{base}/health", timeout=30)
            return {"label": label, "idle_mb": idle_rss / 2**20, "peak_mb": peak / 2**20,
                    "rss_mb": proc.memory_info().rss / 2**20, "ingest_s": ingest_s,
                    "exact": per_pool == expected,
                    "active": metric(text, "snakepit_perf_series_active"),
                    "overflow": metric(text, "snakepit_perf_series_overflow_total"),
                    "checkpoint_s": metric(text, "snakepit_perf_checkpoint_duration_seconds"),
                    "checkpoint_age_s": metric(text, "snakepit_perf_checkpoint_age_seconds"),
                    "health": health.status_code, "warnings": health.json().get("warnings")}
        finally:
            run.terminate()
            run.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pools", type=int, default=1000)
    ap.add_argument("--commands", type=int, default=1000)
    args = ap.parse_args()
    n = args.pools * args.commands
    start = (time.time() - 2 * 3600) // 3600 * 3600  # a closed hour: stored once idle
    results = [attack("baseline (4 pools x 2 commands)", events(n, 4, 2, start, 600), start),
               attack(f"attack ({args.pools} pools x {args.commands} commands)",
                      events(n, args.pools, args.commands, start, 600), start)]
    print(f"\n## Label attack: {n:,} events into a real `run` (default limits)")
    for r in results:
        ratio = r["peak_mb"] / results[0]["peak_mb"]
        print(f"  {r['label']}")
        print(f"    RSS idle {r['idle_mb']:.0f} MB, peak {r['peak_mb']:.0f} MB "
              f"({ratio:.2f}x baseline), at the end {r['rss_mb']:.0f} MB; ingest "
              f"{r['ingest_s']:.1f} s")
        print(f"    per-pool totals exact: {r['exact']}; /health {r['health']} "
              f"{r['warnings']}")
        print(f"    active series {r['active']}")
        print(f"    series overflow {r['overflow']}")
        print(f"    last checkpoint took {r['checkpoint_s']} s, age {r['checkpoint_age_s']} s")


if __name__ == "__main__":
    main()
