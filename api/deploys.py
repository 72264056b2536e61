"""Deploys judged (R14.3): each ``deploy`` annotation is compared before against after.

When a deploy's after window has ended (plus the engine's lateness), the judge records two
finished benchmark runs of scenario ``deploy`` -- ``before`` = ``[t - before_s, t)`` and
``after`` = ``[t + settle_s, t + settle_s + after_s)``, limited to the annotation's pool if it
names one -- and compares them with the benchmark method (block bootstrap, Holm, root cause)
per pool and command. The verdict (``regressed`` / ``improved`` / ``unchanged`` /
``not_enough_data``) is stored on the after run, listed by ``GET /v1/deploys`` and published
as a notification (``type: deploy_verdict``) where alerts go on Kafka.

Runs are named from the annotation's id, so a judge that restarts, or a second API replica,
re-derives the same runs instead of judging twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from api import benchmarks as bm
from api.periodic import Periodic
from api.problems import Problem
from api.services import Services, get_services
from store.base import AnnotationRecord

log = logging.getLogger(__name__)
router = APIRouter(tags=["deploys"])
LOOKBACK_S = 7 * 86400
VERDICTS = {"regression": "regressed", "improvement": "improved", "no_change": "unchanged"}


@dataclass(frozen=True)
class DeployWindows:
    """How a deploy is judged: ``before_s`` before it, against ``after_s`` once ``settle_s``
    has passed (restarts and cold caches are not the new version's steady state)."""

    before_s: float = 900.0
    settle_s: float = 120.0
    after_s: float = 600.0
    lateness_s: float = 30.0  # after the window: its last events stored
    check_every_s: float = 10.0


def version(a: AnnotationRecord) -> str:
    return a.tags.get("version") or a.title


def _runs(services: Services, scenario: str = "deploy") -> dict[str, dict[str, Any]]:
    return {r.id: bm._body(r) for r in services.store.benchmarks() if r.scenario == scenario}


class DeployJudge:
    """Finds deploy annotations whose windows have passed and judges each once."""

    def __init__(self, services: Services, windows: DeployWindows = DeployWindows(),
                 publish: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.services, self.windows, self.publish, self.clock = services, windows, publish, clock
        self._periodic = Periodic("deploy-judge", windows.check_every_s, self.check)

    def due(self) -> list[AnnotationRecord]:
        now, w = self.clock(), self.windows
        judged = _runs(self.services)
        ready = now - w.settle_s - w.after_s - w.lateness_s
        return [a for a in self.services.store.annotations(now - LOOKBACK_S, now)
                if a.kind == "deploy" and a.time <= ready and f"deploy-{a.id}-after" not in judged]

    def judge(self, a: AnnotationRecord) -> dict[str, Any]:
        w, services = self.windows, self.services
        labels = {"version": version(a), "deploy_time": f"{a.time:.3f}"}
        start = a.time + w.settle_s
        before, after, report, decided = bm.before_after(
            services, f"deploy-{a.id}", "deploy", labels, [f"pool:{a.pool}"] if a.pool else [],
            ["pool", "command"], (a.time - w.before_s, a.time), (start, start + w.after_s))
        verdict = VERDICTS[decided] if decided else "not_enough_data"
        after["deploy"] = {
            "version": version(a), "time": a.time, "title": a.title, "pool": a.pool,
            "verdict": verdict, "before": before["trials"][0], "after": after["trials"][0],
            "before_run": before["id"], "regressions": report["regressions"],
            "improvements": report["improvements"], "root_cause": report["root_cause"],
            "judged_at": self.clock()}
        bm._save(services, after)
        note = notification(after)
        if self.publish is not None:
            try:
                self.publish(note)
            except Exception:  # a broker outage must not stop judging; the verdict is stored
                log.exception("deploy verdict %s not published", note["fingerprint"])
        log.info("deploy %s: %s", version(a), verdict)
        return after

    def check(self) -> list[dict[str, Any]]:
        out = []
        for a in self.due():
            try:
                out.append(self.judge(a))
            except Problem as exc:
                log.warning("deploy %s not judged: %s", version(a), exc.detail)
        return out

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()


def notification(run: dict[str, Any]) -> dict[str, Any]:
    """A deploy verdict as published next to alerts (same keys a subscriber routes on)."""
    d = run["deploy"]
    worst = (d["regressions"] or d["improvements"] or [None])[0]
    summary = f"deploy {d['version']}: {d['verdict']}"
    if worst:
        lo, hi = worst["ci"]
        summary += (f" ({worst['slice']} {worst['metric']} {worst['change']:+.1%}, 95 % CI "
                    f"{lo:+.1%} … {hi:+.1%})")
    cause = d["root_cause"]
    if cause and cause["culprit"]:
        summary += "; root cause: " + ", ".join(f"{c['dimension']}={c['value']}"
                                                 for c in cause["culprit"])
        if cause["time"].get("grew_most"):
            summary += f" ({cause['time']['grew_most']} grew most)"
    return {"type": "deploy_verdict", "status": d["verdict"], "group": d["pool"] or "deploy",
            "fingerprint": f"deploy:{run['id']}", "version": d["version"], "time": d["time"],
            "summary": summary, "run": run["id"], "baseline": d["before_run"],
            "before": d["before"], "after": d["after"], "regressions": d["regressions"],
            "improvements": d["improvements"], "root_cause": d["root_cause"]}


def judged(services: Services) -> dict[str, str]:
    """After-run id -> verdict, for marking deploy annotations."""
    return {i: r["deploy"]["verdict"] for i, r in _runs(services).items() if "deploy" in r}


def verdicts(services: Services) -> list[dict[str, Any]]:
    return sorted((notification(r) for r in _runs(services).values() if "deploy" in r),
                  key=lambda n: n["time"])


@router.get("/v1/deploys", summary="Deploy verdicts: before vs after each deploy annotation")
def list_deploys(services: Annotated[Services, Depends(get_services)]) -> list[dict[str, Any]]:
    return verdicts(services)


@router.get("/v1/deploys/{version}", summary="The latest verdict of one deployed version")
def get_deploy(version: str, services: Annotated[Services, Depends(get_services)]
               ) -> dict[str, Any]:
    mine = [v for v in verdicts(services) if v["version"] == version]
    if not mine:
        raise Problem(404, "Not judged", f"no verdict for deploy {version!r} (yet): a deploy is "
                      f"judged once its after window has passed", param="version")
    return mine[-1]
