"""From per-pool minute signals to alerts: detection, pending → firing → resolved, one incident
per pool at a time, inhibition of symptoms, context, impact and a remediation in Snakepit terms.

Every closed minute, :meth:`AlertEngine.observe` scores each pool's signals against their
learned baselines (and static thresholds), advances each alert's state machine, and returns the
notifications to send (firing and resolved), Alertmanager-style: a fingerprint per alert, a
group per pool, an incident id shared by the alerts that fire together in one pool.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from models.detectors import ALERT_PROBABILITY, SeriesDetector, for_series
from models.signals import Signals
from models.silences import Silence

# Per-pool minute signals a rule can watch (models.signals, plus the derived memory growth).
SIGNALS = ("rate", "errors", "error_ratio", "p50_s", "p99_s", "queue_wait_p99_s", "crashes",
           "recycles", "queue_depth_max", "utilization", "memory_bytes", "memory_growth_bytes")


@dataclass(frozen=True)
class Rule:
    signal: str
    summary: str
    remediation: str
    pool: str = ""  # which pools: "" all, "gpu" one, "batch-*" a prefix; the most specific wins
    below: bool = False  # fire when the signal falls (throughput), not when it rises
    # The detector's anomaly probability for the minute (models.detectors), at least this ...
    probability: float = ALERT_PROBABILITY
    z: float = 6.0  # ... and at least this many robust deviations from the expected value
    min_ratio: float = 1.5  # ... and at least this multiple of the baseline
    min_abs: float = 0.0  # ... and at least this far from it in absolute terms
    for_minutes: int = 2
    resolve_minutes: int = 3
    severity: str = "warning"
    static_above: float | None = None  # also fire above this, baseline or not (an SLO)
    # Evidence needed before a ratio means anything, e.g. ("errors", 5): 1 error in 20 requests
    # at night is 5% but no incident.
    min_evidence: tuple[str, float] | None = None


DEFAULT_RULES = (
    Rule("queue_depth_max", "requests are queueing",
         "raise pool_size (or threads_per_worker for a thread pool); pool_max_queue_size bounds "
         "the queue and pool_queue_timeout sheds load faster", z=6, min_ratio=3, min_abs=10,
         for_minutes=1),
    Rule("p99_s", "P99 request latency rose",
         "compare python_exec_seconds with elixir_overhead_seconds: if Python time rose, look at "
         "the last deploy of this pool's python_env or library; if queue_wait rose, raise "
         "pool_size", z=6, min_ratio=1.6, min_abs=0.01, for_minutes=2),
    Rule("error_ratio", "the error ratio rose",
         "break errors down by command and worker_id; one bad worker: lower worker_max_requests "
         "or worker_ttl to recycle it; all workers: roll back the last deploy",
         z=6, min_ratio=3, min_abs=0.03, for_minutes=1, severity="critical",
         min_evidence=("errors", 10)),
    Rule("crashes", "workers are crashing",
         "a crash loop: check memory_threshold_mb, the python_env and heartbeat settings, and "
         "the last deploy; Snakepit restarts workers, so requests also queue meanwhile",
         z=4, min_ratio=1, min_abs=3, for_minutes=1, resolve_minutes=5, severity="critical"),
    Rule("p50_s", "median request latency rose",
         "a rise of the median means most requests slowed: compare python_exec_seconds with "
         "elixir_overhead_seconds, and check the last deploy of the python_env",
         z=6, min_ratio=1.6, min_abs=0.005, for_minutes=3),
    Rule("queue_wait_p99_s", "requests wait longer for a free worker",
         "the pool is short of workers: raise pool_size, or lower pool_queue_timeout to shed load",
         z=6, min_ratio=2, min_abs=0.05, for_minutes=2),
    Rule("utilization", "pool utilisation is unusually high",
         "workers are busy most of the time: raise pool_size before requests start to queue",
         z=6, min_ratio=1.4, min_abs=0.25, for_minutes=5),
    Rule("recycles", "workers are recycled unusually often",
         "check worker_max_requests, worker_ttl and memory_threshold_mb: a recycle storm costs "
         "worker start-up time on every request it delays", z=6, min_ratio=3, min_abs=5,
         for_minutes=2),
    Rule("rate", "throughput dropped",
         "requests stopped reaching the pool: check the callers, the node and the pool's "
         "supervisor (a pool that lost its workers rejects or queues requests)",
         z=6, min_ratio=3, min_abs=1.0, for_minutes=3, below=True),
    Rule("memory_growth_bytes", "worker memory is growing",
         "set memory_threshold_mb (or worker_max_requests) so Snakepit recycles workers before "
         "they exhaust memory; profile the command for the leak", z=6, min_ratio=0,
         min_abs=5e6, for_minutes=2, resolve_minutes=5),
)

def rule_from_dict(d: dict[str, Any]) -> Rule:
    """A rule from configuration or the API; what it leaves out comes from the default rule of
    its signal (so ``{"signal": "p99_s", "pool": "gpu", "static_above": 2.0}`` is enough)."""
    known = {f.name for f in fields(Rule)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown rule field(s) {unknown}; known: {sorted(known)}")
    signal = d.get("signal")
    if signal not in SIGNALS:
        raise ValueError(f"rule signal {signal!r} is not one of {', '.join(SIGNALS)}")
    base = next((r for r in DEFAULT_RULES if r.signal == signal), None)
    merged = {**(asdict(base) if base else {"summary": f"{signal} is out of bounds",
                                             "remediation": "see the related signals"}), **d}
    if merged.get("min_evidence") is not None:
        merged["min_evidence"] = tuple(merged["min_evidence"])
    try:
        rule = Rule(**merged)
        for name in ("probability", "z", "min_ratio", "min_abs"):
            float(getattr(rule, name))
        if not 0 <= float(rule.probability) <= 1:
            raise ValueError("probability must be within [0, 1]")
        if int(rule.for_minutes) < 1 or int(rule.resolve_minutes) < 1:
            raise ValueError("for_minutes and resolve_minutes must be at least 1")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"rule for {signal}: {exc}") from exc
    return rule


def rule_matches(rule: Rule, pool: str) -> int:
    """How specifically ``rule`` names ``pool``: -1 not at all, 0 every pool, 1+ a prefix
    (longer is more specific), 1000 the pool itself."""
    if not rule.pool:
        return 0
    if rule.pool.endswith("*"):
        return len(rule.pool) if pool.startswith(rule.pool[:-1]) else -1
    return 1000 if rule.pool == pool else -1


# An alert that started firing FLAP_FIRINGS times within an hour is flapping: it resolves only
# after FLAP_DAMPING times its resolve_minutes of good minutes (hysteresis), not at each dip.
FLAP_FIRINGS = 3
FLAP_DAMPING = 3

# A firing alert stays firing while its signal is still off the value expected when it started
# (by the rule's ratio and distance), until the shift has lasted this many minutes and is taken
# as the new normal (10 after a deploy), even though the detector adapts sooner.
NEW_NORMAL_MINUTES = 45
NEW_NORMAL_AFTER_DEPLOY = 10

# A saturated queue explains latency: while it fires for a pool, latency alerts there are
# inhibited (tracked, not notified), as Alertmanager's inhibit_rules do.
INHIBITS = {"queue_depth_max": ("p99_s", "p50_s", "queue_wait_p99_s", "utilization"),
            "crashes": ("recycles", "rate")}


@dataclass
class AlertState:
    rule: Rule
    pool: str
    detector: SeriesDetector
    status: str = "inactive"  # inactive | pending | firing
    bad: int = 0
    good: int = 0
    started: int | None = None
    peak: float = 0.0
    expected: float | None = None
    affected_requests: float = 0.0
    incident: str | None = None
    deploy: str | None = None  # the title of a deploy to this pool within the hour
    fired: list[int] = field(default_factory=list)  # minutes it started firing, last hour

    @property
    def fingerprint(self) -> str:
        key = f"{self.rule.signal}|pool={self.pool}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]


@dataclass
class AlertEngine:
    rules: tuple[Rule, ...] = DEFAULT_RULES
    overrides: tuple[Rule, ...] = ()  # from the configuration or the API; win over ``rules``
    states: dict[tuple[str, str], AlertState] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    _incidents: dict[str, str] = field(default_factory=dict)  # pool -> open incident id
    _memory: dict[str, float] = field(default_factory=dict)  # pool -> last minute's memory
    silences: list[Silence] = field(default_factory=list)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # fingerprint -> who, when

    def observe(self, minute: int, by_pool: dict[str, Signals],
                deploys: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Score one closed minute of every pool; returns the notifications to send.

        ``deploys`` names the pools deployed to within the last hour (``""``: all pools) and
        the deploy's title: there the detectors take a shifted level as the new normal after
        two anomalous minutes (``SeriesDetector.expect_change``)."""
        out: list[dict[str, Any]] = []
        deploys = deploys or {}
        for pool, signals in sorted(by_pool.items()):
            deploy = deploys.get(pool, deploys.get(""))
            if "memory_bytes" in signals:  # a leak shows as growth long before as a level
                previous = self._memory.get(pool)
                self._memory[pool] = signals["memory_bytes"]
                if previous is not None:
                    signals = {**signals,
                               "memory_growth_bytes": signals["memory_bytes"] - previous}
            for signal in self.signals():  # in order: queueing inhibits latency that minute
                x = signals.get(signal)
                rule = self.rule_for(pool, signal)
                if x is None or rule is None:
                    continue
                st = self.states.get((pool, signal))
                if st is None:
                    st = self.states[(pool, signal)] = AlertState(rule, pool,
                                                                  for_series(signal))
                st.rule = rule  # a changed rule applies from the next minute, baseline kept
                self._step(st, minute, x, signals, out, deploy)
        return out

    @staticmethod
    def flapping(st: AlertState) -> bool:
        return len(st.fired) >= FLAP_FIRINGS

    def signals(self) -> list[str]:
        """The signals any rule watches, defaults' order first."""
        return list(dict.fromkeys(r.signal for r in (*self.rules, *self.overrides)))

    def rule_for(self, pool: str, signal: str) -> Rule | None:
        """The most specific rule for a pool's signal; an override beats a default of equal
        specificity, a later override an earlier one."""
        best, best_score = None, -1
        for rule in (*self.rules, *self.overrides):
            score = rule_matches(rule, pool) if rule.signal == signal else -1
            if score >= best_score and score >= 0:
                best, best_score = rule, score
        return best

    def _step(self, st: AlertState, minute: int, x: float, signals: Signals,
              out: list[dict[str, Any]], deploy: str | None = None) -> None:
        rule, det = st.rule, st.detector
        if deploy:  # a shifted level after a deploy is the new normal sooner
            det.expect_change(minute, 120)
        unusual = det.score_one(x, minute) >= rule.probability
        z = det.z(x, minute)
        expected = det.expected(minute)
        base = expected or 0.0
        if rule.below:  # a drop to 1/min_ratio of the expected value, and by at least min_abs
            deviates = unusual and -z >= rule.z and x * rule.min_ratio <= base and \
                base - x >= rule.min_abs
        else:
            deviates = unusual and z >= rule.z and x >= base * rule.min_ratio and \
                x - base >= rule.min_abs
        breach = deviates or (rule.static_above is not None and x > rule.static_above) or \
            self._still_off(st, minute, x, deploy)
        if breach and rule.min_evidence is not None:
            name, least = rule.min_evidence
            breach = signals.get(name, 0) >= least
        det.learn_one(x, minute)
        st.deploy = deploy
        if breach:
            st.bad += 1
            st.good = 0
            st.peak = min(st.peak, x) if rule.below else max(st.peak, x)
            st.affected_requests += signals.get("rate", 0.0) * 60
            if st.status == "inactive":
                st.status, st.started, st.expected = "pending", minute, expected
                st.peak, st.affected_requests = x, signals.get("rate", 0.0) * 60
            if st.status == "pending" and st.bad >= rule.for_minutes:
                st.status = "firing"
                st.fired = [m for m in st.fired if m > minute - 3600] + [minute]
                st.incident = self._incidents.setdefault(
                    st.pool, hashlib.sha1(f"{st.pool}|{minute}".encode()).hexdigest()[:12])
                if not self._inhibited(st):
                    out.append(self._notification(st, minute, x, signals, "firing"))
        else:
            st.good += 1
            st.bad = 0
            if st.status == "pending":
                st.status = "inactive"
            elif st.status == "firing" and st.good >= rule.resolve_minutes * (
                    FLAP_DAMPING if self.flapping(st) else 1):
                st.status = "inactive"
                self.acks.pop(st.fingerprint, None)
                if not self._inhibited(st):
                    out.append(self._notification(st, minute, x, signals, "resolved"))
                if not any(s.status == "firing" for (p, _), s in self.states.items()
                           if p == st.pool):
                    self._incidents.pop(st.pool, None)

    @staticmethod
    def _still_off(st: AlertState, minute: int, x: float, deploy: str | None) -> bool:
        if st.status != "firing" or st.expected is None or st.started is None:
            return False
        limit = NEW_NORMAL_AFTER_DEPLOY if deploy else NEW_NORMAL_MINUTES
        if minute - st.started >= limit * 60:
            return False
        rule, base = st.rule, st.expected
        if rule.below:
            return x * rule.min_ratio <= base and base - x >= rule.min_abs
        return x >= base * rule.min_ratio and x - base >= rule.min_abs

    def snapshot(self) -> bytes:
        """Learned baselines and alert states, so a restart resumes instead of relearning (no
        new cold start) and does not page again for an incident already firing."""
        states = [{"pool": st.pool, "signal": st.rule.signal, "status": st.status, "bad": st.bad,
                   "good": st.good, "started": st.started, "peak": st.peak,
                   "expected": st.expected, "affected": st.affected_requests,
                   "incident": st.incident, "fired": st.fired,
                   "detector": base64.b64encode(st.detector.state()).decode()}
                  for st in self.states.values()]
        return orjson.dumps({"states": states, "incidents": self._incidents,
                             "memory": self._memory, "history": self.history[-500:],
                             "silences": [x.to_dict() for x in self.silences],
                             "acks": self.acks,
                             "overrides": [asdict(r) for r in self.overrides]})

    def restore(self, data: bytes, keep_overrides: bool = False) -> None:
        """Load a snapshot; its rule overrides too unless ``keep_overrides`` (the configured
        ones then win)."""
        obj = orjson.loads(data)
        if not keep_overrides:
            self.overrides = tuple(Rule(**r) for r in obj.get("overrides", ()))
        for item in obj["states"]:
            rule = self.rule_for(item["pool"], item["signal"])
            if rule is None:
                continue  # a rule that was removed from the configuration
            learned = item["detector"]  # (an older snapshot's detector is relearned)
            detector = SeriesDetector.restore(base64.b64decode(learned)) \
                if isinstance(learned, str) else for_series(rule.signal)
            st = AlertState(rule, item["pool"], detector, item["status"], item["bad"],
                            item["good"], item["started"], item["peak"], item["expected"],
                            item["affected"], item["incident"], fired=item.get("fired", []))
            self.states[(st.pool, rule.signal)] = st
        self._incidents.update(obj["incidents"])
        self._memory.update(obj["memory"])
        self.history.extend(obj["history"])
        self.silences.extend(Silence(**x) for x in obj.get("silences", ()))
        self.acks.update(obj.get("acks", {}))

    def _inhibited(self, st: AlertState) -> bool:
        return any(st.rule.signal in inhibited and
                   self.states.get((st.pool, source)) is not None and
                   self.states[(st.pool, source)].status == "firing"
                   for source, inhibited in INHIBITS.items())

    def _notification(self, st: AlertState, minute: int, x: float, signals: Signals,
                      status: str) -> dict[str, Any]:
        related = {}
        for (pool, signal), other in self.states.items():
            if pool == st.pool and signal != st.rule.signal and signal in signals:
                score = other.detector.z(signals[signal], minute)
                if abs(score) >= 3:
                    related[signal] = {"observed": signals[signal],
                                       "expected": other.detector.expected(minute),
                                       "robust_z": round(score, 1)}
        duration = minute + 60 - (st.started or minute)
        note = {
            "status": status, "alertname": f"snakepit_{st.rule.signal}_anomaly",
            "fingerprint": st.fingerprint, "group": f"pool={st.pool}",
            "incident_id": st.incident, "severity": st.rule.severity,
            "labels": {"pool": st.pool, "signal": st.rule.signal,
                       "severity": st.rule.severity},
            "starts_at": st.started, "at": minute + 60,
            "summary": f"{st.rule.summary} in pool {st.pool}",
            "context": {"observed": x if status == "firing" else st.peak,
                        "expected": st.expected, "window_s": 60, "related": related,
                        "after_deploy": st.deploy},
            "impact": {"affected_requests": round(st.affected_requests),
                       "duration_s": duration},
            "flapping": self.flapping(st),
            "remediation": st.rule.remediation,
        }
        if status == "resolved":
            note["recovery"] = (f"{st.rule.signal} back to {x:.4g} (baseline "
                                f"{st.detector.expected(minute) or 0:.4g}) after {duration // 60} min; "
                                f"peak was {st.peak:.4g}")
        self.history.append(note)
        return note
