"""Detectors the stream's detector is measured against in ``bench.anomaly_eval``, each with
the stream's interface (``score_one(x, t)`` before ``learn_one(x, t)``):

- :class:`RollingMedian`: the previous production detector, distance from a 30-point rolling
  median in MAD units (score: that distance);
- :class:`RiverPredictive`: River's PredictiveAnomalyDetection around a SNARIMAX forecaster
  (score: River's, 1.0 = the forecast error is past its dynamic threshold);
- :class:`RiverHalfSpaceTrees`: River's HalfSpaceTrees on the min-max-scaled value and the
  hour of day.
"""

from __future__ import annotations

import statistics
from collections import deque

from river import anomaly, compose, linear_model, optim, preprocessing, time_series


class RollingMedian:
    def __init__(self, window: int = 30, min_samples: int = 15) -> None:
        self.values: deque[float] = deque(maxlen=window)
        self.min_samples = min_samples

    def score_one(self, x: float, t: float) -> float:
        if len(self.values) < self.min_samples:
            return 0.0
        median = statistics.median(self.values)
        mad = statistics.median(abs(v - median) for v in self.values)
        return abs(x - median) / max(1.4826 * mad, 0.05 * abs(median), 1e-9)

    def learn_one(self, x: float, t: float) -> None:
        self.values.append(x)


class RiverPredictive:
    def __init__(self, n_std: float = 4.0, warmup: int = 30) -> None:
        forecaster = time_series.SNARIMAX(
            p=3, d=0, q=1,
            regressor=preprocessing.StandardScaler() | linear_model.LinearRegression(
                optimizer=optim.SGD(0.01)))
        self.model = anomaly.PredictiveAnomalyDetection(forecaster, horizon=1, n_std=n_std,
                                                        warmup_period=warmup)

    def score_one(self, x: float, t: float) -> float:
        return self.model.score_one(None, float(x))

    def learn_one(self, x: float, t: float) -> None:
        self.model.learn_one(None, float(x))


class RiverHalfSpaceTrees:
    def __init__(self, seed: int = 42, min_samples: int = 60) -> None:
        self.model = compose.Pipeline(
            preprocessing.MinMaxScaler(),
            anomaly.HalfSpaceTrees(n_trees=25, height=8, window_size=250, seed=seed))
        self.seen = 0
        self.min_samples = min_samples

    @staticmethod
    def _features(x: float, t: float) -> dict[str, float]:
        return {"x": x, "hour": (t % 86_400) / 3600}

    def score_one(self, x: float, t: float) -> float:
        return self.model.score_one(self._features(x, t)) if self.seen >= self.min_samples \
            else 0.0

    def learn_one(self, x: float, t: float) -> None:
        self.model.learn_one(self._features(x, t))
        self.seen += 1
