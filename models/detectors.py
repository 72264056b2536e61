"""Anomaly detectors with River's interface (``learn_one`` / ``score_one``), compared on the
load generator's labelled incidents by ``bench/alert_eval.py``.

- :class:`RobustBaseline`: distance from the rolling median in robust (MAD) units, one signal;
  follows the daily load shape because its window is short, and re-baselines after a level
  shift has lasted ``adapt_after`` minutes instead of alerting forever.
- :class:`RiverHalfSpaceTrees`: River's HalfSpaceTrees on min-max-scaled signals of a pool, one
  score for the whole pool.
- :class:`RiverPredictive`: River's PredictiveAnomalyDetection around a SNARIMAX forecaster,
  one signal (score 1.0 = the forecast error is past the dynamic threshold).

>>> d = RobustBaseline(min_samples=5)
>>> for x in [10, 11, 10, 12, 11, 10, 11]:
...     d.learn_one(x)
>>> d.score_one(11) < 3 < d.score_one(40)
True
"""

from __future__ import annotations

import statistics
from collections import deque

from river import anomaly, compose, linear_model, optim, preprocessing, time_series


class RobustBaseline:
    """Score = (x − rolling median) / (1.4826 · MAD), floored so a flat history is not brittle."""

    def __init__(self, window: int = 30, min_samples: int = 15, relative_floor: float = 0.05,
                 absolute_floor: float = 1e-9, adapt_after: int = 45) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.min_samples = min_samples
        self.relative_floor = relative_floor
        self.absolute_floor = absolute_floor
        self.adapt_after = adapt_after
        self.anomalous_run = 0

    @property
    def warm(self) -> bool:
        return len(self.values) >= self.min_samples

    def expected(self) -> float | None:
        return statistics.median(self.values) if self.values else None

    def score_one(self, x: float) -> float:
        if not self.warm:
            return 0.0  # a cold start stays quiet until it has learned enough
        median = statistics.median(self.values)
        mad = statistics.median(abs(v - median) for v in self.values)
        scale = max(1.4826 * mad, self.relative_floor * abs(median), self.absolute_floor)
        return (x - median) / scale

    def learn_one(self, x: float, anomalous: bool = False, adapt_after: int | None = None) -> None:
        """Learn normal minutes; an anomaly is learned only once it has lasted long enough to be
        the new normal (``adapt_after`` minutes, fewer right after a deploy), so incidents do
        not poison the baseline and a level shift does not alert forever."""
        self.anomalous_run = self.anomalous_run + 1 if anomalous else 0
        if not anomalous or self.anomalous_run >= (adapt_after or self.adapt_after):
            self.values.append(x)

    def state(self) -> dict:
        return {"values": list(self.values), "run": self.anomalous_run}

    def restore(self, state: dict) -> None:
        self.values.extend(state["values"])
        self.anomalous_run = state["run"]


class RiverHalfSpaceTrees:
    """River's HalfSpaceTrees over all of a pool's signals at once (scores in [0, 1])."""

    def __init__(self, seed: int = 42, min_samples: int = 60) -> None:
        self.model = compose.Pipeline(
            preprocessing.MinMaxScaler(),
            anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=60, seed=seed))
        self.seen = 0
        self.min_samples = min_samples

    def score_one(self, x: dict[str, float]) -> float:
        return self.model.score_one(x) if self.seen >= self.min_samples else 0.0

    def learn_one(self, x: dict[str, float]) -> None:
        self.model.learn_one(x)
        self.seen += 1


class RiverPredictive:
    """River's PredictiveAnomalyDetection: forecast the next minute with SNARIMAX, score the
    squared error against a running mean + ``n_std`` standard deviations of past errors."""

    def __init__(self, n_std: float = 4.0, warmup: int = 30) -> None:
        forecaster = time_series.SNARIMAX(
            p=3, d=0, q=1,
            regressor=preprocessing.StandardScaler() | linear_model.LinearRegression(
                optimizer=optim.SGD(0.01)))
        self.model = anomaly.PredictiveAnomalyDetection(forecaster, horizon=1, n_std=n_std,
                                                        warmup_period=warmup)

    def score_one(self, x: float) -> float:
        return self.model.score_one(None, float(x))

    def learn_one(self, x: float) -> None:
        self.model.learn_one(None, float(x))
