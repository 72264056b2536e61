"""Comparison, trends and correlations over query results (R13.2, R13.4, R2.5, R4.1, R5.1, R7.5).

Significance tests work on per-step values (e.g. each minute's P99 of segment A vs B): that is
what the stored rollups can answer exactly, and with tens of steps Welch's t-test is robust.
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from scipy import stats as sps

from api.problems import Problem
from api.routes_query import run_query
from api.services import Services, get_services

router = APIRouter(tags=["analysis"])


class Side(BaseModel):
    where: list[str]
    overall: float | None
    mean_of_steps: float | None
    steps: int


class Comparison(BaseModel):
    metric: str
    stat: str
    a: Side
    b: Side
    difference: float | None
    relative_difference: float | None
    test: str
    p_value: float | None
    significant: bool


class Trend(BaseModel):
    metric: str
    stat: str
    direction: str
    slope_per_hour: float | None
    r_squared: float | None
    p_value: float | None
    points: int


class Correlation(BaseModel):
    a: str
    b: str
    pearson_r: float | None
    p_value: float | None
    points: int


def _points(services: Services, metric: str, stat: str, start: str, end: str,
            step: str | None, where: list[str]) -> dict[int, float]:
    result = run_query(services, metric, stat, start, end, step, None, where)
    return {t: v for s in result.series for t, v in s.points}


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@router.get("/v1/compare", response_model=Comparison,
            summary="Compare two segments on a metric, with Welch's t-test over the steps")
def compare(services: Annotated[Services, Depends(get_services)],
            metric: str, start: Annotated[str, Query(alias="from")],
            end: Annotated[str, Query(alias="to")],
            a: Annotated[list[str], Query(description="filters of segment A, e.g. pool:gpu")],
            b: Annotated[list[str], Query(description="filters of segment B")],
            stat: str = "p99", step: str = "1m",
            where: Annotated[list[str] | None, Query()] = None,
            alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05) -> Comparison:
    shared = where or []
    sides = []
    for filters in (a, b):
        steps = _points(services, metric, stat, start, end, step, shared + filters)
        overall = _points(services, metric, stat, start, end, None, shared + filters)
        sides.append((filters, list(steps.values()), next(iter(overall.values()), None)))
    (fa, va, oa), (fb, vb, ob) = sides
    p = None
    if len(va) >= 2 and len(vb) >= 2 and (np.std(va) > 0 or np.std(vb) > 0):
        p = _finite(float(sps.ttest_ind(va, vb, equal_var=False).pvalue))
    diff = ob - oa if oa is not None and ob is not None else None
    rel = diff / oa if diff is not None and oa else None
    return Comparison(
        metric=metric, stat=stat,
        a=Side(where=fa, overall=oa, mean_of_steps=float(np.mean(va)) if va else None,
               steps=len(va)),
        b=Side(where=fb, overall=ob, mean_of_steps=float(np.mean(vb)) if vb else None,
               steps=len(vb)),
        difference=diff, relative_difference=rel, test="welch_t_test_over_steps", p_value=p,
        significant=p is not None and p < alpha)


@router.get("/v1/trends", response_model=Trend,
            summary="Direction and slope of a metric over a range (least squares over the steps)")
def trends(services: Annotated[Services, Depends(get_services)], metric: str,
           start: Annotated[str, Query(alias="from")], end: Annotated[str, Query(alias="to")],
           stat: str = "rate", step: str = "1m",
           where: Annotated[list[str] | None, Query()] = None,
           alpha: Annotated[float, Query(gt=0, lt=1)] = 0.05) -> Trend:
    pts = sorted(_points(services, metric, stat, start, end, step, where or []).items())
    if len(pts) < 3:
        return Trend(metric=metric, stat=stat, direction="unknown", slope_per_hour=None,
                     r_squared=None, p_value=None, points=len(pts))
    t = np.array([p[0] for p in pts], dtype=float)
    v = np.array([p[1] for p in pts], dtype=float)
    if np.ptp(v) == 0:
        return Trend(metric=metric, stat=stat, direction="flat", slope_per_hour=0.0,
                     r_squared=None, p_value=None, points=len(pts))
    fit = sps.linregress(t, v)
    p = _finite(float(fit.pvalue))
    direction = "flat" if p is None or p >= alpha else ("up" if fit.slope > 0 else "down")
    return Trend(metric=metric, stat=stat, direction=direction,
                 slope_per_hour=float(fit.slope * 3600), r_squared=float(fit.rvalue ** 2),
                 p_value=p, points=len(pts))


@router.get("/v1/correlations", response_model=list[Correlation],
            summary="Pearson correlation between metrics over a range, aligned on the steps")
def correlations(services: Annotated[Services, Depends(get_services)],
                 metrics: Annotated[list[str], Query(
                     description="metric:stat, at least two, e.g. request_duration_seconds:p99")],
                 start: Annotated[str, Query(alias="from")],
                 end: Annotated[str, Query(alias="to")], step: str = "1m",
                 where: Annotated[list[str] | None, Query()] = None) -> list[Correlation]:
    if len(metrics) < 2:
        raise Problem(400, "Invalid query", "metrics: give at least two metric:stat pairs",
                      param="metrics")
    series: dict[str, dict[int, float]] = {}
    for spec in metrics:
        name, _, stat = spec.partition(":")
        series[spec] = _points(services, name, stat or "mean", start, end, step, where or [])
    out: list[Correlation] = []
    names = list(series)
    for i, x in enumerate(names):
        for y in names[i + 1:]:
            common = sorted(set(series[x]) & set(series[y]))
            r = p = None
            if len(common) >= 3:
                vx = [series[x][t] for t in common]
                vy = [series[y][t] for t in common]
                if np.ptp(vx) > 0 and np.ptp(vy) > 0:
                    res = sps.pearsonr(vx, vy)
                    r, p = _finite(float(res.statistic)), _finite(float(res.pvalue))
            out.append(Correlation(a=x, b=y, pearson_r=r, p_value=p, points=len(common)))
    return out


