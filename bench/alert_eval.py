"""Evaluate the detectors on the load generator's labelled incidents, each on top of normal
load with the daily shape: detection delay, caught or not, alert groups per incident, recovery
notifications, and false alerts per simulated normal day. Compares the robust baseline the
alert engine uses with River's HalfSpaceTrees (all of a pool's signals at once) and, per
signal, with River's PredictiveAnomalyDetection around a SNARIMAX forecaster.

    .venv/bin/python -m bench.alert_eval
"""

from __future__ import annotations

import time
from collections import defaultdict

from models.alerts import AlertEngine
from models.detectors import RiverHalfSpaceTrees, RiverPredictive
from models.signals import minute_signals
from simulator.model import INCIDENT_KINDS, Incident, Simulation
from streams.engine import Engine
from tests.support import T0

RATE = 10.0
INCIDENT_POOL = {"crash_loop": "gpu", "queue_saturation": "batch"}
# The signal each incident kind should move (for the per-signal comparison).
INCIDENT_SIGNAL = {"latency_regression": "p99_s", "error_burst": "error_ratio",
                   "crash_loop": "crashes", "memory_leak": "memory_growth_bytes",
                   "queue_saturation": "queue_depth_max"}
PAD_SIGNALS = tuple(INCIDENT_SIGNAL.values())


def run(seconds: int, incidents: list[Incident], seed: int,
        cost: dict[str, float] | None = None) -> tuple[list, dict]:
    """Simulate, aggregate and evaluate; returns (notifications, HST scores by (minute, pool)).
    ``cost`` collects CPU seconds of the engine and of alert scoring, and windows scored."""
    cost = {} if cost is None else cost
    eng = Engine()
    alerts = AlertEngine()
    hst: dict[str, RiverHalfSpaceTrees] = defaultdict(RiverHalfSpaceTrees)
    hst_scores: dict[tuple[int, str], float] = {}
    pad: dict[tuple[str, str], RiverPredictive] = defaultdict(RiverPredictive)
    memory: dict[str, float] = {}
    notes: list = []
    pad_scores: dict[tuple[int, str, str], float] = {}
    pending: dict[int, list] = defaultdict(list)
    batch: list = []

    def consume(rollups) -> None:
        for r in rollups:
            if r.resolution == 60 and not r.late:
                pending[r.bucket].append(r)
        for minute in sorted(m for m in pending if m + 60 <= eng.closed_until):
            t = time.process_time()
            signals = minute_signals(pending.pop(minute))
            by_pool = {pool: s for (_, pool), s in signals.items()}
            notes.extend(alerts.observe(minute, by_pool))
            cost["alerts_s"] = cost.get("alerts_s", 0) + time.process_time() - t
            cost["windows"] = cost.get("windows", 0) + sum(
                1 for s in by_pool.values() for k in alerts.signals() if k in s)
            for pool, s in by_pool.items():
                features = {k: v for k, v in s.items() if k != "memory_bytes"}
                hst_scores[(minute, pool)] = hst[pool].score_one(features)
                hst[pool].learn_one(features)
                if "memory_bytes" in s:
                    if pool in memory:
                        features["memory_growth_bytes"] = s["memory_bytes"] - memory[pool]
                    memory[pool] = s["memory_bytes"]
                for signal in PAD_SIGNALS:
                    if signal in features:
                        d = pad[(pool, signal)]
                        pad_scores[(minute, pool, signal)] = d.score_one(features[signal])
                        d.learn_one(features[signal])

    def process(events: list, flush: bool = False) -> list:
        t = time.process_time()
        out = eng.process(events) + (eng.flush() if flush else [])
        cost["engine_s"] = cost.get("engine_s", 0) + time.process_time() - t
        return out

    for event in Simulation(RATE, T0, seconds, seed=seed, incidents=incidents).events():
        batch.append(event)
        if len(batch) >= 2000:
            consume(process(batch))
            batch = []
    consume(process(batch, flush=True))
    return notes, hst_scores, pad_scores


def flagged_runs(scores: dict, pool: str, signal: str, at_least: int = 2) -> list[int]:
    """Minute ends at which PAD flagged ``at_least`` minutes in a row (its "alerts")."""
    run, starts = 0, []
    for (minute, p, s), score in sorted(scores.items()):
        if p != pool or s != signal:
            continue
        run = run + 1 if score >= 1.0 else 0
        if run == at_least:
            starts.append(minute + 60)
    return starts


def main() -> None:
    t0 = time.perf_counter()
    cost: dict[str, float] = {}
    day_notes, day_hst, day_pad = run(86_400, [], seed=100, cost=cost)
    firing = [n for n in day_notes if n["status"] == "firing"]
    hst_false = sum(1 for s in day_hst.values() if s > 0.9)
    print(f"\n## normal day ({RATE:.0f} req/s with the daily shape, 3 pools)\n"
          f"  robust baseline: {len(firing)} false alerts per day "
          f"({', '.join(sorted({n['alertname'] for n in firing})) or 'none'})\n"
          f"  River HalfSpaceTrees (score > 0.9): {hst_false} false minutes per day\n"
          f"  scoring: {cost['windows'] / cost['alerts_s']:,.0f} series-windows/s (a pool's "
          f"signal over one minute); {cost['alerts_s']:.2f} s CPU for the day = "
          f"{cost['alerts_s'] / (cost['alerts_s'] + cost['engine_s']):.1%} of engine + alerts "
          f"CPU ({cost['engine_s']:.1f} s engine)")
    print("\n## incidents (start 6 h into the day, 30 min long)\n"
          "  kind                 pool     caught  delay   groups  recovery  HST delay")
    start = T0 + 6 * 3600
    pad_delay: dict[str, float | None] = {}
    base_delay: dict[str, float | None] = {}
    for i, kind in enumerate(INCIDENT_KINDS):
        pool = INCIDENT_POOL.get(kind, "default")
        incident = Incident(kind, pool, start, start + 1800)
        notes, hst, pad = run(8 * 3600, [incident], seed=200 + i)
        signal = INCIDENT_SIGNAL[kind]
        pad_hits = [m for m in flagged_runs(pad, pool, signal) if m >= incident.start]
        pad_delay[kind] = (pad_hits[0] - incident.start) if pad_hits else None
        base_delay[kind] = None
        mine = [n for n in notes if n["labels"]["pool"] == pool]
        fired = [n for n in mine if n["status"] == "firing" and n["at"] >= incident.start]
        delay = (min(n["at"] for n in fired) - incident.start) if fired else None
        groups = {n["incident_id"] for n in fired if n["at"] <= incident.end + 600}
        recovered = any(n["status"] == "resolved" and n["at"] >= incident.end for n in mine)
        hst_hits = sorted(m + 60 for (m, p), s in hst.items()
                          if p == pool and s > 0.9 and m + 60 >= incident.start)
        hst_delay = hst_hits[0] - incident.start if hst_hits else None
        caught = delay is not None and delay <= 180
        base_delay[kind] = delay
        print(f"  {kind:<20} {pool:<8} {'yes' if caught else 'NO':<7} "
              f"{_s(delay):<7} {len(groups):<7} {'yes' if recovered else 'no':<9} {_s(hst_delay)}")
    print("\n## per signal: robust baseline (the alert engine) vs River PredictiveAnomalyDetection"
          " (SNARIMAX, flagged 2 minutes in a row)\n"
          "  signal               baseline: false/day  delay   PAD: false/day  delay   kept")
    for kind, signal in INCIDENT_SIGNAL.items():
        base_false = sum(1 for n in day_notes if n["status"] == "firing"
                         and n["labels"]["signal"] == signal)
        pad_false = sum(len(flagged_runs(day_pad, p, signal)) for p in ("default", "gpu", "batch"))
        better_pad = pad_delay[kind] is not None and pad_false <= base_false and (
            base_delay[kind] is None or pad_delay[kind] < base_delay[kind])
        print(f"  {signal:<20} {base_false:<20} {_s(base_delay[kind]):<7} {pad_false:<15} "
              f"{_s(pad_delay[kind]):<7} {'PAD' if better_pad else 'baseline'}")
    print(f"\n  (evaluated in {time.perf_counter() - t0:.0f} s)")


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


if __name__ == "__main__":
    main()
