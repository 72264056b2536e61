"""Shared helpers for benchmarks: servers, test streams, timing, and the report format.

Every figure is reported next to a baseline measured in the same process on the same data, as
a ratio, because absolute numbers drift from run to run on shared machines.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import msgspec

from harness.data import requests
from infra import local
from snakepit_perf import config


def best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` timed runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def batches(n_events: int, per_message: int = 500, seed: int = 1,
            seconds: float | None = None) -> list[bytes]:
    """Requests of 4 pools, 7 workers, 2 commands, encoded ``per_message`` to a batch, spread
    over ``seconds`` of event time (default: 1,000 requests per second)."""
    events = requests(n_events, n_events / 1000 if seconds is None else seconds, seed=seed,
                      pools=tuple(f"pool-{i}" for i in range(4)))
    enc = msgspec.json.Encoder()
    return [enc.encode(events[i:i + per_message]) for i in range(0, n_events, per_message)]


@contextlib.contextmanager
def servers() -> Iterator[config.Settings]:
    """Kafka and Cassandra, reused if already up, else started (and stopped afterwards)."""
    settings = config.load()
    host, port = settings.kafka.bootstrap.rsplit(":", 1)
    targets = local.servers(settings.data_dir, int(port), settings.cassandra.port, host)
    results = local.up(targets)
    try:
        yield settings
    finally:
        local.down([s for s, r in zip(targets, results, strict=True) if r.started])


def wait_healthy(base: str, timeout: float = 30.0) -> None:
    """Until ``base``/health answers 200 (a `run` just started)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"{base} did not become healthy in {timeout:.0f} s")


def report(title: str, rows: list[tuple[str, float, str]], baseline: float | None = None) -> None:
    print(f"\n## {title}")
    for name, value, unit in rows:
        ratio = f"  ({value / baseline:.2f}x baseline)" if baseline else ""
        print(f"  {name:<48} {value:>14,.0f} {unit}{ratio}")
