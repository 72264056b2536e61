"""How good the recommendations are (R12), against the simulator's queueing model.

Every run is a simulated deployment aggregated by the real engine into a real SQLite store; the
recommender reads it back as the API does. Reports:

- **Sizing:** 24 pools of different sizes, loads, profiles and service-time distributions, each
  too small or too large at its peak. The recommended ``pool_size`` is then simulated (another
  seed) and the P95 queue wait and utilisation the model predicted are compared with what the
  simulator measured. A prediction counts as right within 20 % (or 1 ms, the resolution a wait
  is reported at, when both are near zero).

    .venv/bin/python -m bench.recommend_eval [--seconds 420]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

from models import recommend
from models.recommend_evidence import PoolEvidence, pool_evidence
from simulator.model import Command, PoolSpec, Simulation, daily_shape
from store.sqlite import SQLiteStore
from streams.engine import Engine
from tests.support import T0

PEAK = T0 + 8 * 3600  # 16:00 UTC, the top of the simulator's daily curve (flat around it)
WARMUP = 60


@dataclass
class Case:
    name: str
    size: int
    busy: float  # utilisation at the peak
    commands: list[Command]
    threads: int = 1

    def spec(self, size: int | None = None) -> PoolSpec:
        return PoolSpec(self.name, pool_size=size or self.size, share=1.0,
                        worker_profile="thread" if self.threads > 1 else "process",
                        threads_per_worker=self.threads,
                        commands=[Command(c.name, c.weight, c.median_ms, c.sigma, c.library)
                                  for c in self.commands],
                        crash_rate_per_hour=0.0, error_rate=0.0)

    def rate(self) -> float:
        """The arrival rate that makes the pool ``busy`` at the peak (before the daily shape)."""
        w = sum(c.weight for c in self.commands)
        mean = sum(c.weight * c.median_ms / 1000 * math.exp(c.sigma ** 2 / 2)
                   for c in self.commands) / w
        return self.busy * self.size * self.threads / mean / daily_shape(PEAK)


def simulate(store: SQLiteStore, day: int, spec: PoolSpec, rate: float, seconds: float,
             seed: int) -> tuple[float, float]:
    start = PEAK + day * 86400
    eng = Engine()
    batch: list = []
    for event in Simulation(rate, start, seconds, seed=seed, pools=[spec]).events():
        batch.append(event)
        if len(batch) >= 5000:
            store.write(eng.process(batch))
            batch = []
    store.write(eng.process(batch) + eng.flush())
    return start + WARMUP, start + seconds


def evidence(store: SQLiteStore, pool: str, window: tuple[float, float]) -> PoolEvidence:
    t0, t1 = window
    return pool_evidence(store, t0, t1, resolution=10, peak_s=t1 - t0)[pool]


def cases() -> list[Case]:
    mix = [Command("predict", 6, 40, 0.5, "torch"), Command("embed", 3, 12, 0.4),
           Command("ping", 1, 1, 0.3, "stdlib")]
    heavy = [Command("generate", 1, 120, 1.0, "transformers")]
    light = [Command("transform", 1, 8, 0.3, "pandas")]
    out = []
    for i, (size, busy, cmds, threads) in enumerate([
            (2, 0.92, light, 1), (3, 0.95, mix, 1), (4, 0.93, heavy, 1), (4, 0.97, mix, 1),
            (6, 0.94, light, 1), (8, 0.96, mix, 1), (8, 0.92, heavy, 1), (12, 0.95, light, 1),
            (16, 0.97, mix, 1), (16, 0.93, heavy, 1), (24, 0.96, light, 1), (32, 0.98, mix, 1),
            (2, 0.93, mix, 4), (4, 0.95, light, 2),
            (8, 0.20, mix, 1), (12, 0.15, light, 1), (16, 0.25, heavy, 1), (24, 0.10, mix, 1),
            (32, 0.22, light, 1), (10, 0.18, heavy, 1), (20, 0.28, mix, 1), (40, 0.12, light, 1),
            (6, 0.15, mix, 1), (14, 0.26, light, 1)]):
        out.append(Case(f"p{i:02d}", size, busy, cmds, threads))
    return out


def within(predicted: float, measured: float, rel: float = 0.2, floor: float = 0.001) -> bool:
    return abs(predicted - measured) <= max(rel * max(abs(measured), abs(predicted)), floor)


def sizing(seconds: float) -> tuple[int, int]:
    store = SQLiteStore(":memory:")
    print("pool  size busy%  Cs²   → size | P95 wait pred / meas      | util pred / meas  | ok")
    hits = total = 0
    for day, case in enumerate(cases()):
        rate = case.rate()
        window = simulate(store, 2 * day, case.spec(), rate, seconds, seed=day + 1)
        ev = evidence(store, case.name, window)
        rec = recommend.pool_size(ev)
        if rec is None:
            print(f"{case.name}  {case.size:4d} {ev.utilisation:5.0%}  no recommendation")
            total += 1
            continue
        after = evidence(store, case.name, simulate(store, 2 * day + 1, case.spec(rec.proposed),
                                                    rate, seconds, seed=day + 101))
        pw, pu = rec.impact["p95_queue_wait_s"]["after"], rec.impact["utilisation"]["after"]
        mw, mu = after.p95_wait_s or 0.0, after.utilisation
        ok = within(pw, mw) and within(pu, mu)
        hits += ok
        total += 1
        print(f"{case.name}  {case.size:4d} {ev.utilisation:5.0%} {ev.service_scv:5.2f} → "
              f"{rec.proposed:4d} | {pw * 1000:8.1f} / {mw * 1000:8.1f} ms | "
              f"{pu:5.1%} / {mu:5.1%} | {'yes' if ok else 'NO'}")
    print(f"sizing: {hits}/{total} predictions within 20 % ({hits / total:.0%}; need ≥ 80 %)")
    return hits, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=420)
    args = parser.parse_args()
    t0 = time.perf_counter()
    sizing(args.seconds)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
