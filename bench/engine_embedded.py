"""The embedded runner's events/s (decode → validate → aggregate → rollups written to SQLite)
vs a bare ``orjson.loads`` of the same batches; and memory per active series.

The same 300,000 requests are replayed at three densities of event time: 1,000 requests/s (a
quiet deployment's backlog, where per-series work per 10 s pane dominates), 20,000/s and
100,000/s (busy deployments, where per-request work dominates: the runner's capacity). Baseline
and runner alternate five times, so both see the same machine; each figure is the best run.

    .venv/bin/python -m bench.engine_embedded
"""

from __future__ import annotations

import gc
import tempfile
import time

import orjson
import psutil

from bench.common import batches, best_of, report
from harness.data import requests
from runners.embedded import EmbeddedRunner
from schemas.decode import decode_json
from store.sqlite import SQLiteStore
from streams.engine import Engine

N = 300_000


def run_embedded(bs: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(f"{d}/bench.sqlite3")
        runner = EmbeddedRunner(store)
        for b in bs:
            runner.submit(decode_json(b).events)
        runner.close_all()
        store.close()


def memory_per_series(n_series: int = 1000, minutes: int = 15, rate: int = 20) -> float:
    """RSS growth per 1,000 active series holding 15 minutes of sliding state."""
    gc.collect()
    before = psutil.Process().memory_info().rss
    eng = Engine()
    events = requests(n_series * rate, 1, pools=("p",))
    for second in range(minutes * 60 // 10):
        for i, e in enumerate(events):
            e.time = 1_800_000_000 + second * 10 + (i % 10)
            e.command = f"cmd-{i % n_series}"
        eng.process(events)
    gc.collect()
    return (psutil.Process().memory_info().rss - before) / (n_series / 1000) / 1e6


def main() -> None:
    for density in (1_000, 20_000, 100_000):
        bs = batches(N, seconds=N / density)
        base = runner = 0.0
        for _ in range(5):
            base = max(base, N / best_of(lambda bs=bs: [orjson.loads(b) for b in bs], repeat=1))
            runner = max(runner, N / best_of(lambda bs=bs: run_embedded(bs), repeat=1))
        report(f"embedded runner: decode → engine → SQLite, 500 events/batch, "
               f"{density:,} requests per second of event time", [
                   ("bare orjson.loads (baseline)", base, "events/s"),
                   ("embedded runner end to end", runner, "events/s"),
               ], base)
    t0 = time.perf_counter()
    mb = memory_per_series()
    print(f"  peak RSS growth per 1,000 active series (15 min of panes): {mb:,.0f} MB "
          f"(measured in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
