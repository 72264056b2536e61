"""Scoring anomaly detectors the way the field's standard streaming benchmark does, written
from its published description (the benchmark's own data and code are held out).

- Each series has labelled anomaly windows (``bench.anomaly_corpus.Series.windows``).
- The first 15 % of a series is probation: the detector learns, nothing it says counts.
- A detection is any point whose score reaches the threshold. The first detection inside a
  window earns ``A_tp · σ(y)``, where ``y`` is its position in the window, -1 at the start and
  0 at the end, and ``σ(y) = 2 / (1 + e^(5y)) - 1`` (earlier is worth more, up to 0.987); later
  detections in the same window count for nothing. A window with no detection costs ``A_fn``.
- A detection outside every window costs ``A_fp``; after a window it costs ``A_fp · -σ(y)``
  with ``y`` its distance past the window's end in window lengths (a late but close
  detection costs less than a stray one).
- Three cost profiles: standard, low false positives, low false negatives.
- Normalised over the corpus so that a detector that never fires scores 0 and a perfect one
  (every window hit at its first point, nothing else) 100; the threshold is chosen once per
  detector and profile, over the whole corpus, to maximise the score.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROBATION = 0.15


@dataclass(frozen=True)
class Profile:
    name: str
    tp: float
    fp: float
    fn: float


PROFILES = (Profile("standard", 1.0, 0.11, 1.0), Profile("low_fp", 1.0, 0.22, 1.0),
            Profile("low_fn", 1.0, 0.11, 2.0))


def sigma(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def raw_score(detected: np.ndarray, windows: list[tuple[int, int]], p: Profile) -> float:
    """One series: ``detected`` is a bool per point, ``windows`` ``[start, end]`` indices."""
    first = int(PROBATION * len(detected))
    hits = np.flatnonzero(detected[first:]) + first
    total, hit = 0.0, [False] * len(windows)
    starts = [w[0] for w in windows]
    for i in hits:
        k = int(np.searchsorted(starts, i, side="right")) - 1  # the window starting at or before
        if k >= 0 and i <= windows[k][1]:
            lo, hi = windows[k]
            if not hit[k]:
                hit[k] = True
                total += p.tp * sigma((i - hi) / max(hi - lo, 1))
        elif k >= 0:
            lo, hi = windows[k]
            total += p.fp * sigma((i - hi) / max(hi - lo, 1))
        else:
            total -= p.fp
    return total - p.fn * hit.count(False)


def bounds(windows: list[list[tuple[int, int]]], p: Profile) -> tuple[float, float]:
    """(never fires, perfect) raw scores of a corpus."""
    n = sum(len(w) for w in windows)
    return -p.fn * n, p.tp * sigma(-1.0) * n


def normalised(scores: list[np.ndarray], windows: list[list[tuple[int, int]]], threshold: float,
               p: Profile) -> float:
    null, perfect = bounds(windows, p)
    raw = sum(raw_score(s >= threshold, w, p) for s, w in zip(scores, windows, strict=True))
    return 100 * (raw - null) / (perfect - null)


def optimise(scores: list[np.ndarray], windows: list[list[tuple[int, int]]], p: Profile,
             candidates: int = 120) -> tuple[float, float]:
    """(best normalised score, its threshold): a grid over the scores' own upper quantiles,
    then a finer grid around the best."""
    values = np.concatenate([s[int(PROBATION * len(s)):] for s in scores])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, math.inf
    qs = 1 - np.geomspace(0.5, 1e-5, candidates)
    grid = np.unique(np.quantile(values, qs))
    grid = np.append(grid, math.inf)
    best = max((normalised(scores, windows, th, p), th) for th in grid)
    i = int(np.searchsorted(grid, best[1]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if math.isfinite(hi):
        fine = np.linspace(lo, hi, 21)
        best = max([best, *((normalised(scores, windows, th, p), th) for th in fine)])
    return best


def pages_per_day(scores: np.ndarray, t: np.ndarray, windows: list[tuple[int, int]],
                  threshold: float, for_points: int = 2, resolve_points: int = 3) -> float:
    """Pages outside the labelled windows per day of that time, as the stream's alert rules
    would page: ``for_points`` in a row at or past the threshold start one, and it ends after
    ``resolve_points`` below."""
    first = int(PROBATION * len(scores))
    outside = np.ones(len(scores), bool)
    outside[:first] = False
    for lo, hi in windows:
        outside[lo:hi + 1] = False
    pages, run, quiet, firing = 0, 0, resolve_points, False
    for above, out in zip(scores >= threshold, outside, strict=True):
        if not out:
            run, quiet, firing = 0, resolve_points, False
            continue
        run, quiet = (run + 1, 0) if above else (0, quiet + 1)
        if not firing and run >= for_points:
            pages, firing = pages + 1, True
        elif firing and quiet >= resolve_points:
            firing = False
    step = float(np.median(np.diff(t))) if len(t) > 1 else 60.0
    days = outside.sum() * step / 86_400
    return pages / days if days else 0.0
