"""``/v1/dashboards``: dashboard layouts saved per user (the API key's name) and shareable
read-only with a role (R10.2, R10.5).

Anyone who can read can keep their own layouts; only the owner (or an admin, who sees all)
changes or deletes one. With no API keys configured (loopback only) everyone is the user ``local``.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from api.auth import ROLES, Caller, caller
from api.problems import Problem
from api.services import Services, get_services
from store.base import DashboardRecord

router = APIRouter(tags=["dashboards"])


class Panel(BaseModel):
    title: str = Field(max_length=200)
    metric: str = Field(max_length=100)
    stats: list[str] = Field(min_length=1, max_length=8)
    group_by: str = Field("", max_length=200)
    where: list[str] = Field(default_factory=list, max_length=20)
    width: int = Field(6, ge=1, le=12, description="columns of a 12-column grid")
    height: int = Field(1, ge=1, le=4, description="rows of ~240 px")


class Layout(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    panels: list[Panel] = Field(max_length=40)
    range: str = Field("15m", max_length=40, description="default time range, e.g. 15m, 24h")
    where: list[str] = Field(default_factory=list, max_length=20,
                             description="filters applied to every panel")
    shared_role: Literal["", "viewer", "operator", "admin"] = Field(
        "", description="'' keeps it private; a role shares it read-only with that role and up")


class Dashboard(Layout):
    id: str
    owner: str
    updated: float
    editable: bool


def _visible(d: DashboardRecord, who: Caller) -> bool:
    """Own layouts, those shared with the caller's role or a lower one; admins see all."""
    return d.owner == who.name or who.role == "admin" or (
        d.shared_role != "" and ROLES.index(who.role) >= ROLES.index(d.shared_role))


def _out(d: DashboardRecord, who: Caller) -> Dashboard:
    return Dashboard(**orjson.loads(d.body), id=d.id, owner=d.owner, updated=d.updated,
                     editable=d.owner == who.name or who.role == "admin")


def _find(services: Services, dashboard_id: str, who: Caller) -> DashboardRecord:
    for d in services.store.dashboards():
        if d.id == dashboard_id and _visible(d, who):
            return d
    raise Problem(404, "No such dashboard", f"no dashboard {dashboard_id!r} visible to "
                                            f"'{who.name}'", param="id")


def _record(layout: Layout, dashboard_id: str, owner: str) -> DashboardRecord:
    return DashboardRecord(dashboard_id, owner, layout.title, layout.model_dump_json(),
                           layout.shared_role, round(time.time(), 3))


ServicesDep = Annotated[Services, Depends(get_services)]
CallerDep = Annotated[Caller, Depends(caller())]


@router.get("/v1/dashboards", response_model=list[Dashboard],
            summary="Your dashboards and those shared with your role")
def list_dashboards(services: ServicesDep, who: CallerDep) -> list[Dashboard]:
    return [_out(d, who) for d in services.store.dashboards() if _visible(d, who)]


@router.get("/v1/dashboards/{dashboard_id}", response_model=Dashboard)
def get_dashboard(dashboard_id: str, services: ServicesDep, who: CallerDep) -> Dashboard:
    return _out(_find(services, dashboard_id, who), who)


@router.post("/v1/dashboards", response_model=Dashboard, status_code=201,
             summary="Save a new dashboard owned by the caller")
def create_dashboard(layout: Layout, services: ServicesDep, who: CallerDep) -> Dashboard:
    record = _record(layout, secrets.token_hex(8), who.name)
    services.store.put_dashboard(record)
    return _out(record, who)


@router.put("/v1/dashboards/{dashboard_id}", response_model=Dashboard,
            summary="Replace a dashboard (its owner or an admin)")
def replace_dashboard(dashboard_id: str, layout: Layout, services: ServicesDep,
                      who: CallerDep) -> Dashboard:
    current = _find(services, dashboard_id, who)
    if current.owner != who.name and who.role != "admin":
        raise Problem(403, "Forbidden", f"dashboard {dashboard_id!r} belongs to "
                                        f"'{current.owner}'; save a copy instead")
    record = _record(layout, dashboard_id, current.owner)
    services.store.put_dashboard(record)
    return _out(record, who)


@router.delete("/v1/dashboards/{dashboard_id}", status_code=204, response_class=Response)
def delete_dashboard(dashboard_id: str, services: ServicesDep, who: CallerDep) -> Response:
    current = _find(services, dashboard_id, who)
    if current.owner != who.name and who.role != "admin":
        raise Problem(403, "Forbidden", f"dashboard {dashboard_id!r} belongs to "
                                        f"'{current.owner}'")
    services.store.delete_dashboard(dashboard_id)
    return Response(status_code=204)


@router.get("/v1/whoami", response_model=Caller, tags=["auth"],
            summary="The user and role of the API key sent")
def whoami(who: CallerDep) -> Caller:
    return who
