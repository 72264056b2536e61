"""A labelled corpus of metric series for scoring anomaly detectors (``bench.anomaly_eval``).

Generated, not collected: each class reproduces one way real series broke the earlier
detector (issue: counts that are mostly zero, daily and weekly seasons, an autoscaling group
that changes level often, spikes, dips, drifts, a missing daily peak, a flat series that turns
noisy), plus the load simulator's five incidents as the stream sees them (per-pool minute
signals). Classes without an anomaly measure false pages alone.

A series is 5-minute points over 14 days starting on a Monday (as the public benchmarks'
series look), values and timestamps, with the anomalies' positions. Labelled windows follow the
field's convention: each anomaly is the centre of a window 10 % of the series long divided by
the number of anomalies. Same seed, same corpus.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

STEP = 300
DAYS = 14
START = 1_798_416_000  # Monday 2026-12-28 00:00 UTC
N = DAYS * 86_400 // STEP


@dataclass
class Series:
    name: str
    kind: str  # the class, for per-class false-page figures
    t: np.ndarray  # epoch seconds
    x: np.ndarray
    anomalies: list[int] = field(default_factory=list)  # index of each labelled anomaly
    signal: str = "generic"  # what models.detectors.for_series is told

    def windows(self) -> list[tuple[int, int]]:
        """``[start, end]`` index windows around each anomaly (10 % of the length in all)."""
        if not self.anomalies:
            return []
        half = int(0.1 * len(self.x) / len(self.anomalies) / 2)
        out: list[tuple[int, int]] = []
        for a in sorted(self.anomalies):
            lo, hi = max(0, a - half), min(len(self.x) - 1, a + half)
            if out and lo <= out[-1][1]:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
        return out


def _times(n: int = N, step: int = STEP) -> np.ndarray:
    return START + step * np.arange(n, dtype=float)


def _day(t: np.ndarray) -> np.ndarray:
    """A daily load shape in [0, 1]: low at night, a ramp in the morning, a peak after noon."""
    h = (t % 86_400) / 3600
    return np.clip(0.5 - 0.5 * np.cos((h - 3) / 24 * 2 * math.pi), 0, 1) ** 1.5


def _weekend(t: np.ndarray) -> np.ndarray:
    return ((t - START) // 86_400 % 7 >= 5).astype(float)


def _at(rng: np.random.Generator, lo: float = 0.35, hi: float = 0.95) -> int:
    return int(rng.uniform(lo, hi) * N)


def counts_zeros(rng: np.random.Generator, anomaly: bool) -> Series:
    """Errors per 5 minutes: mostly 0, a few 1s and 2s with the daily load; a burst."""
    t = _times()
    lam = rng.uniform(0.03, 0.3) * (0.2 + _day(t))
    a = []
    if anomaly:
        i = _at(rng)
        lam[i:i + 6] += rng.uniform(6, 15)
        a = [i]
    return Series("", "counts_zeros" if anomaly else "counts_zeros_normal", t,
                  rng.poisson(lam).astype(float), a, "errors")


def daily(rng: np.random.Generator, anomaly: str | None) -> Series:
    """Request rate with a strong daily shape; a spike, a dip, or nothing."""
    t = _times()
    base = rng.uniform(20, 200)
    x = base * (0.15 + _day(t)) * (1 + rng.normal(0, 0.05, len(t)))
    a = []
    if anomaly == "spike":
        for i in (_at(rng, 0.3, 0.6), _at(rng, 0.65, 0.95)):
            x[i] += base * rng.uniform(0.8, 1.5)
            a.append(i)
    elif anomaly == "dip":
        i = _at(rng)
        x[i:i + 8] *= rng.uniform(0.05, 0.3)
        a = [i]
    return Series("", f"daily_{anomaly or 'normal'}", t, x, a, "rate")


def weekly(rng: np.random.Generator, anomaly: bool) -> Series:
    """Daily shape, weekends at a third; a weekday-sized load on a weekend night (contextual:
    each value is normal at some hour of some day)."""
    t = _times()
    base = rng.uniform(50, 500)
    x = base * (0.1 + _day(t) * (1 - 0.65 * _weekend(t))) * (1 + rng.normal(0, 0.04, len(t)))
    a = []
    if anomaly:  # the second Saturday, 02:00-04:00, at a weekday afternoon's level
        i = (12 * 86_400 + 2 * 3600) // STEP
        x[i:i + 24] = base * (0.1 + 0.8) * (1 + rng.normal(0, 0.04, 24))
        a = [i]
    return Series("", "weekly_contextual" if anomaly else "weekly_normal", t, x, a, "rate")


def level_changes(rng: np.random.Generator) -> Series:
    """Instances in an autoscaling group: the level changes every few hours, and that is
    normal (no labels)."""
    t = _times()
    x = np.empty(len(t))
    i, level = 0, rng.uniform(2, 8)
    while i < len(t):
        run = int(rng.uniform(2, 12) * 3600 / STEP)
        x[i:i + run] = level
        level = max(1.0, level + rng.choice([-3, -2, -1, 1, 2, 3]))
        i += run
    x = x * rng.uniform(10, 20) + rng.normal(0, 0.5, len(t))
    return Series("", "level_changes", t, x, [], "generic")


def noise_with(rng: np.random.Generator, kind: str) -> Series:
    """A stationary latency-like series (lognormal noise) with spikes or dips."""
    t = _times()
    base = rng.uniform(0.05, 2.0)
    x = base * np.exp(rng.normal(0, 0.15, len(t)))
    a = []
    for i in sorted(_at(rng, lo, lo + 0.25) for lo in (0.3, 0.65)):
        if kind == "spikes":
            x[i:i + 2] = base * rng.uniform(3, 6)
        else:
            x[i:i + 6] = base * rng.uniform(0.1, 0.3)
        a.append(i)
    return Series("", kind, t, x, a, "p99_s")


def drift(rng: np.random.Generator) -> Series:
    """Memory that starts growing (a leak) after a stable week: a ramp to 3x over 12 hours."""
    t = _times()
    base = rng.uniform(2e8, 2e9)
    x = base * (1 + rng.normal(0, 0.01, len(t)))
    i = _at(rng, 0.5, 0.8)
    ramp = np.minimum(np.arange(len(t) - i) / (12 * 3600 / STEP), 1.0)
    x[i:] *= 1 + 2 * ramp
    return Series("", "drift", t, x, [i], "memory_bytes")


def missing_peak(rng: np.random.Generator) -> Series:
    """A daily peak that does not come one day (the traffic stopped at noon)."""
    t = _times()
    base = rng.uniform(30, 300)
    x = base * (0.1 + _day(t)) * (1 + rng.normal(0, 0.04, len(t)))
    day = int(rng.integers(6, 12))
    i = (day * 86_400 + 11 * 3600) // STEP
    x[i:i + 8 * 12] = base * 0.1 * (1 + rng.normal(0, 0.04, 8 * 12))
    return Series("", "missing_peak", t, x, [i], "rate")


def flat_then_noisy(rng: np.random.Generator) -> Series:
    """An idle disk: exactly 0 for days, then it starts working (noise around a level)."""
    t = _times()
    x = np.zeros(len(t))
    i = _at(rng, 0.4, 0.8)
    x[i:] = np.abs(rng.normal(rng.uniform(5, 50), rng.uniform(2, 10), len(t) - i))
    return Series("", "flat_then_noisy", t, x, [i], "generic")


CLASSES: dict[str, Callable[[np.random.Generator], Series]] = {
    "counts_zeros": lambda r: counts_zeros(r, True),
    "counts_zeros_normal": lambda r: counts_zeros(r, False),
    "daily_spike": lambda r: daily(r, "spike"),
    "daily_dip": lambda r: daily(r, "dip"),
    "daily_normal": lambda r: daily(r, None),
    "weekly_contextual": lambda r: weekly(r, True),
    "weekly_normal": lambda r: weekly(r, False),
    "level_changes": level_changes,
    "spikes": lambda r: noise_with(r, "spikes"),
    "dips": lambda r: noise_with(r, "dips"),
    "drift": drift,
    "missing_peak": missing_peak,
    "flat_then_noisy": flat_then_noisy,
}


def generated(per_class: int = 3, seed: int = 7) -> list[Series]:
    """``per_class`` series of every generated class."""
    out = []
    for c, (name, make) in enumerate(CLASSES.items()):
        for k in range(per_class):
            s = make(np.random.default_rng([seed, c, k]))
            s.name = f"{name}_{k}"
            out.append(s)
    return out


# The signal each of the simulator's incidents moves, as the stream's alert engine sees it.
INCIDENT_SIGNAL = {"latency_regression": "p99_s", "error_burst": "error_ratio",
                   "crash_loop": "crashes", "memory_leak": "memory_bytes",
                   "queue_saturation": "queue_depth_max"}
INCIDENT_POOL = {"crash_loop": "gpu", "queue_saturation": "batch"}


def _minutes(rollups: list) -> list:
    """What ``minute_signals`` reads (the rest would hold gigabytes over 30 hours)."""
    return [r for r in rollups if r.resolution == 60 and not r.late]


def simulated(hours: int = 30, rate: float = 5.0, seed: int = 300) -> list[Series]:
    """The simulator's incidents through the real engine: one per kind, 30 minutes long,
    24 h into the run (after a day of normal load), each as the minute series of the pool
    signal it moves."""
    from models.signals import minute_signals
    from simulator.model import INCIDENT_KINDS, Incident, Simulation
    from streams.engine import Engine

    out = []
    start = (START - hours * 3600) // 3600 * 3600
    for i, kind in enumerate(INCIDENT_KINDS):
        pool, signal = INCIDENT_POOL.get(kind, "default"), INCIDENT_SIGNAL[kind]
        at = start + 24 * 3600
        sim = Simulation(rate, start, hours * 3600, seed=seed + i,
                         incidents=[Incident(kind, pool, at, at + 1800)])
        eng, rows, batch = Engine(), [], []
        for event in sim.events():
            batch.append(event)
            if len(batch) >= 5000:
                rows += _minutes(eng.process(batch))
                batch = []
        rows += _minutes(eng.process(batch) + eng.flush())
        values = {m: s[signal] for (m, p), s in minute_signals(rows).items()
                  if p == pool and signal in s}
        t = np.array(sorted(values), dtype=float)
        x = np.array([values[m] for m in sorted(values)])
        out.append(Series(f"sim_{kind}", f"sim_{kind}", t, x,
                          [int(np.searchsorted(t, at))], signal))
    return out
