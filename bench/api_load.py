"""HTTP API latency and throughput against a real `snakepit-perf run` process:

- `/v1/query` over 30 days, 20 series, group by pool, P99 per hour (hourly rollups);
- `/v1/query` for the last hour at 10 s;
- sustained query requests/s while the engine ingests a simulated load, vs the same with no
  ingest (the baseline), and `/health` latency as the latency baseline.

    .venv/bin/python -m bench.api_load
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.store_query import DAYS, labels, minute_aggs
from harness.procs import free_port, up
from store.sqlite import SQLiteStore
from streams.rollup import Rollup
from streams.series import ALL

EXE = str(Path(sys.executable).with_name("snakepit-perf"))


def prefill(path: Path, now: int) -> int:
    store = SQLiteStore(path)
    aggs = minute_aggs(100)
    start = now - now % 3600 - DAYS * 86400
    rows = [Rollup("request", labels(s), 3600, start + h * 3600, aggs[(s + h) % 100])
            for s in range(20) for h in range(DAYS * 24)]
    # The rolled-up series the engine writes alongside: per pool and deployment-wide.
    rolled = [(f"pool-{p}", *(ALL,) * 7) for p in range(4)] + [(ALL,) * 8]
    rows += [Rollup("request", lab, 3600, start + h * 3600, aggs[(i + h) % 100])
             for i, lab in enumerate(rolled) for h in range(DAYS * 24)]
    rows += [Rollup("request", lab, 10, now - 3600 + k * 10, aggs[(i + k) % 100])
             for i, lab in enumerate(rolled) for k in range(360)]
    rows += [Rollup("request", labels(s), 10, now - 3600 + i * 10, aggs[(s + i) % 100])
             for s in range(20) for i in range(360)]
    for i in range(0, len(rows), 5000):
        store.write(rows[i:i + 5000])
    store.close()
    return start


def timed(client: httpx.Client, url: str, params: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url, params=params)
        out.append(time.perf_counter() - t0)
        assert r.status_code == 200, r.text
    return out


def pct(values: list[float], q: float) -> float:
    return sorted(values)[max(0, int(q * len(values)) - 1)] * 1000


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        now = int(time.time())
        start = prefill(Path(d) / "embedded.sqlite3", now)
        port = free_port()
        env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": d}
        run = subprocess.Popen([EXE, "run", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            while not up(port):
                time.sleep(0.2)
            client = httpx.Client(base_url=base, timeout=60)
            health = timed(client, "/health", {}, 50)
            month = {"metric": "request_duration_seconds", "stat": "p99", "from": start,
                     "to": start + DAYS * 86400, "step": "1h", "group_by": "pool"}
            month_t = timed(client, "/v1/query", month, 20)
            hour = {"metric": "request_duration_seconds", "stat": "p99", "from": now - 3600,
                    "to": now, "step": "10s", "group_by": "pool"}
            hour_t = timed(client, "/v1/query", hour, 20)
            print(f"\n## /v1/query latency (real server; /health p50 {pct(health, .5):.1f} ms "
                  f"is the baseline)")
            for name, t in (("30 days, 20 series, by pool, P99 per hour", month_t),
                            ("last hour at 10 s, 20 series, by pool, P99", hour_t)):
                print(f"  {name:<58} p50 {pct(t, .5):7.1f} ms  p95 {pct(t, .95):7.1f} ms "
                      f"({pct(t, .5) / pct(health, .5):.0f}x /health)")

            def qps(seconds: float) -> float:
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < seconds:
                    client.get("/v1/query", params=hour)
                    n += 1
                return n / (time.perf_counter() - t0)

            idle = qps(10)
            sim = subprocess.Popen([EXE, "simulate", "--url", base, "--rate", "2000",
                                    "--duration", "600", "--fast", "--seed", "3"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(2)
            busy = qps(10)
            sim.terminate()
            sim.wait(30)
            ingested = httpx.get(f"{base}/metrics").text
            accepted = next(float(line.split()[-1]) for line in ingested.splitlines()
                            if line.startswith("snakepit_perf_events_accepted_total"))
            print(f"\n## sustained /v1/query (last hour) requests/s\n"
                  f"  no ingest (baseline)        {idle:8.1f} req/s\n"
                  f"  while ingesting             {busy:8.1f} req/s ({busy / idle:.2f}x); "
                  f"{accepted:,.0f} events ingested meanwhile")
        finally:
            run.terminate()
            run.wait(30)


if __name__ == "__main__":
    main()
