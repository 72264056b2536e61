"""``/v1/alerts`` and ``/v1/silences``: alerts firing now and their history; acknowledging an
alert; silencing alerts by label matchers until a time (Alertmanager's vocabulary)."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, model_validator

from api.auth import Caller, caller
from api.problems import Problem
from api.services import Services, get_services
from models.alerts import rule_from_dict
from models.runner import AlertRunner
from query.engine import QueryError, parse_duration, parse_time

router = APIRouter(tags=["alerts"])  # reads: viewer
actions = APIRouter(tags=["alerts"])  # acknowledge, silence: operator


def runner(services: Annotated[Services, Depends(get_services)]) -> AlertRunner:
    if services.alerts is None:
        raise Problem(404, "No alerting here", "alerts are acknowledged, silenced and configured "
                                               "where they are evaluated (snakepit-perf run); "
                                               "the distributed API lists them read-only")
    return services.alerts


def reader(services: Annotated[Services, Depends(get_services)]) -> AlertRunner:
    """The live alert state, or in the distributed API the workers' last checkpoint of it."""
    if services.alerts is not None:
        return services.alerts
    if services.alert_view is not None:
        return services.alert_view.view()
    raise Problem(404, "No alerting here", "alerts are evaluated where the engine runs "
                                           "(snakepit-perf run, snakepit-perf worker)")


Runner = Annotated[AlertRunner, Depends(runner)]
Reader = Annotated[AlertRunner, Depends(reader)]
Operator = Annotated[Caller, Depends(caller("operator"))]
Admin = Annotated[Caller, Depends(caller("admin"))]


class RelatedSignal(BaseModel):
    observed: float
    expected: float | None
    robust_z: float


class AlertContext(BaseModel):
    observed: float | None
    expected: float | None
    window_s: int
    related: dict[str, RelatedSignal]  # other signals of the pool off their baseline too
    after_deploy: str | None  # a deploy to the pool within the hour before it fired


class AlertImpact(BaseModel):
    affected_requests: int
    duration_s: int


class Acknowledgement(BaseModel):
    by: str
    at: float
    comment: str


class Alert(BaseModel):
    status: str  # firing | resolved
    alertname: str
    fingerprint: str
    group: str
    incident_id: str | None
    severity: str
    labels: dict[str, str]
    starts_at: float | None
    at: float  # the end of the minute this notification judged
    summary: str
    context: AlertContext
    impact: AlertImpact
    flapping: bool
    remediation: str
    recovery: str | None = None  # resolved: back to what, after how long
    silenced: bool
    acknowledged: Acknowledgement | None


class AlertRule(BaseModel):
    signal: str
    summary: str
    remediation: str
    pool: str
    below: bool
    probability: float
    z: float
    min_ratio: float
    min_abs: float
    for_minutes: int
    resolve_minutes: int
    severity: str
    static_above: float | None
    min_evidence: tuple[str, float] | None
    source: str  # default | override


@router.get("/v1/alerts", response_model=list[Alert],
            summary="Alerts: firing now, resolved, or all notifications")
def list_alerts(alerts: Reader,
                state: Annotated[str, Query(pattern="^(firing|resolved|all)$")] = "firing",
                ) -> list[dict[str, Any]]:
    return alerts.alerts(state)


class Ack(BaseModel):
    comment: str = Field("", max_length=1000)


@actions.post("/v1/alerts/{fingerprint}/ack", response_model=Alert,
              summary="Acknowledge a firing alert (who takes it)")
def acknowledge(fingerprint: str, body: Ack, alerts: Runner, who: Operator) -> dict[str, Any]:
    note = alerts.acknowledge(fingerprint, who.name, body.comment)
    if note is None:
        raise Problem(404, "No such firing alert", f"no alert {fingerprint!r} is firing",
                      param="fingerprint")
    return note


class SilenceIn(BaseModel):
    matchers: dict[str, str] = Field(min_length=1, description="label -> value (value* = prefix),"
                                     " e.g. {\"pool\": \"gpu\", \"signal\": \"p99_s\"}")
    duration: str | None = Field(None, description="e.g. 30m, 2h (or give ends_at)")
    ends_at: str | None = Field(None, description="RFC 3339 or epoch seconds")
    comment: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.duration is None) == (self.ends_at is None):
            raise ValueError("give exactly one of duration or ends_at")
        return self


class SilenceOut(BaseModel):
    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    comment: str
    created_by: str
    active: bool


def _out(s, now: float) -> SilenceOut:
    return SilenceOut(**s.to_dict(), active=s.active(now))


@router.get("/v1/silences", response_model=list[SilenceOut], summary="Silences")
def list_silences(alerts: Reader, expired: bool = False) -> list[SilenceOut]:
    now = time.time()
    return [_out(s, now) for s in alerts.silences(include_expired=expired)]


@actions.post("/v1/silences", response_model=SilenceOut, status_code=201,
              summary="Mute notifications of matching alerts until a time")
def create_silence(body: SilenceIn, alerts: Runner, who: Operator) -> SilenceOut:
    now = time.time()
    try:
        ends = now + parse_duration(body.duration, "duration") if body.duration else \
            parse_time(body.ends_at, "ends_at")
    except QueryError as exc:
        raise Problem(400, "Invalid silence", str(exc), param=exc.param) from exc
    if ends <= now:
        raise Problem(400, "Invalid silence", "the silence would already be over",
                      param="ends_at")
    return _out(alerts.silence(body.matchers, ends, body.comment, who.name, starts_at=now), now)


@actions.delete("/v1/silences/{silence_id}", response_model=SilenceOut,
                summary="Expire a silence now")
def expire_silence(silence_id: str, alerts: Runner, who: Operator) -> SilenceOut:
    s = alerts.expire(silence_id)
    if s is None:
        raise Problem(404, "No such silence", f"no silence {silence_id!r}", param="silence_id")
    return _out(s, time.time())


def _rules(alerts: AlertRunner) -> list[dict[str, Any]]:
    defaults, overrides = alerts.rules()
    return [{**asdict(r), "source": source} for source, rules in
            (("default", defaults), ("override", overrides)) for r in rules]


@router.get("/v1/alerts/rules", response_model=list[AlertRule],
            summary="The alert rules: defaults and overrides per pool")
def list_rules(alerts: Reader) -> list[dict[str, Any]]:
    return _rules(alerts)


@actions.put("/v1/alerts/rules", response_model=list[AlertRule],
             summary="Replace the rule overrides (admin)",
             description="A list of rules, each at least a `signal`; `pool` ('' every pool, a "
                         "name, or a prefix*) picks where it applies, the most specific rule "
                         "winning; fields left out come from the default rule of the signal "
                         "(`probability`, `z`, `min_ratio`, `min_abs`, `for_minutes`, "
                         "`resolve_minutes`, "
                         "`severity`, `static_above` for an SLO threshold, ...).")
def replace_rules(body: list[dict[str, Any]], alerts: Runner, who: Admin) -> list[dict[str, Any]]:
    try:
        overrides = tuple(rule_from_dict(d) for d in body)
    except ValueError as exc:
        raise Problem(400, "Invalid rule", str(exc), param="body") from exc
    alerts.set_rules(overrides)
    return _rules(alerts)
