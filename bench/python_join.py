"""What joining Python time into requests costs the engine (``streams.python_join``).

200,000 telemetry-shaped requests (a correlation id each, no Python time) and, for the joined
runs, one SDK-shaped ``python`` call event per request, half arriving before their request and
half after, in 500-event batches. Each figure is events/s of ``Engine.process`` against the
same requests with the join never started (the baseline: what a deployment without the SDK
runs), alternated five times, best run each.

    .venv/bin/python -m bench.python_join
"""

from __future__ import annotations

import time

from msgspec.structs import replace

from bench.common import report
from harness.data import requests
from schemas.events import Python, Request
from streams.engine import Engine

N = 200_000
SOURCE = "snakepit.grpc_worker.execute.stop"


def streams() -> tuple[list[list], list[list], list[list]]:
    reqs = [replace(r, python_us=None, queue_wait_us=None, trace_id=f"corr-{i}", source=SOURCE)
            for i, r in enumerate(requests(N, N / 20_000))]
    python = [Python(time=r.time, kind="call", pool=r.pool, worker_id=r.worker_id,
                     command=r.command, trace_id=r.trace_id, python_us=r.duration_us * 4 // 5)
              for r in reqs]
    alone = [reqs[i:i + 500] for i in range(0, N, 500)]
    mixed: list[list] = []  # a batch: the Python time of its second half, then its requests,
    for i in range(0, N, 500):  # then that of its first half
        batch: list[Request | Python] = list(python[i + 250:i + 500])
        batch += reqs[i:i + 500] + python[i:i + 250]
        mixed.append(batch)
    return [python[:1]], alone, mixed


def rate(batches: list[list], events: int, start: list[list] | None = None) -> float:
    eng = Engine()
    for b in start or ():
        eng.process(b)
    t0 = time.perf_counter()
    for b in batches:
        eng.process(b)
    eng.flush()
    return events / (time.perf_counter() - t0)


def main() -> None:
    first, alone, mixed = streams()
    base = remembering = joined = 0.0
    for _ in range(5):
        base = max(base, rate(alone, N))
        remembering = max(remembering, rate(alone, N, start=first))
        joined = max(joined, rate(mixed, 2 * N, start=first))
    report("engine: Python time joined into requests, 500 events/batch", [
        ("requests, join never started (baseline)", base, "events/s"),
        ("requests, join started (each remembered)", remembering, "events/s"),
        ("requests + their Python calls, all joined", joined, "events/s"),
    ], base)


if __name__ == "__main__":
    main()
