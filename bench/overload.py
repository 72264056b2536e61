"""Overload against a real embedded `run`: senders offer far more than it can aggregate.

Measures, in one run: query p95 idle (the baseline) and under overload, how long 202s take,
how many batches are refused with 429 (and that each carries Retry-After), the service's RSS,
and that exactly the acknowledged batches are stored.

    .venv/bin/python -m bench.overload              # senders honour Retry-After (the SDK)
    .venv/bin/python -m bench.overload --impolite   # senders retry at once
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import msgspec
import psutil

from bench.common import wait_healthy
from schemas.events import Request

EXE = str(Path(sys.executable).with_name("snakepit-perf"))
SENDERS, SECONDS, BATCH = 32, 20.0, 500
POLITE = "--impolite" not in sys.argv  # senders wait Retry-After on a 429, as the SDK does


def _query(base: str, start: int) -> float:
    t = time.perf_counter()
    r = httpx.get(f"{base}/v1/query", params={"metric": "request_duration_seconds",
                                              "stat": "p99", "from": start, "to": start + 3600,
                                              "step": "1m", "group_by": "pool"}, timeout=60)
    r.raise_for_status()
    return time.perf_counter() - t


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    with tempfile.TemporaryDirectory(dir=Path.home()) as d:
        port = 18000 + os.getpid() % 1000
        env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": d}
        run = subprocess.Popen([EXE, "run", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base)
            start = int(time.time()) // 3600 * 3600 - 2 * 3600
            seed = [Request(time=start + i, pool=f"pool-{i % 4}", command="predict",
                            duration_us=1000 + i, status="ok") for i in range(3600)]
            httpx.post(f"{base}/v1/events", content=msgspec.json.encode(seed),
                       headers={"Content-Type": "application/json"}, timeout=60)
            time.sleep(8)
            idle = [_query(base, start) for _ in range(40)]
            proc = psutil.Process(run.pid)
            rss0 = proc.memory_info().rss
            stats = {"202": [], "429": 0, "no_retry_after": 0, "other": 0}
            acked, lock, stop = [], threading.Lock(), threading.Event()
            counter = iter(range(10**9))

            def send() -> None:
                with httpx.Client(timeout=60) as c:
                    while not stop.is_set():
                        with lock:
                            n = next(counter)
                        body = msgspec.json.encode([
                            Request(time=start + 60 + (n * BATCH + i) * 1e-4, pool=f"o{n % 4}",
                                    command="predict", duration_us=500 + i, status="ok")
                            for i in range(BATCH)])
                        t = time.perf_counter()
                        r = c.post(f"{base}/v1/events", content=body,
                                   headers={"Content-Type": "application/json"})
                        with lock:
                            if r.status_code == 202:
                                stats["202"].append(time.perf_counter() - t)
                                acked.append(n)
                            elif r.status_code == 429:
                                stats["429"] += 1
                                stats["no_retry_after"] += "Retry-After" not in r.headers
                            else:
                                stats["other"] += 1
                        if r.status_code == 429 and POLITE:  # as the SDK's HttpSender does
                            time.sleep(float(r.headers.get("Retry-After", "1")))

            threads = [threading.Thread(target=send) for _ in range(SENDERS)]
            for th in threads:
                th.start()
            loaded, peak = [], rss0
            t_end = time.monotonic() + SECONDS
            while time.monotonic() < t_end:
                loaded.append(_query(base, start))
                peak = max(peak, proc.memory_info().rss)
            stop.set()
            for th in threads:
                th.join()
            offered = len(stats["202"]) + stats["429"] + stats["other"]
            kind = "polite" if POLITE else "impolite"
            print(f"overload ({kind}): {SENDERS} senders for {SECONDS:.0f} s, {offered:,} batches of "
                  f"{BATCH} offered, {len(stats['202']):,} accepted "
                  f"({len(stats['202']) * BATCH / SECONDS:,.0f} events/s), {stats['429']:,} "
                  f"answered 429 ({stats['no_retry_after']} without Retry-After), "
                  f"{stats['other']} other")
            print(f"  202 latency p50 {_p(stats['202'], .5) * 1000:.0f} ms, p99 "
                  f"{_p(stats['202'], .99) * 1000:.0f} ms, max {max(stats['202']) * 1000:.0f} ms")
            print(f"  query p95 idle {_p(idle, .95) * 1000:.1f} ms (baseline), under overload "
                  f"{_p(loaded, .95) * 1000:.1f} ms: {_p(loaded, .95) / _p(idle, .95):.2f}x")
            print(f"  RSS {rss0 / 1e6:.0f} MB before, {peak / 1e6:.0f} MB peak")
        finally:
            run.terminate()
            run.wait(60)


if __name__ == "__main__":
    main()
