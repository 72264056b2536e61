"""Evaluate the alert engine, with the stream's detectors (``models.detectors``), on the load
generator's labelled incidents, each on top of normal load with the daily shape: caught within
3 minutes or not, detection delay, alert groups per incident, recovery notifications, and false
alerts per simulated normal day. (Detectors alone, on a wider labelled corpus and with the
field's scoring: ``bench.anomaly_eval``.)

    .venv/bin/python -m bench.alert_eval
"""

from __future__ import annotations

import time
from collections import defaultdict

from harness.data import T0
from models.alerts import AlertEngine
from models.signals import minute_signals
from simulator.model import INCIDENT_KINDS, Incident, Simulation
from streams.engine import Engine

RATE = 10.0
INCIDENT_POOL = {"crash_loop": "gpu", "queue_saturation": "batch"}


def run(seconds: int, incidents: list[Incident], seed: int,
        cost: dict[str, float] | None = None) -> list:
    """Simulate, aggregate and evaluate; returns the notifications. ``cost`` collects CPU
    seconds of the engine and of alert scoring, and the series-windows scored."""
    cost = {} if cost is None else cost
    eng = Engine()
    alerts = AlertEngine()
    notes: list = []
    pending: dict[int, list] = defaultdict(list)
    batch: list = []

    def consume(rollups) -> None:
        for r in rollups:
            if r.resolution == 60 and not r.late:
                pending[r.bucket].append(r)
        for minute in sorted(m for m in pending if m + 60 <= eng.clock.closed_until):
            t = time.process_time()
            signals = minute_signals(pending.pop(minute))
            by_pool = {pool: s for (_, pool), s in signals.items()}
            notes.extend(alerts.observe(minute, by_pool))
            cost["alerts_s"] = cost.get("alerts_s", 0) + time.process_time() - t
            cost["windows"] = cost.get("windows", 0) + sum(
                1 for s in by_pool.values() for k in alerts.signals() if k in s)

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
    return notes


def main() -> None:
    t0 = time.perf_counter()
    cost: dict[str, float] = {}
    day_notes = run(86_400, [], seed=100, cost=cost)
    firing = [n for n in day_notes if n["status"] == "firing"]
    print(f"\n## normal day ({RATE:.0f} req/s with the daily shape, 3 pools)\n"
          f"  {len(firing)} false alerts per day "
          f"({', '.join(sorted({n['alertname'] for n in firing})) or 'none'})\n"
          f"  scoring: {cost['windows'] / cost['alerts_s']:,.0f} series-windows/s (a pool's "
          f"signal over one minute); {cost['alerts_s']:.2f} s CPU for the day = "
          f"{cost['alerts_s'] / (cost['alerts_s'] + cost['engine_s']):.1%} of engine + alerts "
          f"CPU ({cost['engine_s']:.1f} s engine)")
    print("\n## incidents (start 6 h into the day, 30 min long)\n"
          "  kind                 pool     caught  delay   groups  recovery")
    start = T0 + 6 * 3600
    for i, kind in enumerate(INCIDENT_KINDS):
        pool = INCIDENT_POOL.get(kind, "default")
        incident = Incident(kind, pool, start, start + 1800)
        notes = run(8 * 3600, [incident], seed=200 + i)
        mine = [n for n in notes if n["labels"]["pool"] == pool]
        fired = [n for n in mine if n["status"] == "firing" and n["at"] >= incident.start]
        delay = (min(n["at"] for n in fired) - incident.start) if fired else None
        groups = {n["incident_id"] for n in fired if n["at"] <= incident.end + 600}
        recovered = any(n["status"] == "resolved" and n["at"] >= incident.end for n in mine)
        caught = delay is not None and delay <= 180
        print(f"  {kind:<20} {pool:<8} {'yes' if caught else 'NO':<7} "
              f"{_s(delay):<7} {len(groups):<7} {'yes' if recovered else 'no'}")
    print(f"\n  (evaluated in {time.perf_counter() - t0:.0f} s)")


def _s(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f}s"


if __name__ == "__main__":
    main()
