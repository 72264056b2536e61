"""A week of history loaded into a real embedded `run` with `snakepit-perf import events`.

7 days x 4 pools x 2 commands at 20 requests per second of event time (12.1M events, in time
order, ending an hour ago) written as one NDJSON file, then imported into a fresh `run`.
Reports, against the bare baseline of `orjson.loads` over the same file's lines in this run:

- the import's events/s (aim >= 100k/s);
- how long after the import's last POST every hour is queryable with its exact count per
  pool (aim <= 30 s), and how many hours were complete when the import ended;
- the `run` process's peak RSS during the import and the wait (aim <= 1.5 GB).

    .venv/bin/python -m bench.backfill [--days 7 --rate 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import psutil

from bench.common import report, wait_healthy

EXE = str(Path(sys.executable).with_name("snakepit-perf"))
POOLS = ("pool-a", "pool-b", "pool-c", "pool-d")
COMMANDS = ("predict", "embed")
CHUNK = 500_000  # events generated and written at a time


def write_events(path: Path, start: float, seconds: int, rate: int) -> dict[tuple[int, str], int]:
    """The NDJSON file; returns the exact count per (hour, pool)."""
    n = seconds * rate
    rng = np.random.default_rng(22)
    expected: dict[tuple[int, str], int] = {}
    with path.open("w") as f:
        for lo in range(0, n, CHUNK):
            idx = np.arange(lo, min(lo + CHUNK, n))
            times = start + idx / rate
            durations = rng.lognormal(9.0, 0.9, len(idx)).astype(np.int64).clip(1)
            status = rng.choice(("ok", "error", "timeout"), len(idx), p=(0.96, 0.03, 0.01))
            lines = [
                f'{{"type":"request","time":{t:.3f},"pool":"{POOLS[i % 4]}",'
                f'"command":"{COMMANDS[(i // 4) % 2]}","worker_id":"w{i % 7}",'
                f'"duration_us":{d},"status":"{s}"}}\n'
                for i, t, d, s in zip(idx.tolist(), times.tolist(), durations.tolist(),
                                      status.tolist(), strict=True)]
            f.writelines(lines)
            hours = ((times - start) // 3600).astype(np.int64)
            for p, pool in enumerate(POOLS):
                counts = np.bincount(hours[idx % 4 == p])
                for h in np.nonzero(counts)[0].tolist():
                    expected[(h, pool)] = expected.get((h, pool), 0) + int(counts[h])
    return expected


def bare_loads(path: Path, limit: int = 2_000_000) -> float:
    """events/s of `orjson.loads` over the file's first ``limit`` lines."""
    with path.open("rb") as f:
        lines = [line for _, line in zip(range(limit), f, strict=False)]
    t = time.perf_counter()
    for line in lines:
        orjson.loads(line)
    return len(lines) / (time.perf_counter() - t)


def complete_hours(base: str, start: float, hours: int,
                   expected: dict[tuple[int, str], int]) -> int:
    """How many hours the query API answers with every pool's exact count."""
    r = httpx.get(f"{base}/v1/query", params={
        "metric": "requests_total", "stat": "count", "from": int(start),
        "to": int(start) + hours * 3600, "step": "1h", "group_by": "pool"}, timeout=120)
    r.raise_for_status()
    got: dict[tuple[int, str], float] = {}
    for s in r.json()["series"]:
        for t, v in s["points"]:
            if v is not None:
                got[(int(t - start) // 3600, s["labels"]["pool"])] = v
    return sum(all(got.get((h, p)) == expected.get((h, p)) for p in POOLS)
               for h in range(hours))


class PeakRss(threading.Thread):
    """Samples one process's RSS every 0.2 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc, self.peak, self.done = psutil.Process(pid), 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--rate", type=int, default=20, help="requests per second of event time")
    ap.add_argument("--wait", type=float, default=900, help="seconds to wait for every hour")
    args = ap.parse_args()
    seconds = int(args.days * 86400)
    hours = seconds // 3600
    start = (time.time() - seconds - 3600) // 3600 * 3600
    with tempfile.TemporaryDirectory(dir=Path.home()) as d:
        path = Path(d) / "history.ndjson"
        t = time.perf_counter()
        expected = write_events(path, start, seconds, args.rate)
        n = sum(expected.values())
        print(f"wrote {n:,} events ({path.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - t:.0f} s", file=sys.stderr)
        bare = bare_loads(path)
        port = 18000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(Path(d) / "data")}
        run = subprocess.Popen([EXE, "run", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(base)
            rss = PeakRss(run.pid)
            idle_mb = rss.proc.memory_info().rss / 2**20
            rss.start()
            t = time.perf_counter()
            imp = subprocess.run([EXE, "import", "events", str(path), "--url", base], env=env,
                                 capture_output=True, text=True)
            ingest_s = time.perf_counter() - t
            if imp.returncode != 0:
                raise SystemExit(f"import failed ({imp.returncode}): {imp.stdout}{imp.stderr}")
            at_end = complete_hours(base, start, hours, expected)
            waited, done = 0.0, at_end
            t = time.perf_counter()
            while done < hours and waited < args.wait:
                time.sleep(2)
                done = complete_hours(base, start, hours, expected)
                waited = time.perf_counter() - t
            rss.done.set()
            rss.join()
        finally:
            run.terminate()
            run.wait(120)
    print(f"\n## Backfill: {args.days:g} days, {n:,} events, `snakepit-perf import events`")
    report("events/s", [("bare orjson.loads of the lines (baseline)", bare, "events/s"),
                        ("import into a `run`", n / ingest_s, "events/s")], bare)
    print(f"  import took {ingest_s:.0f} s; {at_end} of {hours} hours complete at its end, "
          f"{done} of {hours} {waited:.0f} s later")
    print(f"  `run` RSS: idle {idle_mb:.0f} MB, peak {rss.peak / 2**20:,.0f} MB")


if __name__ == "__main__":
    main()
