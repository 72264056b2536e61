"""Test data with known answers: generated events and the exact statistics they imply."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import numpy as np

from schemas.events import Request
from simulator.model import Command
from store.base import RollupStore
from streams.engine import Engine

# Yesterday 08:00 UTC: test data lies in the past, as real data does (the service refuses events
# from the future), and within every retention; a multiple of 3600, and 08:00 keeps the
# simulator's daily peak (14:00) and evening in the past too.
T0 = (int(time.time()) // 86400 - 1) * 86400 + 8 * 3600

LATENCIES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "lognormal": lambda rng, n: rng.lognormal(9.0, 0.9, n),
    "bimodal": lambda rng, n: np.where(rng.random(n) < 0.7, rng.normal(4_000, 400, n),
                                       rng.normal(60_000, 6_000, n)).clip(1),
    "heavy_tailed": lambda rng, n: (rng.pareto(1.6, n) + 1) * 800,
}


def requests(n: int, seconds: float, latency: str = "lognormal", seed: int = 1,
             pools: tuple[str, ...] = ("pool-a", "pool-b"), start: float = T0) -> list[Request]:
    """``n`` requests spread evenly over ``seconds`` from ``start``, in time order."""
    rng = np.random.default_rng(seed)
    py = random.Random(seed)
    durations = LATENCIES[latency](rng, n).astype(np.int64).clip(1)
    out = []
    for i in range(n):
        d = int(durations[i])
        status = py.choices(("ok", "error", "timeout"), (96, 3, 1))[0]
        out.append(Request(
            time=start + i * seconds / n, pool=pools[i % len(pools)],
            worker_id=f"w{i % 7}", worker_profile="process", adapter="grpc",
            command=py.choice(("predict", "embed")), duration_us=d, status=status,
            queue_wait_us=py.randint(0, 5000), python_us=int(d * 0.8),
            retries=1 if py.random() < 0.02 else None, python_env="venv-3.12"))
    return out


def store_two_hours(store: RollupStore) -> None:
    """Write into ``store`` what the engine makes of 20,000 requests over 2 h from T0 (in
    batches of 1,000, as ingest hands them over), closed."""
    eng = Engine()
    events = requests(20_000, 7200)
    out = []
    for i in range(0, len(events), 1000):
        out += eng.process(events[i:i + 1000])
    store.write(out + eng.flush())


def clock_poison(pool: str) -> list[Request]:
    """What a node with a broken clock sends: one request from 2099, one from 1971."""
    return [Request(time=t, pool=pool, command="predict", duration_us=1000, status="ok")
            for t in (4_102_358_400.0, 31_536_000.0)]  # 2099-12-31, 1971-01-01


def exact_quantile(values: list[float], q: float) -> float:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q))


# -- alert signals: one pool's minute as the alert engine sees it ----------------------------

def normal(rnd: random.Random, **over) -> dict[str, float]:
    """A healthy minute of one pool's signals, jittered; ``over`` sets any of them."""
    s = {"rate": 20 + rnd.uniform(-1, 1), "p99_s": 0.08 + rnd.uniform(-0.005, 0.005),
         "error_ratio": 0.005 + rnd.uniform(-0.001, 0.001), "queue_depth_max": rnd.choice([0, 1]),
         "crashes": 0.0}
    s.update(over)
    s["errors"] = s["error_ratio"] * s["rate"] * 60
    return s


def minutes(rng: range, pool: str = "gpu", seed: int = 1, **over) -> list[tuple[int, dict]]:
    """Minutes ``rng`` (counted from T0) of one pool, healthy unless ``over`` says otherwise."""
    rnd = random.Random(seed)
    return [(T0 + m * 60, {pool: normal(rnd, **over)}) for m in rng]


# -- a command mix for the recommendation tests ----------------------------------------------

MIX = [Command("predict", 2, 40, 0.5, "torch"), Command("embed", 1, 12, 0.4, "numpy")]


def mean_ms(commands: list[Command]) -> float:
    """The mix's mean latency: a lognormal's mean is its median times exp(sigma^2 / 2)."""
    w = sum(c.weight for c in commands)
    return sum(c.weight * c.median_ms * math.exp(c.sigma ** 2 / 2) for c in commands) / w
