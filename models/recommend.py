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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from models import queueing
from models import recommend_learning as learning
from models.recommend_evidence import PoolEvidence, SessionEvidence
from models.recommend_learning import Outcome

# Settings that are not per pool (``Application.get_env(:snakepit, ...)`` in Snakepit).
GLOBAL_SETTINGS = frozenset({"pool_queue_timeout", "pool_max_queue_size", "session_max_sessions"})
# Rough resident memory of one Python worker, for the cost line of a bigger pool.
WORKER_RSS_MB = 300


@dataclass
class RecommendSettings:
    """The ``[recommend]`` section of the configuration: targets, settings Snakepit does not
    report, and how an applied recommendation is validated."""

    # What a pool should achieve at its peak (the busiest peak_minutes of lookback_hours).
    target_p95_wait_ms: float = 50
    max_utilisation: float = 0.8
    lookback_hours: float = 24
    peak_minutes: float = 15
    # Settings Snakepit does not report: the deployment's pool_queue_timeout and its pools'
    # heartbeat timeout_ms (Snakepit's defaults).
    pool_queue_timeout_ms: int = 5000
    heartbeat_timeout_ms: int = 10000
    # A pool is only proposed smaller once this much history is stored.
    shrink_history_hours: float = 20
    # An applied recommendation is validated like a deploy: before_s against after_s, once
    # settle_s has passed and the after window's events are stored (lateness_s later).
    before_s: float = 900
    settle_s: float = 120
    after_s: float = 600
    lateness_s: float = 30
    check_every_s: float = 10


@dataclass(frozen=True)
class Targets:
    """What a pool should achieve at its peak, and the margins that keep findings quiet."""

    p95_wait_s: float = 0.05  # queue wait a caller tolerates at P95
    max_utilisation: float = 0.8  # sized-up pools keep this much headroom
    too_small_utilisation: float = 0.9  # past this, a pool is too small even with no waits seen
    too_large_utilisation: float = 0.3  # below this at peak, a pool is oversized
    min_requests: int = 2000  # at the peak: fewer, and no capacity finding is made
    min_saving: int = 2  # a smaller pool is proposed only if it saves this many workers
    # A pool is only cut once this much history is stored: a fresh deployment's first night
    # is not its peak (VPA waits for history the same way).
    shrink_history_s: float = 20 * 3600
    # Settings Snakepit does not report: the deployment's values (Snakepit's defaults).
    pool_queue_timeout_ms: int = 5000
    heartbeat_timeout_ms: int = 10_000


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
        if not self.id:  # stable while the setting keeps its value: dismissed stays dismissed
            self.id = hashlib.sha1(f"{self.pool}|{self.kind}|{self.setting}|{self.current}"
                                   .encode()).hexdigest()[:12]
        if not self.snippet:
            self.snippet = snippet(None if self.setting in GLOBAL_SETTINGS else self.pool,
                                   {self.setting: self.proposed})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def snippet(pool: str | None, settings: dict[str, Any]) -> str:
    """The change in Snakepit's own config vocabulary, ready to paste: a pool's key inside
    ``pools: [...]``, a global one (queue, sessions) at the top level."""
    parts = ", ".join(f"{k}: {_elixir(k, v)}" for k, v in settings.items())
    if pool is None:
        return f"config :snakepit, {parts}"
    return f"config :snakepit,\n  pools: [\n    %{{name: :{pool}, {parts}}}\n  ]"


def _elixir(key: str, value: Any) -> str:
    if key == "worker_ttl":
        return f"{{{int(value)}, :seconds}}"
    if isinstance(value, str):
        return f":{value}"
    return f"{value:_}" if isinstance(value, int) and value >= 10_000 else str(value)


def _ms(seconds: float) -> str:
    return "∞" if not math.isfinite(seconds) else f"{seconds * 1000:.0f} ms"


def _confidence(ev: PoolEvidence, targets: Targets) -> float:
    """Grows with the requests seen at the peak (as VPA's does with history): 0.5 at the
    minimum, 0.9 at 10x it."""
    n = max(ev.requests, 1.0)
    return round(min(0.95, 0.5 + 0.4 * math.log10(n / targets.min_requests)), 2) \
        if n >= targets.min_requests else 0.0


def pool_size(ev: PoolEvidence, targets: Targets = Targets(),
              correction: float = 1.0, kind: str | None = None) -> Recommendation | None:
    """``pool_size`` from the M/G/c model at the pool's peak: the fewest workers that keep the
    P95 queue wait under target with headroom, when the pool is measurably too small or
    clearly too large. ``correction`` scales the model's waits (learned from outcomes of
    ``kind``); a corrected answer that changes direction is not made."""
    if ev.servers is None or ev.requests < targets.min_requests \
            or not math.isfinite(ev.mean_service_s) or ev.mean_service_s <= 0:
        return None
    per, size = ev.threads_per_worker, ev.pool_size
    scv = ev.service_scv if math.isfinite(ev.service_scv) else 1.0
    down = ev.down_servers
    now = queueing.predict(ev.rate, ev.mean_service_s, scv, ev.servers, down)
    wait_now = ev.p95_wait_s if ev.p95_wait_s is not None else now.p95_wait_s * correction
    too_small = wait_now > targets.p95_wait_s or now.utilisation > targets.too_small_utilisation
    too_large = now.utilisation < targets.too_large_utilisation and ev.timeouts == 0 \
        and ev.end - ev.first_seen >= targets.shrink_history_s
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
    if kind is not None and kind != ("pool_too_small" if grow else "pool_too_large"):
        return None
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


def _nice(x: float) -> int:
    """Round up to 1, 2 or 5 times a power of ten: settings people write by hand."""
    if x <= 1:
        return 1
    p = 10 ** math.floor(math.log10(x))
    return next(int(m * p) for m in (1, 2, 5, 10) if m * p >= x)


def recycling(ev: PoolEvidence, targets: Targets = Targets(), max_share: float = 0.02,
              new_share: float = 0.005) -> Recommendation | None:
    """``worker_max_requests`` / ``worker_ttl`` so low that restarting workers costs more than
    ``max_share`` of the pool's capacity: raised so it costs ``new_share``."""
    if ev.servers is None or ev.mean_startup_s is None or ev.end <= ev.start:
        return None
    seconds = ev.end - ev.start
    by_count = ev.recycled.get("max_requests", 0.0)
    by_ttl = ev.recycled.get("ttl_expired", 0.0)
    planned = by_count + by_ttl
    if planned < 5:
        return None
    share = planned / seconds * ev.mean_startup_s * ev.threads_per_worker / ev.servers
    if share < max_share:
        return None
    if by_count >= by_ttl and ev.recycled_at_requests:
        setting, current = "worker_max_requests", int(ev.recycled_at_requests)
    elif ev.recycled_at_uptime_s:
        setting, current = "worker_ttl", int(ev.recycled_at_uptime_s)
    else:
        return None
    proposed = _nice(current * share / new_share)
    after_share = share * current / proposed
    scv = ev.service_scv if math.isfinite(ev.service_scv) else 1.0
    down_after = ev.down_servers * after_share / share
    before = queueing.predict(ev.rate, ev.mean_service_s, scv, ev.servers, ev.down_servers)
    after = queueing.predict(ev.rate, ev.mean_service_s, scv, ev.servers, down_after)
    unit = "requests" if setting == "worker_max_requests" else "s"
    return Recommendation(
        pool=ev.pool, kind="recycling_too_often", setting=setting, current=current,
        proposed=proposed,
        summary=(f"pool {ev.pool}: workers recycle every ~{current} {unit} and take "
                 f"{ev.mean_startup_s:.1f} s to start, so {share:.1%} of capacity is spent "
                 f"restarting; {setting} {current} → {proposed} cuts that to "
                 f"~{after_share:.1%} (P95 queue wait at peak {_ms(before.p95_wait_s)} → "
                 f"~{_ms(after.p95_wait_s)})"),
        impact={"capacity_restarting": {"before": share, "after": after_share,
                                        "low": after_share * 0.5, "high": after_share * 1.5},
                "p95_queue_wait_s": {"before": before.p95_wait_s, "after": after.p95_wait_s,
                                     "low": after.p95_wait_s * 0.5,
                                     "high": max(after.p95_wait_s * 1.5, 0.001)}},
        evidence={"window": [ev.start, ev.end], "recycled": ev.recycled,
                  "mean_startup_s": ev.mean_startup_s, "servers": ev.servers,
                  f"recycled_at_{'requests' if unit == 'requests' else 'uptime_s'}": current},
        confidence=round(min(0.9, 0.5 + planned / 100), 2),
        priority="medium" if share >= 0.05 else "low")


def memory_recycling(ev: PoolEvidence, per_worker_hour: float = 1.0) -> Recommendation | None:
    """``memory_threshold_mb`` set so close to the workers' normal memory that they recycle
    in storms (more than once per worker and hour)."""
    storms = ev.recycled.get("memory_threshold", 0.0)
    hours = (ev.end - ev.start) / 3600
    if not ev.pool_size or not ev.memory_threshold_mb or hours <= 0 or storms < 5:
        return None
    rate = storms / ev.pool_size / hours
    if rate < per_worker_hour:
        return None
    current = int(ev.memory_threshold_mb)
    proposed = _nice(current * 1.5)
    return Recommendation(
        pool=ev.pool, kind="memory_recycle_storm", setting="memory_threshold_mb",
        current=current, proposed=proposed,
        summary=(f"pool {ev.pool}: {storms:.0f} workers recycled on memory_threshold_mb "
                 f"{current} ({rate:.1f} per worker per hour); raise it to {proposed} (and "
                 f"check for a leak if the recycles continue)"),
        impact={"memory_recycles_per_worker_hour": {"before": rate, "after": None,
                                                    "low": 0.0, "high": rate}},
        evidence={"window": [ev.start, ev.end], "recycled": ev.recycled,
                  "memory_threshold_mb": current, "pool_size": ev.pool_size},
        confidence=0.6, priority="medium")


def queue_timeout(ev: PoolEvidence, targets: Targets = Targets()) -> Recommendation | None:
    """Requests time out in the queue although the pool is not short of capacity at its peak
    (bursts): ``pool_queue_timeout`` raised past the waits the bursts cause. When the pool is
    too small, :func:`pool_size` is the fix instead."""
    if ev.requests < targets.min_requests or ev.timeouts / ev.requests < 0.001:
        return None
    if not math.isfinite(ev.utilisation) or ev.utilisation > targets.too_small_utilisation:
        return None
    current_ms = targets.pool_queue_timeout_ms
    proposed = _nice(current_ms * 2)
    return Recommendation(
        pool=ev.pool, kind="queue_timeouts", setting="pool_queue_timeout", current=current_ms,
        proposed=proposed,
        summary=(f"pool {ev.pool}: {ev.timeouts:.0f} requests ({ev.timeouts / ev.requests:.2%})"
                 f" timed out in the queue at {ev.utilisation:.0%} busy, so bursts outlast "
                 f"pool_queue_timeout {current_ms} ms; raise it to {proposed} ms"),
        impact={"queue_timeouts": {"before": ev.timeouts, "after": 0.0, "low": 0.0,
                                   "high": ev.timeouts / 2}},
        evidence=_capacity_evidence(ev, ev.service_scv), confidence=0.6, priority="medium")


def sessions(ev: SessionEvidence, headroom: float = 1.5) -> Recommendation | None:
    """``session_max_sessions`` below what the deployment holds: Snakepit warns at 80 % and
    prunes; proposed so the peak sits at ``1 / headroom`` of it."""
    if ev.warnings < 3 or not ev.max_sessions or not ev.peak_sessions:
        return None
    proposed = _nice(ev.peak_sessions * headroom)
    if proposed <= ev.max_sessions:
        return None
    return Recommendation(
        pool="", kind="session_limit", setting="session_max_sessions",
        current=ev.max_sessions, proposed=proposed,
        summary=(f"{ev.warnings:.0f} session accumulation warnings: up to "
                 f"{ev.peak_sessions:.0f} sessions against session_max_sessions "
                 f"{ev.max_sessions}; raise it to {proposed} (or lower session_default_ttl)"),
        impact={"session_utilisation": {"before": ev.peak_sessions / ev.max_sessions,
                                        "after": ev.peak_sessions / proposed,
                                        "low": ev.peak_sessions / proposed * 0.8,
                                        "high": ev.peak_sessions / proposed * 1.2}},
        evidence={"accumulation_warnings": ev.warnings, "pruned": ev.pruned,
                  "peak_sessions": ev.peak_sessions, "max_sessions": ev.max_sessions},
        confidence=0.7, priority="medium")


def imbalance(pools: list[PoolEvidence], gap: float = 0.5) -> Recommendation | None:
    """Two pools that serve the same commands, one far busier than the other (R4.4): move
    workers so both run equally busy, total unchanged."""
    sized = [p for p in pools if p.servers and math.isfinite(p.utilisation)]
    best: tuple[float, PoolEvidence, PoolEvidence] | None = None
    for a in sized:
        for b in sized:
            d = a.utilisation - b.utilisation
            if a is not b and a.commands & b.commands and d >= gap \
                    and (best is None or d > best[0]):
                best = (d, a, b)
    if best is None:
        return None
    _, hot, cold = best
    load = hot.rate * hot.mean_service_s + cold.rate * cold.mean_service_s
    total = hot.pool_size + cold.pool_size
    # workers in proportion to each pool's offered load (per worker's threads)
    hot_share = hot.rate * hot.mean_service_s / load
    new_hot = min(total - 1, max(hot.pool_size + 1, round(total * hot_share)))
    moved = new_hot - hot.pool_size
    return Recommendation(
        pool=hot.pool, kind="pool_imbalance", setting="pool_size",
        current={hot.pool: hot.pool_size, cold.pool: cold.pool_size},
        proposed={hot.pool: new_hot, cold.pool: total - new_hot},
        summary=(f"pools {hot.pool} ({hot.utilisation:.0%} busy) and {cold.pool} "
                 f"({cold.utilisation:.0%}) serve the same commands; move {moved} workers: "
                 f"{hot.pool} {hot.pool_size} → {new_hot}, {cold.pool} {cold.pool_size} → "
                 f"{total - new_hot} (or route more of "
                 f"{', '.join(sorted(hot.commands & cold.commands))} to {cold.pool})"),
        impact={"utilisation": {hot.pool: {"before": hot.utilisation,
                                           "after": hot.utilisation * hot.pool_size / new_hot},
                                cold.pool: {"before": cold.utilisation,
                                            "after": cold.utilisation * cold.pool_size
                                            / (total - new_hot)}}},
        evidence={"window": [hot.peak_start, hot.peak_end],
                  "shared_commands": sorted(hot.commands & cold.commands)},
        confidence=0.6, priority="medium",
        snippet=(f"config :snakepit,\n  pools: [\n    %{{name: :{hot.pool}, pool_size: {new_hot}}},"
                 f"\n    %{{name: :{cold.pool}, pool_size: {total - new_hot}}}\n  ]"))


def environment(groups: dict[tuple[str, str, str], list[float]], dim: str,
                min_ratio: float = 1.2, alpha: float = 0.01, min_buckets: int = 10
                ) -> list[Recommendation]:
    """A Python environment (or library) measurably slower than another for the same command
    in the same pool (R5.5): Welch's t-test on the per-bucket mean service times, Bonferroni
    over the pairs tried."""
    from scipy import stats

    by_command: dict[tuple[str, str], dict[str, list[float]]] = {}
    for (pool, command, value), means in groups.items():
        if len(means) >= min_buckets:
            by_command.setdefault((pool, command), {})[value] = means
    pairs = [(k, slow, fast) for k, values in by_command.items()
             for slow in values for fast in values if slow != fast]
    out = []
    for (pool, command), slow, fast in pairs:
        a, b = by_command[(pool, command)][slow], by_command[(pool, command)][fast]
        ratio = float(np.mean(a) / np.mean(b))
        if ratio < min_ratio:
            continue
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        if not p * len(pairs) < alpha:
            continue
        out.append(Recommendation(
            pool=pool, kind=f"slower_{dim}", setting=dim, current=slow, proposed=fast,
            summary=(f"pool {pool}, command {command}: {dim} {slow} is {ratio:.2f}x slower "
                     f"than {fast} (mean service {np.mean(a) * 1000:.1f} ms vs "
                     f"{np.mean(b) * 1000:.1f} ms, p = {p:.1g}); run it on {fast}"),
            impact={"mean_service_s": {"before": float(np.mean(a)), "after": float(np.mean(b)),
                                       "low": float(np.mean(b)) * 0.9,
                                       "high": float(np.mean(b)) * 1.1}},
            evidence={"command": command, "buckets": [len(a), len(b)], "p_value": p,
                      "test": "welch_t_test_over_buckets, bonferroni"},
            confidence=round(min(0.95, 1 - p * len(pairs)), 2), priority="low",
            id=hashlib.sha1(f"{pool}|{command}|{dim}|{slow}".encode()).hexdigest()[:12],
            snippet=(f"# pool {pool}: run {command} with {fast} instead of {slow}"
                     if dim == "library" else
                     f'config :snakepit, python_executable: "{fast.split(":", 1)[-1]}"'
                     f"  # the {fast} environment")))
    return out


def heartbeat(ev: PoolEvidence, timeout_ms: int = 10_000) -> Recommendation | None:
    """Heartbeat timeouts on workers that do answer, only late (a long call holding the GIL
    delays the pong): ``heartbeat.timeout_ms`` raised past the pongs' P99 round trip, so busy
    workers stop being killed as dead. Timeouts with quick pongs are real failures: no
    setting to change."""
    if ev.heartbeat_timeouts < 3 or ev.heartbeat_pongs < 20 or ev.heartbeat_p99_s is None:
        return None
    p99_ms = ev.heartbeat_p99_s * 1000
    if p99_ms < 0.3 * timeout_ms:
        return None
    proposed = _nice(p99_ms * 3)
    return Recommendation(
        pool=ev.pool, kind="heartbeat_too_strict", setting="heartbeat.timeout_ms",
        current=timeout_ms, proposed=proposed,
        summary=(f"pool {ev.pool}: {ev.heartbeat_timeouts:.0f} heartbeat timeouts while pongs "
                 f"take up to {p99_ms:.0f} ms at P99 against timeout_ms {timeout_ms}: busy "
                 f"workers are taken for dead; raise it to {proposed}"),
        impact={"heartbeat_timeouts": {"before": ev.heartbeat_timeouts, "after": 0.0,
                                       "low": 0.0, "high": ev.heartbeat_timeouts / 2}},
        evidence={"window": [ev.start, ev.end], "pongs": ev.heartbeat_pongs,
                  "timeouts": ev.heartbeat_timeouts, "pong_p99_s": ev.heartbeat_p99_s},
        confidence=0.7, priority="medium",
        snippet=(f"config :snakepit,\n  pools: [\n    %{{name: :{ev.pool}, heartbeat: "
                 f"%{{timeout_ms: {proposed:_}}}}}\n  ]"))


def profile(pools: list[PoolEvidence], gain: float = 1.5, no_gain: float = 1.1
            ) -> list[Recommendation]:
    """``worker_profile`` where the same commands run both ways: capacity per worker is
    ``threads_per_worker / mean service`` (the service measured at the concurrency the threads
    ran at, so a GIL-bound command shows its slowdown). Threads worth ``gain`` x a process: the
    process pool should use them (I/O-bound); worth less than ``no_gain`` x: the thread pool
    should be processes (CPU-bound)."""
    measured = [p for p in pools if p.servers and p.worker_profile in ("process", "thread")
                and math.isfinite(p.mean_service_s) and p.mean_service_s > 0 and p.commands]
    out = []
    for proc in (p for p in measured if p.worker_profile == "process"):
        for thr in (p for p in measured if p.worker_profile == "thread"):
            if proc.commands != thr.commands:
                continue
            ratio = (thr.threads_per_worker / thr.mean_service_s) / (1 / proc.mean_service_s)
            if ratio >= gain:
                target, to, why = proc, "thread", "I/O-bound: threads multiply a worker"
            elif ratio < no_gain:
                target, to, why = thr, "process", "CPU-bound: threads add little"
            else:
                continue
            threads = thr.threads_per_worker
            settings = {"worker_profile": to, **({"threads_per_worker": threads}
                                                 if to == "thread" else {})}
            out.append(Recommendation(
                pool=target.pool, kind="worker_profile", setting="worker_profile",
                current=target.worker_profile, proposed=to,
                summary=(f"pool {target.pool}: {', '.join(sorted(target.commands))} run "
                         f"{ratio:.1f}x the requests per worker on {thr.pool}'s "
                         f"{threads} threads as on {proc.pool}'s processes ({why}); use "
                         f"worker_profile {to}"),
                impact={"capacity_per_worker": {"before": 1.0, "after": ratio if to ==
                                                "thread" else 1 / ratio}},
                evidence={"process_pool": proc.pool, "thread_pool": thr.pool,
                          "process_mean_service_s": proc.mean_service_s,
                          "thread_mean_service_s": thr.mean_service_s,
                          "threads_per_worker": threads},
                confidence=0.6, priority="low", snippet=snippet(target.pool, settings)))
    return out


PRIORITY = {"high": 0, "medium": 1, "low": 2}
CAPACITY_KINDS = ("pool_too_small", "pool_too_large")


def _sized(ev: PoolEvidence, targets: Targets, outcomes: Sequence[Outcome]
           ) -> Recommendation | None:
    """:func:`pool_size` with the correction learned for the direction it goes."""
    rec = pool_size(ev, targets)
    if rec is None or not outcomes:
        return rec
    factor = learning.correction(outcomes, ev.pool, rec.kind)
    return rec if factor == 1.0 else pool_size(ev, targets, factor, rec.kind)


def find(pools: dict[str, PoolEvidence], sessions_seen: SessionEvidence | None = None,
         groups: dict[str, dict[tuple[str, str, str], list[float]]] | None = None,
         outcomes: Sequence[Outcome] = (), targets: Targets = Targets()) -> list[Recommendation]:
    """Every finding over the evidence, corrected and demoted by earlier outcomes, most
    urgent first. ``groups`` maps ``python_env`` / ``library`` to :func:`group_means` output."""
    out: list[Recommendation] = []
    for ev in pools.values():
        for rec in (_sized(ev, targets, outcomes), recycling(ev, targets),
                    memory_recycling(ev), queue_timeout(ev, targets),
                    heartbeat(ev, targets.heartbeat_timeout_ms)):
            if rec is not None:
                out.append(rec)
    rec = imbalance(list(pools.values()))
    if rec is not None and not any(r.kind in CAPACITY_KINDS for r in out):
        out.append(rec)  # sizing each pool on its own already says it
    out += profile(list(pools.values()))
    if sessions_seen is not None:
        rec = sessions(sessions_seen)
        if rec is not None:
            out.append(rec)
    for dim, g in (groups or {}).items():
        out += environment(g, dim)
    for rec in out:
        if learning.demoted(outcomes, rec.kind):
            rec.confidence, rec.priority = round(rec.confidence / 2, 2), "low"
            rec.correction["demoted"] = True
    return sorted(out, key=lambda r: (PRIORITY[r.priority], -r.confidence, r.pool, r.kind))
