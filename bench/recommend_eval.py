"""How good the recommendations are (R12), against the simulator's queueing model.

Every run is a simulated deployment aggregated by the real engine into a real SQLite store; the
recommender reads it back as the API does. Reports:

- **Sizing:** 24 pools of different sizes, loads, profiles and service-time distributions, each
  too small or too large at its peak. The recommended ``pool_size`` is then simulated (another
  seed) and the P95 queue wait and utilisation the model predicted are compared with what the
  simulator measured. A prediction counts as right within 20 % (or 1 ms, the resolution a wait
  is reported at, when both are near zero).

- **Harmful change:** a right-sized pool halved (a ``config_change`` annotation), judged by
  the validation the API runs: "made worse" once the after window has passed, and a rollback to
  the previous size.
- **Learning:** a pool the model is biased on (thread profile: service slows as a worker's
  threads fill), 10 recommendations applied one after another as its load swings; the
  relative error of the predicted P95 queue wait, first three changes against last three.
- **Crying wolf:** a right-sized three-pool deployment (the simulator's default shape, with its
  crashes, recycling, sessions, bursts) over 30 simulated hours, the recommender asked every
  hour over its default 24 h lookback: recommendations made (should be none).

    .venv/bin/python -m bench.recommend_eval [--seconds 420] [--only sizing,harm,learning,day]
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

from api.recommendations import Recommender
from api.services import Services
from harness.data import T0
from models import recommend
from models.recommend import RecommendSettings
from models.recommend_evidence import PoolEvidence, pool_evidence
from models.recommend_learning import relative_error as rel_error
from simulator.model import Command, PoolSpec, Simulation, daily_shape, default_pools
from store.base import AnnotationRecord
from store.sqlite import SQLiteStore
from streams.engine import Engine

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
        rec = recommend.pool_size(ev, recommend.Targets(shrink_history_s=0))
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


class _NoSink:
    def submit(self, events: list) -> None:  # the recommender never ingests
        raise RuntimeError("not used")


def recommender(store: SQLiteStore, clock: list[float]) -> Recommender:
    config = RecommendSettings(before_s=300, settle_s=60, after_s=1200, lateness_s=0,
                             shrink_history_hours=0)
    return Recommender(Services(store=store, sink=_NoSink()), config, clock=lambda: clock[0])


def harm() -> bool:
    """A right-sized pool (8 workers, 60 % busy) halved; judged by the API's validation."""
    store, clock = SQLiteStore(":memory:"), [0.0]
    r = recommender(store, clock)
    case = Case("halved", 8, 0.6, [Command("predict", 2, 40, 0.5, "torch"),
                                   Command("embed", 1, 12, 0.4)])
    t0, t1 = simulate(store, 0, case.spec(), case.rate(), 420, seed=7)
    store.add_annotations([AnnotationRecord(t1, "config_change", "halve halved", pool="halved",
                                            tags={"setting": "pool_size", "from": "8",
                                                  "to": "4"})])
    _simulate_at(store, t1, case.spec(4), case.rate(), 420 + 60, seed=8)
    clock[0] = t1 + r.config.settle_s + r.config.after_s
    judged = r.check()
    rollbacks = [i for i in r.listing(t0, clock[0]) if i["kind"] == "rollback"]
    status = judged[0]["outcome"]["status"] if judged else "not judged"
    worst = judged[0]["outcome"]["regressions"][:1] if judged else []
    print(f"harm: pool halved 8 → 4: {status} "
          f"{r.config.settle_s + r.config.after_s:.0f} s after the change"
          + (f" ({worst[0]['slice']} {worst[0]['metric']} {worst[0]['change']:+.0%})"
             if worst else ""))
    for rb in rollbacks:
        print(f"  rollback: {rb['setting']} {rb['current']} → {rb['proposed']}")
    ok = status == "made_worse" and [(rb["setting"], rb["proposed"]) for rb in rollbacks] == \
        [("pool_size", 8)]
    print(f"harm: {'flagged and rolled back to 8' if ok else 'NOT flagged correctly'}")
    return ok


def _simulate_at(store: SQLiteStore, start: float, spec: PoolSpec, rate: float, seconds: float,
                 seed: int) -> None:
    eng = Engine()
    events = list(Simulation(rate, start, seconds, seed=seed, pools=[spec]).events())
    for i in range(0, len(events), 5000):
        store.write(eng.process(events[i:i + 5000]))
    store.write(eng.flush())


def learning(steps: int = 10) -> tuple[float, float]:
    """Ten applied pool_size changes on a pool the model gets wrong: thread profile, whose
    service slows as a worker's threads fill (the simulator's GIL share), which M/G/c with a
    fixed service time does not see. Error of the predicted P95 queue wait, first 3 vs last 3."""
    store, clock = SQLiteStore(":memory:"), [0.0]
    r = recommender(store, clock)
    mix = [Command("predict", 6, 40, 0.5, "torch"), Command("embed", 3, 12, 0.4)]
    size = 4
    # the load swings day by day (busy share of 4 workers x 4 threads): each day needs a change
    loads = [0.95, 0.25, 1.1, 0.3, 1.2, 0.28, 1.3, 0.3, 1.25, 0.27, 1.15, 0.3, 1.2, 0.3]
    errors: list[float] = []
    for day, busy in enumerate(loads):
        if len(errors) == steps:
            break
        rate = Case("threads", 4, busy, mix, threads=4).rate()
        start = PEAK + day * 86400
        _simulate_at(store, start, Case("threads", size, 0, mix, 4).spec(), rate, 420, day + 1)
        clock[0] = start + 420
        recs = [x for x in r.find(start + WARMUP, start + 420) if x.kind in
                ("pool_too_small", "pool_too_large")]
        if not recs:
            print(f"  day {day}: no change needed at pool_size {size}")
            continue
        rec = recs[0]
        r.applied(rec.id, start + 420, start + WARMUP, start + 420)
        _simulate_at(store, start + 420, Case("threads", rec.proposed, 0, mix, 4).spec(), rate,
                     r.config.settle_s + r.config.after_s, day + 101)
        clock[0] = start + 420 + r.config.settle_s + r.config.after_s
        (judged,) = r.check()
        o = judged["outcome"]
        predicted = rec.impact["p95_queue_wait_s"]["after"]
        err = rel_error(predicted, o["observed"] or 0.0)
        errors.append(err)
        print(f"  change {len(errors):2d}: pool_size {rec.current:2d} → {rec.proposed:2d}, "
              f"P95 wait predicted {predicted * 1000:6.1f} ms (correction "
              f"{rec.correction['wait_factor']:.2f}), observed "
              f"{(o['observed'] or 0) * 1000:6.1f} ms, error {err:.0%}")
        size = rec.proposed
    first, last = sum(errors[:3]) / 3, sum(errors[-3:]) / 3
    print(f"learning: mean error of the first 3 changes {first:.0%}, of the last 3 {last:.0%} "
          f"({'halved' if last <= first / 2 else 'NOT halved'}; {len(errors)} changes)")
    return first, last


def day(hours: int = 30, rate: float = 60.0) -> int:
    """A right-sized deployment over ``hours``: recommendations made over any hour."""
    store, clock = SQLiteStore(":memory:"), [0.0]
    r = Recommender(Services(store=store, sink=_NoSink()), RecommendSettings(),
                    clock=lambda: clock[0])
    start = T0 - 8 * 3600  # 00:00 UTC
    specs = default_pools(rate)
    eng = Engine()
    batch: list = []
    made: dict[str, str] = {}
    next_hour = start + 3600
    for event in Simulation(rate, start, hours * 3600, seed=11, pools=specs).events():
        if event.time >= next_hour:
            store.write(eng.process(batch))
            batch = []
            clock[0] = next_hour
            for rec in r.find(max(start, next_hour - 24 * 3600), next_hour - 120):
                made.setdefault(rec.id, f"hour {(next_hour - start) / 3600:.0f}: {rec.summary}")
            next_hour += 3600
        batch.append(event)
    for line in made.values():
        print("  " + line)
    sizes = ", ".join(f"{s.name} {s.pool_size}x{s.threads_per_worker}" for s in specs)
    print(f"day: {len(made)} recommendations over {hours} h of a right-sized deployment "
          f"({sizes}; {rate:.0f} req/s mean)")
    return len(made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=420)
    parser.add_argument("--only", default="sizing,harm,learning,day")
    args = parser.parse_args()
    t0 = time.perf_counter()
    parts = args.only.split(",")
    if "sizing" in parts:
        sizing(args.seconds)
    if "harm" in parts:
        harm()
    if "learning" in parts:
        learning()
    if "day" in parts:
        day()
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
