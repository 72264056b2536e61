"""``/v1/recommendations``: settings to change, applied, validated, rolled back, learned from.

Recommendations are recomputed from the stored rollups on each request (``models.recommend``
over the last ``lookback``), so they follow the data; a finding keeps its id (pool, kind,
setting) from one request to the next. What happens to one is kept as annotations, the same
record a user sees on the charts:

- ``POST /v1/recommendations/{id}/applied`` records a ``config_change`` annotation naming the
  recommendation, the setting, the old and new value and the model's prediction;
- ``POST /v1/recommendations/{id}/dismiss`` an ``other`` annotation (``action: dismissed``).

Any other ``config_change`` annotation that names a ``setting`` (tags ``setting``, ``from``,
``to``) is validated the same way, and so is a ``pool_size`` change seen in the pools' own
reports that nobody annotated: a change made by hand that hurts gets its rollback too.

Once an applied change's after window has passed, the judge compares before and after with the
benchmark method (as a deploy is judged: two finished benchmark runs of scenario
``recommendation``, block bootstrap, Holm) and stores the outcome on the after run: validated
(improved), no effect, made worse, with the intervals; and predicted vs observed, which the
learning step turns into a per-pool correction. A change that made things worse yields a
rollback recommendation to the previous value, with what got worse by how much.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel

from api import benchmarks as bm
from api.periodic import Periodic
from api.problems import Problem
from api.services import Services, get_services
from models import recommend
from models import recommend_learning as learning
from models.recommend_evidence import group_means, pool_evidence, session_evidence
from query.engine import QueryError, parse_time
from store.base import AnnotationRecord

log = logging.getLogger(__name__)
router = APIRouter(tags=["recommendations"])
actions = APIRouter(tags=["recommendations"])
SCENARIO = "recommendation"
HISTORY_S = 35 * 86400  # how far back applied and dismissed recommendations are looked up
STATES = ("open", "applied", "validated", "no_effect", "made_worse", "dismissed",
          "not_enough_data")
STATUS = {"improvement": "validated", "no_change": "no_effect", "regression": "made_worse"}


def targets(config: recommend.RecommendSettings) -> recommend.Targets:
    return recommend.Targets(p95_wait_s=config.target_p95_wait_ms / 1000,
                             max_utilisation=config.max_utilisation,
                             shrink_history_s=config.shrink_history_hours * 3600,
                             pool_queue_timeout_ms=config.pool_queue_timeout_ms,
                             heartbeat_timeout_ms=config.heartbeat_timeout_ms)


def _resolution(start: float, end: float) -> int:
    return 10 if end - start <= 6 * 3600 else 60


class Recommender:
    """Finds recommendations, records what is done with them and judges applied ones."""

    def __init__(self, services: Services, config: recommend.RecommendSettings | None = None,
                 publish: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.services, self.publish, self.clock = services, publish, clock
        self.config = config or recommend.RecommendSettings()
        self._periodic = Periodic("recommendation-judge", self.config.check_every_s, self.check)
        self._scanned: float | None = None  # pool reports scanned for changes up to here

    # -- finding ----------------------------------------------------------------------------

    def find(self, start: float, end: float) -> list[recommend.Recommendation]:
        store, c = self.services.store, self.config
        res = _resolution(start, end)
        pools = pool_evidence(store, start, end, res, c.peak_minutes * 60)
        groups = {dim: group_means(store, start, end, dim, res)
                  for dim in ("python_env", "library")}
        return recommend.find(pools, session_evidence(store, start, end, res), groups,
                              self.outcomes(), targets(c))

    def _marks(self) -> list[AnnotationRecord]:
        now = self.clock()
        return [a for a in self.services.store.annotations(now - HISTORY_S, now + 86400)
                if a.tags.get("recommendation") or a.kind == "config_change"
                and a.tags.get("setting")]

    def _runs(self) -> dict[str, dict[str, Any]]:
        return {r.id: bm._body(r) for r in self.services.store.benchmarks()
                if r.scenario == SCENARIO}

    def outcomes(self) -> list[learning.Outcome]:
        out = []
        for run in self._runs().values():
            o = run.get("outcome")
            if o:
                out.append(learning.Outcome(o["applied_at"], o["pool"], o["kind"], o["status"],
                                            o["predicted_raw"], o["observed"]))
        return out

    def listing(self, start: float, end: float) -> list[dict[str, Any]]:
        """Current findings with their state, then applied ones and rollbacks."""
        marks, runs = self._marks(), self._runs()
        latest: dict[str, AnnotationRecord] = {}
        for a in marks:
            latest[a.tags.get("recommendation") or f"change-{a.id}"] = a
        out: dict[str, dict[str, Any]] = {}
        for rec in self.find(start, end):
            item = rec.to_json() | {"state": "open"}
            out[rec.id] = item
        for rid, a in latest.items():
            if rid in out and a.time < start and a.tags.get("action") != "dismissed":
                rid = f"{rid}@{a.id}"  # applied before this range: the finding is new again
            item = dict(out.get(rid) or _stored(a) or {
                "id": rid, "pool": a.pool, "kind": "config_change",
                "setting": a.tags.get("setting", ""), "summary": a.title})
            if a.tags.get("action") == "dismissed":
                item["state"], item["dismissed_at"] = "dismissed", a.time
            else:
                run = runs.get(f"rec-{a.id}-after")
                outcome = (run or {}).get("outcome")
                item["state"] = outcome["status"] if outcome else "applied"
                item["applied"] = {"time": a.time, "from": a.tags.get("from"),
                                   "to": a.tags.get("to"), "annotation": a.id}
                if outcome:
                    item["validation"] = outcome
                    if outcome["status"] == "made_worse" and a.tags.get("from"):
                        rollback = self._rollback(a, outcome)
                        out.setdefault(rollback["id"], rollback)
            out[rid] = item
        return list(out.values())

    def _rollback(self, a: AnnotationRecord, outcome: dict[str, Any]) -> dict[str, Any]:
        previous, setting, pool = a.tags.get("from"), a.tags["setting"], a.pool
        worse = outcome["regressions"]
        what = "; ".join(f"{d['slice']} {d['metric']} {d['change']:+.0%} (95 % CI "
                         f"{d['ci'][0]:+.0%} … {d['ci'][1]:+.0%})" for d in worse[:3])
        value = _parse(previous)
        rec = recommend.Recommendation(
            pool=pool, kind="rollback", setting=setting, current=_parse(a.tags.get("to")),
            proposed=value,
            summary=(f"roll back {setting} on {pool or 'the deployment'} to {previous}: the "
                     f"change to {a.tags.get('to')} made things worse: {what}. Staying costs "
                     f"that on every request of the pool."),
            impact={"regressions": worse},
            evidence={"applied": a.id, "validation_runs": outcome["runs"]},
            confidence=0.9, priority="high",
            id=f"rollback-{a.id}")
        return rec.to_json() | {"state": "open"}

    # -- acting -----------------------------------------------------------------------------

    def _one(self, rec_id: str, start: float, end: float) -> dict[str, Any]:
        for item in self.listing(start, end):
            if item["id"] == rec_id:
                return item
        raise Problem(404, "No such recommendation", f"no recommendation {rec_id!r} over the "
                      f"range looked at (it may no longer apply)", param="id")

    def applied(self, rec_id: str, at: float, start: float, end: float, note: str = ""
                ) -> AnnotationRecord:
        item = self._one(rec_id, start, end)
        if item["state"] != "open":
            raise Problem(409, "Not open", f"recommendation {rec_id} is {item['state']}",
                          param="id")
        if item["kind"] == "pool_imbalance":
            raise Problem(409, "Apply per pool", "an imbalance changes two pools: apply the "
                          "pool_too_small / pool_too_large recommendation of each, or record "
                          "the change as a config_change annotation", param="id")
        impact = item["impact"].get("p95_queue_wait_s") or {}
        factor = (item.get("correction") or {}).get("wait_factor", 1.0)
        tags = {"recommendation": rec_id, "kind": item["kind"], "setting": item["setting"],
                "from": str(item["current"]), "to": str(item["proposed"]),
                "recommendation_json": orjson.dumps(item).decode()}
        if impact.get("after") is not None:
            tags["predicted_p95_queue_wait_s"] = repr(impact["after"])
            tags["predicted_raw_p95_queue_wait_s"] = repr(impact["after"] / factor)
        a = AnnotationRecord(at, "config_change",
                             f"{item['setting']} {item['current']} → {item['proposed']}"
                             + (f" on {item['pool']}" if item["pool"] else ""),
                             note or item["summary"], item["pool"], tags=tags)
        self.services.store.add_annotations([a])
        return a

    def dismiss(self, rec_id: str, at: float, start: float, end: float, note: str = ""
                ) -> AnnotationRecord:
        item = self._one(rec_id, start, end)
        if item["state"] != "open":
            raise Problem(409, "Not open", f"recommendation {rec_id} is {item['state']}",
                          param="id")
        a = AnnotationRecord(at, "other", f"dismissed: {item['summary'][:120]}", note,
                             item["pool"], tags={"recommendation": rec_id,
                                                 "action": "dismissed",
                                                 "recommendation_json":
                                                     orjson.dumps(item).decode()})
        self.services.store.add_annotations([a])
        return a

    # -- validating -------------------------------------------------------------------------

    def due(self) -> list[AnnotationRecord]:
        c, now, runs = self.config, self.clock(), self._runs()
        ready = now - c.settle_s - c.after_s - c.lateness_s
        return [a for a in self._marks() if a.kind == "config_change" and a.time <= ready
                and f"rec-{a.id}-after" not in runs]

    def judge(self, a: AnnotationRecord) -> dict[str, Any]:
        c, services = self.config, self.services
        t0 = a.time + c.settle_s
        before, after, report, decided = bm.before_after(
            services, f"rec-{a.id}", SCENARIO,
            {"recommendation": a.tags.get("recommendation", "")},
            [f"pool:{a.pool}"] if a.pool else [], ["pool"], (a.time - c.before_s, a.time),
            (t0, t0 + c.after_s))
        status = STATUS[decided] if decided else "not_enough_data"
        observed = None
        if a.pool:
            ev = pool_evidence(services.store, t0, t0 + c.after_s,
                               _resolution(t0, t0 + c.after_s), c.after_s).get(a.pool)
            observed = ev.p95_wait_s if ev is not None else None
        raw = a.tags.get("predicted_raw_p95_queue_wait_s")
        after["outcome"] = {
            "applied_at": a.time, "pool": a.pool, "kind": a.tags.get("kind", ""),
            "setting": a.tags.get("setting"), "from": a.tags.get("from"), "to": a.tags.get("to"),
            "status": status, "runs": [before["id"], after["id"]],
            "predicted": _float(a.tags.get("predicted_p95_queue_wait_s")),
            "predicted_raw": _float(raw), "observed": observed,
            "regressions": report["regressions"], "improvements": report["improvements"],
            "judged_at": self.clock()}
        bm._save(services, after)
        log.info("config change %s (%s): %s", a.title, a.id, status)
        if self.publish is not None and status == "made_worse":
            try:
                self.publish({"type": "recommendation_rollback", "status": "made_worse",
                              "group": a.pool or "deployment",
                              "fingerprint": f"recommendation:{a.id}",
                              "summary": self._rollback(a, after["outcome"])["summary"]})
            except Exception:  # the outcome is stored; a broker outage must not stop judging
                log.exception("rollback of %s not published", a.id)
        return after

    def observe_changes(self) -> list[AnnotationRecord]:
        """A ``pool_size`` that changed in the pools' own reports (no annotation said so) is
        recorded as a ``config_change`` annotation, ``source: observed``, and so validated too.
        Scans the 10 s rollups stored since the last call (the last hour at first)."""
        now, store = self.clock(), self.services.store
        lo = int(self._scanned if self._scanned is not None else now - 3600) // 10 * 10
        hi = int(now - self.config.lateness_s) // 10 * 10
        if hi <= lo:
            return []
        last: dict[str, tuple[int, float]] = {}
        rows = sorted(store.read(store.series("pool"), 10, lo - 10, hi, ()),
                      key=lambda r: r.bucket)
        changes: list[AnnotationRecord] = []
        for r in rows:
            g = r.agg.gauges.get("pool_size")
            if g is None:
                continue
            pool, size = r.series.labels[0], int(g.last)
            before = last.get(pool)
            if before is not None and before[0] != size and r.bucket >= lo:
                changes.append(AnnotationRecord(  # at the start of the bucket it showed in
                    float(r.bucket), "config_change", f"pool_size {before[0]} → {size} on {pool}",
                    "seen in the pool's reports", pool,
                    tags={"setting": "pool_size", "from": str(before[0]), "to": str(size),
                          "source": "observed"}))
            last[pool] = (size, g.last_time)
        new = [c for c in changes if not self._annotated_near(c)]
        if new:
            store.add_annotations(new)
        self._scanned = hi
        return new

    def _annotated_near(self, change: AnnotationRecord) -> bool:
        """Whether someone already recorded this change (applied, or annotated by hand) within
        the before window of when the pools reported it."""
        return any(a.pool == change.pool and a.tags.get("setting") == "pool_size"
                   and a.tags.get("to") == change.tags["to"]
                   and abs(a.time - change.time) <= self.config.before_s for a in self._marks())

    def check(self) -> list[dict[str, Any]]:
        self.observe_changes()
        out = []
        for a in self.due():
            try:
                out.append(self.judge(a))
            except Problem as exc:
                log.warning("recommendation %s not judged: %s", a.id, exc.detail)
        return out

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def accuracy(self) -> list[dict[str, Any]]:
        """Every judged change's predicted vs observed P95 queue wait, oldest first."""
        out = []
        for run in self._runs().values():
            o = run.get("outcome")
            if o and o["predicted"] is not None and o["observed"] is not None:
                out.append({"time": o["applied_at"], "pool": o["pool"], "kind": o["kind"],
                            "predicted_s": o["predicted"], "observed_s": o["observed"],
                            "relative_error": learning.relative_error(o["predicted"],
                                                                      o["observed"]),
                            "status": o["status"]})
        return sorted(out, key=lambda x: x["time"])


def _float(text: str | None) -> float | None:
    """A number from an annotation's tag; anyone may write tags, so anything else is None."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _stored(a: AnnotationRecord) -> dict[str, Any]:
    """The recommendation as it was when acted on (its JSON tag), {} if that is not one."""
    try:
        item = orjson.loads(a.tags.get("recommendation_json", "{}"))
    except orjson.JSONDecodeError:
        return {}
    return item if isinstance(item, dict) and "id" in item else {}


def _parse(text: str | None) -> Any:
    try:
        return int(text)
    except (TypeError, ValueError):
        return text


def recommender(request: Request) -> Recommender:
    r = getattr(request.app.state, "recommender", None)
    if r is None:
        r = request.app.state.recommender = Recommender(get_services(request))
    return r


RecommenderDep = Annotated[Recommender, Depends(recommender)]


def _window(r: Recommender, start: str | None, end: str | None) -> tuple[float, float]:
    try:
        t1 = parse_time(end, "to") if end else r.clock()
        t0 = parse_time(start, "from") if start else t1 - r.config.lookback_hours * 3600
    except QueryError as exc:
        raise Problem(400, "Invalid range", str(exc), param=exc.param) from exc
    if not t0 < t1:
        raise Problem(400, "Invalid range", "`from` must be before `to`", param="from")
    return t0, t1


@router.get("/v1/recommendations", summary="Settings to change, with predicted impact, "
            "evidence, confidence and state")
def list_recommendations(
        r: RecommenderDep,
        start: Annotated[str | None, Query(alias="from", description="default: lookback")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
        state: Annotated[str | None, Query(description=", ".join(STATES))] = None,
        pool: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    if state is not None and state not in STATES:
        raise Problem(400, "Invalid state", f"state must be one of {', '.join(STATES)}",
                      param="state")
    items = r.listing(*_window(r, start, end))
    return [i for i in items if (state is None or i["state"] == state)
            and (pool is None or i.get("pool") == pool) and (kind is None or i.get("kind") == kind)]


@router.get("/v1/recommendations/accuracy",
            summary="Predicted vs observed P95 queue wait of every validated change")
def accuracy(r: RecommenderDep) -> list[dict[str, Any]]:
    return r.accuracy()


class ActionIn(BaseModel):
    time: float | None = None  # when the change was made (default: now)
    note: str = ""
    # the range the recommendation was found over (default: the lookback up to now)
    start: str | None = None
    end: str | None = None


@actions.post("/v1/recommendations/{rec_id}/applied", status_code=201,
              summary="Record that a recommendation was applied: it will be validated")
def mark_applied(rec_id: str, r: RecommenderDep,
                 body: Annotated[ActionIn | None, Body()] = None) -> dict[str, Any]:
    body = body or ActionIn()
    a = r.applied(rec_id, body.time or r.clock(), *_window(r, body.start, body.end), body.note)
    return {"annotation": a.id, "time": a.time, "title": a.title, "tags": a.tags}


@actions.post("/v1/recommendations/{rec_id}/dismiss", status_code=201,
              summary="Dismiss a recommendation")
def dismiss(rec_id: str, r: RecommenderDep,
            body: Annotated[ActionIn | None, Body()] = None) -> dict[str, Any]:
    body = body or ActionIn()
    a = r.dismiss(rec_id, body.time or r.clock(), *_window(r, body.start, body.end), body.note)
    return {"annotation": a.id, "time": a.time, "title": a.title, "tags": a.tags}
