"""Learning from applied recommendations (R12.5): predicted vs observed, per pool and kind.

Each validated change leaves an :class:`Outcome`: what the model predicted (before any
correction), what was then measured. The correction of a pool's queueing predictions is a
Bayesian update of one parameter, the log ratio observed / predicted: a normal prior centred
on 0 (the model is right) with variance ``PRIOR_VAR``, each outcome an observation with
variance ``NOISE_VAR``; the correction is the exponential of the posterior mean. A model that
is off by a steady factor on a pool (service times heavier-tailed than Allen–Cunneen assumes,
a thread profile whose service slows with concurrency) is corrected within a few changes; one
outcome that was noise moves it only part of the way.

A kind whose last ``DEMOTE_AFTER`` outcomes all failed (no effect, or made worse) is demoted:
its recommendations are kept but shown with half the confidence and low priority.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PRIOR_VAR = 0.5  # log scale: the model is off by up to ~2x before any evidence
NOISE_VAR = 0.1  # one outcome's own noise (a 10-minute after window), log scale
FLOOR_S = 0.001  # waits below a millisecond compare as a millisecond
DEMOTE_AFTER = 3


@dataclass(frozen=True, slots=True)
class Outcome:
    time: float
    pool: str
    kind: str
    status: str  # validated | no_effect | made_worse | not_enough_data
    predicted: float | None  # the model's raw prediction of the judged metric
    observed: float | None

    @property
    def log_ratio(self) -> float | None:
        """log(observed / predicted); None when there is nothing to learn from (no wait
        predicted nor seen: a pool with room to spare says nothing about the wait's scale)."""
        if self.predicted is None or self.observed is None:
            return None
        if not (math.isfinite(self.predicted) and math.isfinite(self.observed)):
            return None
        if max(self.predicted, self.observed) < FLOOR_S:
            return None
        return math.log(max(self.observed, FLOOR_S) / max(self.predicted, FLOOR_S))


def correction(outcomes: Iterable[Outcome], pool: str, kind: str) -> float:
    """The factor to multiply the model's predicted waits by for ``kind`` on ``pool`` (1.0: no
    evidence). Per kind: growing and shrinking a pool move it to different operating points,
    where the model errs differently (a thread pool cut to few workers runs its threads fuller
    and slower than the service times measured before)."""
    xs = [o.log_ratio for o in outcomes if o.pool == pool and o.kind == kind]
    xs = [x for x in xs if x is not None]
    if not xs:
        return 1.0
    precision = len(xs) / NOISE_VAR + 1 / PRIOR_VAR
    return math.exp(sum(xs) / NOISE_VAR / precision)


def demoted(outcomes: Sequence[Outcome], kind: str) -> bool:
    judged = [o for o in outcomes if o.kind == kind and o.status != "not_enough_data"]
    last = sorted(judged, key=lambda o: o.time)[-DEMOTE_AFTER:]
    return len(last) == DEMOTE_AFTER and all(o.status != "validated" for o in last)


def relative_error(predicted: float, observed: float) -> float:
    """|predicted - observed| / observed, waits under a millisecond taken as a millisecond."""
    p, o = max(predicted, FLOOR_S), max(observed, FLOOR_S)
    return abs(p - o) / o
