"""Recommendations: a Snakepit setting, its proposed value, and what changing it will do (R12).

Each finding reads a pool's :class:`~models.recommend_evidence.PoolEvidence` and either stays
silent or names one setting with the current and proposed value, the impact it predicts (with
a range), the numbers it rests on, a confidence and a priority. Every rule fires only past a
margin on both sides (a pool is "too small" above one utilisation, "too large" below a much
lower one), so a right-sized deployment gets no recommendation at all: a recommender that
cries wolf is worse than none.

Pool sizing uses the M/G/c model of :mod:`models.queueing`; its predictions are corrected per
pool by what earlier applied recommendations measured (:mod:`models.recommend_learning`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from models import queueing
from models.recommend_evidence import PoolEvidence

# Rough resident memory of one Python worker, for the cost line of a bigger pool.
WORKER_RSS_MB = 300


@dataclass(frozen=True)
class Targets:
    """What a pool should achieve at its peak, and the margins that keep findings quiet."""

    p95_wait_s: float = 0.05  # queue wait a caller tolerates at P95
    max_utilisation: float = 0.8  # sized-up pools keep this much headroom
    too_small_utilisation: float = 0.9  # past this, a pool is too small even with no waits seen
    too_large_utilisation: float = 0.3  # below this at peak, a pool is oversized
    min_requests: int = 2000  # at the peak: fewer, and no capacity finding is made
    min_saving: int = 2  # a smaller pool is proposed only if it saves this many workers


@dataclass
class Recommendation:
    """One proposed change (the API's JSON is :meth:`to_json`)."""

    pool: str
    kind: str
    setting: str
    current: Any
    proposed: Any
    summary: str
    impact: dict[str, Any]
    evidence: dict[str, Any]
    confidence: float
    priority: str
    snippet: str = ""
    id: str = ""
    correction: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id:  # stable: the same finding on the same pool keeps its id
            self.id = hashlib.sha1(f"{self.pool}|{self.kind}|{self.setting}".encode()
                                   ).hexdigest()[:12]
        if not self.snippet:
            self.snippet = snippet(self.pool, {self.setting: self.proposed})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def snippet(pool: str, settings: dict[str, Any]) -> str:
    """The change in Snakepit's own config vocabulary, ready to paste."""
    parts = ", ".join(f"{k}: {_elixir(v)}" for k, v in settings.items())
    return f"config :snakepit,\n  pools: [\n    %{{name: :{pool}, {parts}}}\n  ]"


def _elixir(value: Any) -> str:
    if isinstance(value, str):
        return f":{value}"
    return str(value)


def _ms(seconds: float) -> str:
    return "∞" if not math.isfinite(seconds) else f"{seconds * 1000:.0f} ms"


def _confidence(ev: PoolEvidence, targets: Targets) -> float:
    """Grows with the requests seen at the peak (as VPA's does with history): 0.5 at the
    minimum, 0.9 at 10x it."""
    n = max(ev.requests, 1.0)
    return round(min(0.95, 0.5 + 0.4 * math.log10(n / targets.min_requests)), 2) \
        if n >= targets.min_requests else 0.0


def pool_size(ev: PoolEvidence, targets: Targets = Targets(),
              correction: float = 1.0) -> Recommendation | None:
    """``pool_size`` from the M/G/c model at the pool's peak: the fewest workers that keep the
    P95 queue wait under target with headroom, when the pool is measurably too small or
    clearly too large. ``correction`` scales the model's waits (learned from outcomes)."""
    if ev.servers is None or ev.requests < targets.min_requests \
            or not math.isfinite(ev.mean_service_s) or ev.mean_service_s <= 0:
        return None
    per, size = ev.threads_per_worker, ev.pool_size
    scv = ev.service_scv if math.isfinite(ev.service_scv) else 1.0
    down = ev.down_servers
    now = queueing.predict(ev.rate, ev.mean_service_s, scv, ev.servers, down)
    wait_now = ev.p95_wait_s if ev.p95_wait_s is not None else now.p95_wait_s * correction
    too_small = wait_now > targets.p95_wait_s or now.utilisation > targets.too_small_utilisation
    too_large = now.utilisation < targets.too_large_utilisation and ev.timeouts == 0
    if not too_small and not too_large:
        return None
    # the target as the model sees it: a learned correction > 1 means waits run longer
    best = queueing.smallest_meeting(ev.rate, ev.mean_service_s, scv,
                                     targets.p95_wait_s / correction,
                                     targets.max_utilisation, per, down)
    if best is None or best == size or (too_large and size - best < targets.min_saving):
        return None
    if too_small and best < size:
        return None
    after = queueing.predict(ev.rate, ev.mean_service_s, scv, best * per, down)
    p95_after = after.p95_wait_s * correction
    grow = best > size
    impact = {
        "p95_queue_wait_s": {"before": wait_now, "after": p95_after,
                             "low": p95_after * 0.5, "high": max(p95_after * 1.5, 0.001)},
        "utilisation": {"before": now.utilisation, "after": after.utilisation,
                        "low": after.utilisation * 0.9, "high": min(after.utilisation * 1.1, 1)},
        "workers": best - size, "rss_mb": (best - size) * WORKER_RSS_MB,
    }
    if grow:
        summary = (f"pool {ev.pool} is too small at its peak ({ev.rate:.0f} req/s, "
                   f"{now.utilisation:.0%} busy, P95 queue wait {_ms(wait_now)}): "
                   f"pool_size {size} → {best} brings P95 queue wait to ~{_ms(p95_after)} "
                   f"at {after.utilisation:.0%} busy; +{best - size} workers, "
                   f"~+{(best - size) * WORKER_RSS_MB} MB RSS")
    else:
        summary = (f"pool {ev.pool} is oversized: {now.utilisation:.0%} busy at its peak "
                   f"({ev.rate:.0f} req/s); pool_size {size} → {best} still keeps P95 queue "
                   f"wait ~{_ms(p95_after)} at {after.utilisation:.0%} busy and frees "
                   f"~{(size - best) * WORKER_RSS_MB} MB RSS")
    return Recommendation(
        pool=ev.pool, kind="pool_too_small" if grow else "pool_too_large",
        setting="pool_size", current=size, proposed=best, summary=summary, impact=impact,
        evidence=_capacity_evidence(ev, scv),
        confidence=_confidence(ev, targets),
        priority="high" if grow and (ev.timeouts or now.utilisation >= 1) else
        "medium" if grow else "low",
        correction={"wait_factor": correction})


def _capacity_evidence(ev: PoolEvidence, scv: float) -> dict[str, Any]:
    return {"window": [ev.peak_start, ev.peak_end], "requests": ev.requests,
            "rate_per_s": ev.rate, "mean_service_s": ev.mean_service_s, "service_scv": scv,
            "measured_p95_queue_wait_s": ev.p95_wait_s, "timeouts": ev.timeouts,
            "pool_size": ev.pool_size, "threads_per_worker": ev.threads_per_worker,
            "workers_restarting": ev.down_servers,
            "model": "M/G/c, Allen–Cunneen (Erlang C x (1 + Cs²)/2), exponential wait tail"}
