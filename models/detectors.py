"""The anomaly detector the stream runs per series and signal, built on River's online
statistics, scored on a labelled corpus by ``bench/anomaly_eval.py``.

For each point it forecasts an expected value, measures the point's distance from it in robust
units, and turns that distance into a calibrated anomaly probability:

1. **Expected value.** Three online forecasters learn side by side: the recent level alone, the
   level plus a time-of-day profile (24 hourly slots, interpolated), the level plus a
   day-of-week-and-hour profile (168 slots). The one with the smallest recent error is used,
   a profile only once its season has been seen: a day for time of day, a week for day of week.
   So a daily ramp, a quiet weekend, a value normal at noon but not at 3 am and a missing
   daily peak are all judged against what that hour usually brings.
2. **Distance.** The residual over a robust scale (a River ``EWMean`` of clipped absolute
   residuals) that cannot collapse to zero: it is floored by the series' own resolution (the
   usual size of a non-zero step between points, so a series of zeros and ones has a scale
   near one half) and, for counts, by the Poisson deviation ``sqrt(expected)``.
3. **Probability.** The tail of this series' own distances, peaks over a threshold: past the
   running 98th percentile ``u`` of ``|z|`` on the point's side (rises and falls apart, since
   latencies and rates are skewed; River ``Quantile``) the excesses are taken as exponential
   with a learned mean ``m``, so ``p = 1 - 0.02 · exp(-(|z| - u) / m)``. A series that is often
   jumpy gets a heavy tail and pages less for the same ``|z|`` than a calm one; one threshold,
   :data:`ALERT_PROBABILITY`, serves every series.
4. **New normals.** A Page-Hinkley test (River ``drift.PageHinkley``) on the distances decides
   when a shifted level is the new normal: the forecasters move to it at once, so a level shift
   is one alert, not an alert per point until a slow average catches up. After
   ``expect_change`` (a deploy or config change) two anomalous points in a row are enough.

Every point is learned, an outlier with its residual clipped to three scales, so an incident
does not become the baseline while it lasts. The resolution is learned from steps between two
points that are not anomalous, and from every step once five points in a row were (a flat
series that started to move): so neither an outlier nor a frozen baseline can set it. A cold start
is quiet for :data:`WARMUP_POINTS` points (30 minutes of minute signals).

>>> d = for_series("rate")
>>> t = 1_800_000_000
>>> for i in range(60):
...     d.learn_one(100 + (i % 5), t + 60 * i)
>>> d.score_one(102, t + 3600) < 0.9 < ALERT_PROBABILITY < d.score_one(400, t + 3600)
True
"""

from __future__ import annotations

import math
import pickle
import zlib
from collections import deque

import numpy as np
from river import drift, stats

# A point at or past this probability is anomalous; the alert rules page after ``for_minutes``
# such points in a row.
ALERT_PROBABILITY = 0.9999
WARMUP_POINTS = 30
DAY, WEEK = 86_400, 7 * 86_400

# Signals whose values are counts of events in a minute (small integers, many zeros).
COUNT_SIGNALS = frozenset({"errors", "crashes", "recycles", "queue_depth_max"})

_TAIL_Q = 0.98
_CLIP = 3.0  # residuals are learned clipped to this many scales
_SETTLE = 5  # anomalous points in a row after which the steps are learned as the resolution


class _Forecaster:
    """A level plus, optionally, a seasonal profile of ``slots`` interpolated slots over
    ``period`` seconds (additive), learned online."""

    def __init__(self, period: int | None, slots: int, level_rate: float, memory_s: float
                 ) -> None:
        self.period, self.slots = period, slots
        self.level_rate = level_rate
        self.memory_s = memory_s  # a slot's value remembers about this far back
        self.level: float | None = None
        self.profile = np.zeros(slots)
        self.weight = np.zeros(slots)
        self.error = stats.EWMean(fading_factor=0.01)  # recent absolute error, for selection

    def _slots(self, t: float) -> tuple[int, int, float]:
        h = (t % self.period) / self.period * self.slots - 0.5
        lo = math.floor(h)
        return lo % self.slots, (lo + 1) % self.slots, h - lo

    def season(self, t: float) -> float:
        if self.period is None:
            return 0.0
        i, j, w = self._slots(t)
        return (1 - w) * float(self.profile[i]) + w * float(self.profile[j])

    def predict(self, t: float) -> float:
        return (self.level or 0.0) + self.season(t)

    def learn(self, x: float, t: float, step: float, limit: float | None) -> None:
        if self.level is None:
            self.level = x
        error = x - self.predict(t)
        if not math.isfinite(error):
            return  # a value near the float limit; the caller learns no part of it either
        self.error.update(abs(error))
        if limit is not None:
            error = max(-limit, min(limit, error))
        self.level += self.level_rate * error
        if self.period is not None:
            i, j, w = self._slots(t)
            for k, share in ((i, 1 - w), (j, w)):
                if share <= 0:
                    continue
                self.weight[k] += share
                rate = max(1 / self.weight[k], step * self.slots / self.memory_s)
                self.profile[k] += rate * share * (1 - self.level_rate) * error  # the rest: level

    def shift(self, by: float) -> None:
        if math.isfinite(by):
            self.level = (self.level or 0.0) + by


def _shift_test() -> drift.PageHinkley:
    """Page-Hinkley on distances clipped to 8: four points at 8 scales, or more smaller ones."""
    return drift.PageHinkley(min_instances=10, delta=0.5, threshold=24.0)


class SeriesDetector:
    """One series' detector: ``score_one`` then ``learn_one`` for each point, in time order."""

    def __init__(self, counts: bool = False, warmup: int = WARMUP_POINTS) -> None:
        self.counts = counts
        self.warmup = warmup
        self.models = (_Forecaster(None, 1, 0.1, 1.0),
                       _Forecaster(DAY, 24, 0.02, 3 * DAY),
                       _Forecaster(WEEK, 168, 0.02, 3 * WEEK))
        self.scale = stats.EWMean(fading_factor=0.05)  # mean absolute residual
        self.resolution = stats.EWMean(fading_factor=0.05)  # mean non-zero |step|
        # per side (rises, falls): the 98th percentile of distances and the mean excess over it
        excess = stats.EWMean(fading_factor=0.05)  # (one mean excess, learned from both)
        self.tails = {side: (stats.Quantile(_TAIL_Q), excess) for side in (1, -1)}
        self.shifts = _shift_test()
        self.quick_until = 0.0  # expect_change: a quicker shift test until then
        self.recent: deque[tuple[float, float]] = deque(maxlen=4)
        self.n = 0
        self.excursion = 0  # anomalous points in a row
        self.first_t: float | None = None
        self.last: tuple[float, float] | None = None

    # -- what it expects ------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        return self.n >= self.warmup

    def model(self, t: float) -> _Forecaster:
        """The forecaster in use at ``t``: the most accurate one whose season has been seen."""
        seen = t - (self.first_t if self.first_t is not None else t)
        usable = [m for m in self.models if m.period is None or seen >= m.period]
        return min(usable, key=lambda m: m.error.get() * (1.0 if m.period is None else 1.1))

    def expected(self, t: float) -> float | None:
        return self.model(t).predict(t) if self.n else None

    def floor(self, expected: float) -> float:
        f = max(0.5 * self.resolution.get(), 1e-6 * abs(expected), 1e-12)
        return max(f, math.sqrt(max(expected, 0.25))) if self.counts else f

    def z(self, x: float, t: float) -> float:
        """Robust distance of ``x`` from the expected value at ``t`` (signed)."""
        e = self.expected(t)
        return 0.0 if e is None else self._distance(x, e)

    def _distance(self, x: float, expected: float) -> float:
        return (x - expected) / max(1.25 * self.scale.get(), self.floor(expected))

    # -- the River interface --------------------------------------------------------------

    def score_one(self, x: float, t: float) -> float:
        """The probability that ``x`` at ``t`` is anomalous given what was learned."""
        if not self.warm or not math.isfinite(x):
            return 0.0
        z = self.z(x, t)
        return 0.0 if math.isnan(z) else self._probability(z)  # nan: inf - inf, nothing known

    def _probability(self, z: float) -> float:
        quantile, excess = self.tails[1 if z >= 0 else -1]
        d = abs(z)
        u = max(quantile.get() or 0.0, 1.0)
        if d <= u:
            return _TAIL_Q * d / u
        m = max(excess.get(), 0.5)
        return 1 - (1 - _TAIL_Q) * math.exp(-(d - u) / m)

    def learn_one(self, x: float, t: float) -> None:
        if not math.isfinite(x):
            return
        if self.first_t is None:
            self.first_t = t
        step = t - self.last[1] if self.last is not None else 60.0
        expected = self.expected(t) if self.n else x
        z = self._distance(x, expected) if self.n else 0.0
        if not (math.isfinite(z) and math.isfinite(x - expected)):
            return  # values near the float limit: their differences overflow; not learned
        anomalous = self.warm and self._probability(z) >= ALERT_PROBABILITY
        after_normal = not self.excursion  # the step from the last point is a normal one
        self.excursion = self.excursion + 1 if anomalous else 0
        settled = self.excursion > _SETTLE  # a regime that lasts: its steps are its resolution
        if self.last is not None and x != self.last[0] and (
                (after_normal and not anomalous) or settled):
            self.resolution.update(abs(x - self.last[0]))
        limit = None
        if self.warm:
            limit = _CLIP * max(1.25 * self.scale.get(), self.floor(expected))
            self._learn_tail(z)
        residual = x - expected
        self.scale.update(abs(residual) if limit is None else min(abs(residual), limit))
        for m in self.models:
            m.learn(x, t, max(step, 1.0), limit)
        self.recent.append((x, t))
        self.n += 1
        self.last = (x, t)
        if self.warm:
            self._test_shift(z, t)

    def _learn_tail(self, z: float) -> None:
        quantile, excess = self.tails[1 if z >= 0 else -1]
        d, u = abs(z), quantile.get()
        quantile.update(min(d, 2 * max(u or 1.0, 1.0)))  # an outlier moves it a little
        if u is not None and d > u:
            m = max(excess.get(), 0.5)
            excess.update(min(d - u, 3 * m))

    def _test_shift(self, z: float, t: float) -> None:
        self.shifts.update(max(-8.0, min(8.0, z)))
        # a change is a lasting excursion: short bursts that add up in the test are not one
        quick = t < self.quick_until and self.excursion >= 2
        if not (quick or (self.shifts.drift_detected and self.excursion >= 3)):
            return
        # the new level is where the points of this excursion are (or the last few)
        points = list(self.recent)[-self.excursion:] if self.excursion else list(self.recent)
        for m in self.models:
            m.shift(float(np.median([x - m.predict(s) for x, s in points])))
        if quick:
            self.shifts = _shift_test()
        self.excursion = 0

    def expect_change(self, t: float, for_s: float = 3600.0) -> None:
        """A deploy or configuration change at ``t``: until ``t + for_s`` a shifted level is
        the new normal after two anomalous points in a row."""
        self.quick_until = t + for_s

    # -- state ----------------------------------------------------------------------------

    def state(self) -> bytes:
        """Everything learned, for a checkpoint (a restart resumes, no new cold start)."""
        return zlib.compress(pickle.dumps(self.__dict__, protocol=5))  # ~2-3 KB

    @classmethod
    def restore(cls, data: bytes) -> SeriesDetector:
        d = cls.__new__(cls)
        d.__dict__.update(pickle.loads(zlib.decompress(data)))  # our checkpoint, by state()
        return d


def for_series(signal: str = "generic") -> SeriesDetector:
    """A fresh detector for one series of ``signal`` (a count signal gets a Poisson floor)."""
    return SeriesDetector(counts=signal in COUNT_SIGNALS)
