"""Overload against a real embedded `run`: offered load at twice what it can sustain.

Three phases in one run:

1. idle: query p95 with no ingest (the baseline);
2. sustainable: 64 senders that wait ``Retry-After`` on a 429 (as the SDK does) for 10 s; what
   is accepted per second is the sustainable rate S;
3. overload: batches offered at 2·S for 20 s at fixed intervals (an open model, as k6's
   constant-arrival-rate: a refused batch is not retried, the next one comes on time), while
   queries run back to back.

Reports query p95 under overload as a ratio of idle (aim <= 3x), how long 202s took, how many
batches got 429 (each must carry Retry-After), RSS, and checks that exactly the acknowledged
batches are stored. The senders run in a process of their own, and queries go over one
keep-alive connection (as a dashboard's do): measured from inside the senders' process, a
query's time was mostly the wait for that process's own GIL, and a new client per query
costs ~30 ms of client set-up alone.

    .venv/bin/python -m bench.overload              # the three phases
    .venv/bin/python -m bench.overload --impolite   # phase 3 instead retries every 429 at once
"""

from __future__ import annotations

import multiprocessing
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
SENDERS, SECONDS, BATCH = 64, 20.0, 500
IMPOLITE = "--impolite" in sys.argv


def _query(client: httpx.Client, start: int) -> float:
    t = time.perf_counter()
    r = client.get("/v1/query", params={"metric": "request_duration_seconds", "stat": "p99",
                                        "from": start, "to": start + 3600, "step": "1m",
                                        "group_by": "pool"})
    r.raise_for_status()
    return time.perf_counter() - t


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class Load:
    """Senders of numbered batches; counts what was acknowledged and refused."""

    def __init__(self, base: str, start: int) -> None:
        self.base, self.start = base, start
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.counter = iter(range(10**9))
        self.acked: list[int] = []
        self.latency: list[float] = []
        self.refused = self.no_retry_after = self.other = 0

    def body(self, n: int) -> bytes:
        return msgspec.json.encode([
            Request(time=self.start + 60 + (n * BATCH + i) * 1e-4, pool=f"o{n % 4}",
                    command="predict", duration_us=500 + i, status="ok") for i in range(BATCH)])

    def post(self, c: httpx.Client) -> httpx.Response:
        with self.lock:
            n = next(self.counter)
        body = self.body(n)
        t = time.perf_counter()
        r = c.post(f"{self.base}/v1/events", content=body,
                   headers={"Content-Type": "application/json"})
        with self.lock:
            if r.status_code == 202:
                self.latency.append(time.perf_counter() - t)
                self.acked.append(n)
            elif r.status_code == 429:
                self.refused += 1
                self.no_retry_after += "Retry-After" not in r.headers
            else:
                self.other += 1
        return r

    def polite(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self.stop.is_set():
                r = self.post(c)
                if r.status_code == 429:
                    time.sleep(float(r.headers.get("Retry-After", "1")))

    def paced(self, interval: float) -> None:
        with httpx.Client(timeout=60) as c:
            due = time.monotonic()
            while not self.stop.is_set():
                self.post(c)
                due += interval
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                else:
                    due = time.monotonic()  # behind: missed slots are not sent in a burst

    def impolite(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self.stop.is_set():
                self.post(c)

    def run(self, target, seconds: float) -> None:
        self.stop.clear()
        threads = [threading.Thread(target=target) for _ in range(SENDERS)]
        for th in threads:
            th.start()
        time.sleep(seconds)
        self.stop.set()
        for th in threads:
            th.join()


def send(base: str, start: int, first: int, seconds: float, rate: float | None,
         results: multiprocessing.Queue) -> None:
    """A sending phase, in a process of its own: polite senders (``rate`` None) or batches
    offered at ``rate`` events/s; puts (acknowledged batch numbers, 202 latencies, refused,
    refused without Retry-After, other) on ``results``."""
    load = Load(base, start)
    load.counter = iter(range(first, 10**9))  # numbers (so event times) of their own
    if rate is None:
        target = load.polite
    elif IMPOLITE:
        target = load.impolite
    else:
        interval = SENDERS * BATCH / rate

        def target() -> None:
            load.paced(interval)
    load.run(target, seconds)
    results.put((load.acked, load.latency, load.refused, load.no_retry_after, load.other))


def phase(base: str, start: int, first: int, seconds: float, rate: float | None,
          proc: psutil.Process, client: httpx.Client | None = None
          ) -> tuple[tuple, list[float], int]:
    """Run a sending phase in a child process; meanwhile query back to back over ``client``
    (if given) and sample the service's RSS. Returns the phase's results, query times, peak."""
    results = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=send, args=(base, start, first, seconds, rate, results))
    child.start()
    times, peak = [], proc.memory_info().rss
    while child.is_alive() and results.empty():
        if client is not None:
            times.append(_query(client, start))
        else:
            time.sleep(0.2)
        peak = max(peak, proc.memory_info().rss)
    out = results.get(timeout=120)
    child.join()
    return out, times, peak


def stored_batches(base: str, start: int) -> float:
    r = httpx.get(f"{base}/v1/query", params={"metric": "requests_total", "stat": "count",
                                              "from": start, "to": start + 3600, "step": "1h",
                                              "group_by": "pool", "where": "pool:o*"},
                  timeout=60)
    r.raise_for_status()
    return sum(p[1] for s in r.json()["series"] for p in s["points"] if p[1] is not None)


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
            proc = psutil.Process(run.pid)
            client = httpx.Client(base_url=base, timeout=60)
            idle = [_query(client, start) for _ in range(40)]
            rss0 = proc.memory_info().rss

            (warm_acked, *_), _, _ = phase(base, start, 0, 10.0, None, proc)
            sustainable = len(warm_acked) * BATCH / 10.0

            (acked, latency, refused, no_retry_after, other), loaded, peak = phase(
                base, start, 10**4, SECONDS, 2 * sustainable, proc, client)
            offered = len(acked) + refused + other
            kind = "every 429 retried at once" if IMPOLITE else "offered at 2x sustainable"
            print(f"sustainable (polite senders, 10 s): {sustainable:,.0f} events/s")
            print(f"overload ({kind}): {SENDERS} senders for {SECONDS:.0f} s, "
                  f"{offered * BATCH / SECONDS:,.0f} events/s offered "
                  f"({offered * BATCH / SECONDS / sustainable:.1f}x sustainable), "
                  f"{len(acked) * BATCH / SECONDS:,.0f} events/s accepted, "
                  f"{refused:,} batches answered 429 ({no_retry_after} without "
                  f"Retry-After), {other} other")
            print(f"  202 latency p50 {_p(latency, .5) * 1000:.0f} ms, p99 "
                  f"{_p(latency, .99) * 1000:.0f} ms, max {max(latency) * 1000:.0f} ms")
            print(f"  query p95 idle {_p(idle, .95) * 1000:.1f} ms (baseline), under overload "
                  f"{_p(loaded, .95) * 1000:.1f} ms: {_p(loaded, .95) / _p(idle, .95):.2f}x "
                  f"({len(loaded)} queries)")
            print(f"  RSS {rss0 / 1e6:.0f} MB before, {peak / 1e6:.0f} MB peak")
            acked = (len(warm_acked) + len(acked)) * BATCH
            deadline = time.monotonic() + 60
            while (stored := stored_batches(base, start)) < acked and time.monotonic() < deadline:
                time.sleep(1)
            print(f"  acknowledged {acked:,} events, stored {stored:,.0f}")
        finally:
            run.terminate()
            run.wait(60)


if __name__ == "__main__":
    main()
