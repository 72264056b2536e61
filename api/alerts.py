"""``GET /v1/alerts``: alerts firing now, or the history of firing and resolved notifications."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from api.problems import Problem
from api.services import Services, get_services

router = APIRouter(tags=["alerts"])


@router.get("/v1/alerts", summary="Alerts: firing now, resolved, or all notifications")
def list_alerts(services: Annotated[Services, Depends(get_services)],
                state: Annotated[str, Query(pattern="^(firing|resolved|all)$")] = "firing",
                ) -> list[dict[str, Any]]:
    if services.alerts is None:
        raise Problem(404, "No alerting here", "alerts are evaluated where the engine runs "
                                               "(snakepit-perf run)")
    return services.alerts.alerts(state)
