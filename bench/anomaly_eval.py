"""Score anomaly detectors on the labelled corpus (``bench.anomaly_corpus``) with the field's
scoring method (``bench.anomaly_score``): a table per detector and cost profile, normalised so
that never firing scores 0 and a perfect detector 100, each detector's threshold optimised once
over the whole corpus; then, for the stream's detector at its documented threshold
(``models.detectors.ALERT_PROBABILITY``), pages per day outside the labelled windows per class
and its scoring cost.

    .venv/bin/python -m bench.anomaly_eval [--quick] [--only NAME]

``--quick`` scores one series per class and leaves out the slow River SNARIMAX detector.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from bench.anomaly_corpus import Series, generated, simulated
from bench.anomaly_score import PROFILES, normalised, optimise, pages_per_day
from bench.detectors_compared import RiverHalfSpaceTrees, RiverPredictive, RollingMedian
from models.detectors import ALERT_PROBABILITY, for_series


class _Never:
    def score_one(self, x: float, t: float) -> float:
        return 0.0

    def learn_one(self, x: float, t: float) -> None:
        pass


class _Random:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def score_one(self, x: float, t: float) -> float:
        return float(self.rng.random())

    def learn_one(self, x: float, t: float) -> None:
        pass


DETECTORS: dict[str, Callable[[Series], object]] = {
    "stream detector (models.detectors.for_series)": lambda s: for_series(s.signal),
    "previous: rolling median / MAD": lambda s: RollingMedian(),
    "River HalfSpaceTrees (value, hour)": lambda s: RiverHalfSpaceTrees(),
    "River PredictiveAnomalyDetection (SNARIMAX)": lambda s: RiverPredictive(),
    "random": lambda s: _Random(len(s.x)),
    "never fires": lambda s: _Never(),
}
STREAM = next(iter(DETECTORS))


def scores(make: Callable[[Series], object], s: Series) -> tuple[np.ndarray, float]:
    """Per-point scores (each point scored before it is learned), and the CPU seconds taken."""
    d = make(s)
    out = np.empty(len(s.x))
    t0 = time.process_time()
    for i, (x, t) in enumerate(zip(s.x.tolist(), s.t.tolist(), strict=True)):
        out[i] = d.score_one(x, t)
        d.learn_one(x, t)
    return out, time.process_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    corpus = generated(per_class=1 if args.quick else 3) + simulated()
    windows = [s.windows() for s in corpus]
    print(f"corpus: {len(corpus)} series, {sum(len(s.x) for s in corpus):,} points, "
          f"{sum(len(w) for w in windows)} labelled windows, "
          f"{sum(1 for w in windows if not w)} series without an anomaly", flush=True)
    names = [n for n in DETECTORS if args.only.lower() in n.lower()]
    if args.quick:
        names = [n for n in names if "SNARIMAX" not in n]
    print(f"\n| detector | {' | '.join(p.name for p in PROFILES)} |\n|---|---|---|---|")
    stream_scores: list[np.ndarray] = []
    cpu = 0.0
    for name in names:
        results = [scores(DETECTORS[name], s) for s in corpus]
        values = [r[0] for r in results]
        if name == STREAM:
            stream_scores, cpu = values, sum(r[1] for r in results)
        cells = []
        for p in PROFILES:
            best, th = optimise(values, windows, p)
            cells.append(f"{best:.1f} (threshold {th:.4g})")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    if not stream_scores:
        return
    fixed = [normalised(stream_scores, windows, ALERT_PROBABILITY, p) for p in PROFILES]
    print(f"\nstream detector at ALERT_PROBABILITY = {ALERT_PROBABILITY}: "
          + ", ".join(f"{p.name} {v:.1f}" for p, v in zip(PROFILES, fixed, strict=True)))
    per_class: dict[str, list[float]] = defaultdict(list)
    missed: dict[str, int] = defaultdict(int)
    for s, sc, w in zip(corpus, stream_scores, windows, strict=True):
        per_class[s.kind].append(pages_per_day(sc, s.t, w, ALERT_PROBABILITY))
        for lo, hi in w:
            missed[s.kind] += not (sc[lo:hi + 1] >= ALERT_PROBABILITY).any()
    print("\n| class | false pages per day (max of its series) | windows missed |\n|---|---|---|")
    for kind, pages in per_class.items():
        print(f"| {kind} | {max(pages):.2f} | {missed[kind]} |")
    points = sum(len(s.x) for s in corpus)
    print(f"\nscoring cost: {points / cpu:,.0f} points/s (score_one + learn_one, one series "
          f"and signal per point)")


if __name__ == "__main__":
    main()
