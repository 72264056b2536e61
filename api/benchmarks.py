"""``/v1/benchmarks``, ``/v1/regressions`` and ``/v1/ab``: benchmark runs, baselines, run vs
baseline with root cause, change points over a scenario's history, sequential A/B (R9).

A run is started and finished (``POST /v1/benchmarks``, ``.../finish``; ``snakepit-perf bench
run`` does both around a load command) or recorded after the fact with ``from`` and ``to``.
Its results are computed from the stored rollups when it finishes and kept with it; a
comparison reads both runs' windows again (they must still be in the store at 10 s or 1 min).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field, field_validator

from api import benchmark_runs as br
from api.problems import Problem
from api.services import Services, get_services
from models import benchmark_stats as st
from query.engine import QueryError, parse_filters, parse_time
from store.base import BenchmarkRecord

read_router = APIRouter(tags=["benchmarks"])
write_router = APIRouter(tags=["benchmarks"])
ServicesDep = Annotated[Services, Depends(get_services)]
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,199}$"
Time = Annotated[float, Field(ge=0, lt=253_402_300_800, allow_inf_nan=False)]
Trial = tuple[Time, Time]
MAX_TRIAL_S = 86400  # a trial longer than a day is not a benchmark (and its windows pile up)


class MethodologyIn(BaseModel):
    warmup_s: float = Field(0.0, ge=0, le=86400, description="dropped from each trial's start")
    duration_s: float | None = Field(None, gt=0, le=7 * 86400)
    trials: int = Field(1, ge=1, le=100)
    metrics: list[Literal["p50", "p95", "p99", "p99.9", "throughput", "error_rate"]] = Field(
        default_factory=lambda: list(st.DEFAULT_METRICS), min_length=1)
    slices: list[str] = Field(default_factory=lambda: ["pool", "command"], max_length=2)
    alpha: float = Field(0.05, gt=0, lt=0.5)
    min_effect: float = Field(0.02, ge=0, le=10,
                              description="smallest relative change reported as a regression")

    @field_validator("slices")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [d for d in v if d not in br.DIMS]
        if unknown:
            raise ValueError(f"unknown dimension(s) {unknown}; requests have {', '.join(br.DIMS)}")
        return v


class RunIn(BaseModel):
    scenario: str = Field(pattern=_NAME)
    labels: dict[str, str] = Field(default_factory=dict, max_length=50,
                                   description="git sha, branch, pool config, variant, ...")
    start: str | float | None = Field(None, alias="from",
                                      description="with `to`: record a past range, finished")
    end: str | float | None = Field(None, alias="to")
    trials: list[Trial] | None = Field(
        None, max_length=100, description="instead of from/to: each trial's [from, to)")
    annotation: str | None = Field(
        None, max_length=200, description="instead of from/to: the title of an annotation "
        "with an end time (its range), or of two annotations (the last pair: start, end), "
        "in the last 7 days")
    where: list[str] = Field(default_factory=list, max_length=20,
                             description="filters of the requests that count, as /v1/query")
    methodology: MethodologyIn = Field(default_factory=MethodologyIn)
    fingerprint: dict[str, str] = Field(default_factory=dict, max_length=50,
                                        description="host, cores, versions (the CLI adds them)")


class FinishIn(BaseModel):
    trials: list[Trial] | None = Field(None, max_length=100)


def _range(value: str | float, param: str) -> float:
    try:
        return float(parse_time(str(value), param))
    except QueryError as exc:
        raise Problem(400, "Invalid benchmark run", str(exc), param=param) from exc


def _body(record: BenchmarkRecord) -> dict[str, Any]:
    return orjson.loads(record.body)


def _save(services: Services, run: dict[str, Any]) -> None:
    services.store.put_benchmark(BenchmarkRecord(run["id"], run["scenario"], run["started"],
                                                 orjson.dumps(run).decode()))


def _find(services: Services, run_id: str) -> dict[str, Any]:
    for record in services.store.benchmarks():
        if record.id == run_id:
            return _body(record)
    raise Problem(404, "No such benchmark run", f"no benchmark run {run_id!r}", param="id")


def _method(run: dict[str, Any]) -> br.Methodology:
    m = run["methodology"]
    return br.Methodology(warmup_s=m["warmup_s"], duration_s=m["duration_s"],
                          trials=m["trials"], metrics=tuple(m["metrics"]),
                          slices=tuple(m["slices"]), alpha=m["alpha"],
                          min_effect=m["min_effect"])


def _load(services: Services, run: dict[str, Any], resolution: int | None = None) -> br.RunData:
    res = resolution or br.resolution_for(run["started"], time.time(),
                                          services.store.retention)
    return br.load(services.store, [tuple(t) for t in run["trials"]], run["where"],
                   run["methodology"]["warmup_s"], res)


def _finish(services: Services, run: dict[str, Any]) -> dict[str, Any]:
    data = _load(services, run)
    run["status"] = "finished"
    run["results"] = br.results(services.store, data, run["fingerprint"],
                                run["methodology"]["slices"])
    _save(services, run)
    return run


def _check(trials: list[list[float]]) -> None:
    for t0, t1 in trials:
        if not t0 < t1 <= t0 + MAX_TRIAL_S:
            raise Problem(400, "Invalid benchmark run", f"trial [{t0}, {t1}): `to` must be later "
                          f"than `from`, by at most {MAX_TRIAL_S} s", param="to")


def _annotated(services: Services, title: str) -> list[float]:
    """The range an annotation marks: its own span, or the last two with that title."""
    now = time.time()
    marks = [a for a in services.store.annotations(now - 7 * 86400, now) if a.title == title]
    if marks and marks[-1].end_time is not None:
        return [marks[-1].time, marks[-1].end_time]
    if len(marks) >= 2:
        return [marks[-2].time, marks[-1].time]
    raise Problem(404, "No such annotation", f"no annotation titled {title!r} with an end time, "
                  f"nor two of them, in the last 7 days", param="annotation")


@write_router.post("/v1/benchmarks", status_code=201,
                   summary="Start a benchmark run, or record a past range (from/to) as a "
                           "finished one")
def start_run(body: RunIn, services: ServicesDep) -> dict[str, Any]:
    try:
        parse_filters(body.where, br.DIMS)
    except QueryError as exc:
        raise Problem(400, "Invalid benchmark run", str(exc), param="where") from exc
    trials = [list(t) for t in body.trials] if body.trials else None
    if (body.start is None) != (body.end is None):
        raise Problem(400, "Invalid benchmark run", "give both `from` and `to`, or neither",
                      param="to")
    if body.start is not None:
        trials = [[_range(body.start, "from"), _range(body.end, "to")]]
    if body.annotation is not None:
        trials = [_annotated(services, body.annotation)]
    _check(trials or [])
    now = time.time()
    run = {"id": secrets.token_hex(8), "scenario": body.scenario, "labels": body.labels,
           "where": body.where, "methodology": body.methodology.model_dump(),
           "fingerprint": body.fingerprint, "pinned": False,
           "started": trials[0][0] if trials else now, "trials": trials or [],
           "status": "running", "results": None}
    if trials:
        return _finish(services, run)
    _save(services, run)
    return run


@write_router.post("/v1/benchmarks/{run_id}/finish",
                   summary="Finish a running run (now, or with the trials it ran)")
def finish_run(run_id: str, services: ServicesDep, body: FinishIn | None = None
               ) -> dict[str, Any]:
    run = _find(services, run_id)
    if run["status"] == "finished":
        raise Problem(409, "Already finished", f"benchmark run {run_id!r} is finished")
    if body is not None and body.trials:
        run["trials"] = [list(t) for t in body.trials]
    else:
        run["trials"] = [[run["started"], min(time.time(), run["started"] + MAX_TRIAL_S)]]
    _check(run["trials"])
    return _finish(services, run)


class ClientSummaryIn(BaseModel):
    tool: str = Field(pattern=_NAME)
    metrics: dict[str, dict[str, float]] = Field(max_length=500)
    thresholds: dict[str, dict[str, bool | None]] = Field(default_factory=dict, max_length=500)


@write_router.post("/v1/benchmarks/{run_id}/client-summary",
                   summary="Attach a load tool's own end-of-test summary (k6) to a run")
def attach_client_summary(run_id: str, body: ClientSummaryIn, services: ServicesDep
                          ) -> dict[str, Any]:
    run = _find(services, run_id)
    run["client_summary"] = body.model_dump()
    _save(services, run)
    return run


@write_router.post("/v1/benchmarks/{run_id}/pin",
                   summary="Make this run its scenario's baseline (unpins any other)")
def pin_run(run_id: str, services: ServicesDep) -> dict[str, Any]:
    run = _find(services, run_id)
    for record in services.store.benchmarks():
        other = _body(record)
        if other["scenario"] == run["scenario"] and other["pinned"] and other["id"] != run_id:
            other["pinned"] = False
            _save(services, other)
    run["pinned"] = True
    _save(services, run)
    return run


@read_router.get("/v1/benchmarks", summary="Benchmark runs, newest first")
def list_runs(services: ServicesDep, scenario: str | None = None,
              label: Annotated[list[str] | None, Query(description="key:value")] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    wanted = [tuple(x.split(":", 1)) for x in label or [] if ":" in x]
    runs = [_body(r) for r in services.store.benchmarks()]
    runs = [r for r in runs if (scenario is None or r["scenario"] == scenario)
            and all(r["labels"].get(k) == v for k, v in wanted)]
    return runs[::-1][:limit]


@read_router.get("/v1/benchmarks/{run_id}", summary="One run with its results")
def get_run(run_id: str, services: ServicesDep) -> dict[str, Any]:
    run = _find(services, run_id)
    if run["status"] == "running":  # results so far
        live = dict(run, trials=[[run["started"],
                                  min(time.time(), run["started"] + MAX_TRIAL_S)]])
        run["results"] = br.results(services.store, _load(services, live),
                                    run["fingerprint"], run["methodology"]["slices"])
    if run.get("results") is not None:  # read now: a k6 file may be imported after the run
        res = br.resolution_for(run["started"], time.time(),
                                services.store.retention)
        # the very windows the server's figures come from, so the two views compare
        windows = [w for w in run["results"]["windows"] if w]
        run["results"]["client"] = br.client_results(services.store, windows, run["id"], res)
    return run


def baseline_runs(services: Services, run: dict[str, Any], baseline: str,
                  branch: str, last: int) -> list[dict[str, Any]]:
    """The baseline of a run: given ids; a deploy's before window; else the scenario's pinned
    run; else the last ``last`` finished runs of ``branch`` (label ``branch``) before it."""
    if baseline != "auto":
        return [_find(services, i) for i in baseline.split(",")]
    if run.get("deploy"):  # a deploy's after window: its before window (api.deploys)
        return [_find(services, run["deploy"]["before_run"])]
    same = [_body(r) for r in services.store.benchmarks() if r.scenario == run["scenario"]]
    same = [r for r in same if r["id"] != run["id"] and r["status"] == "finished"]
    pinned = [r for r in same if r["pinned"]]
    if pinned:
        return pinned
    return [r for r in same if r["labels"].get("branch") == branch
            and r["started"] < run["started"]][-last:]


def compare_runs(services: Services, run: dict[str, Any], base: list[dict[str, Any]]
                 ) -> dict[str, Any]:
    mismatch = [b["id"] for b in base if b["scenario"] != run["scenario"]]
    if mismatch:
        raise Problem(409, "Different scenarios", f"run {run['id']} is scenario "
                      f"{run['scenario']!r}; {mismatch} are not: only runs of one scenario "
                      f"are compared", param="baseline")
    if not base:
        raise Problem(404, "No baseline", f"scenario {run['scenario']!r} has no pinned run and "
                      f"no earlier finished run on the baseline branch", param="baseline")
    now, retention = time.time(), services.store.retention
    res = max(br.resolution_for(r["started"], now, retention) for r in [run, *base])
    data = _load(services, run, res)
    trials = [t for b in base for t in b["trials"]]
    merged = dict(base[0], trials=trials)
    base_data = _load(services, merged, res)
    report = br.compare(services.store, data, base_data, _method(run))
    fp_run = (run.get("results") or {}).get("fingerprint", {})
    diffs = []
    for b in base:
        fp = (b.get("results") or {}).get("fingerprint", {})
        diffs += [{"key": k, "run": fp_run.get(k), "baseline": fp.get(k), "baseline_run": b["id"]}
                  for k in sorted(set(fp) | set(fp_run)) if fp.get(k) != fp_run.get(k)]
        diffs += [{"key": f"methodology.{k}", "run": v, "baseline": b["methodology"].get(k),
                   "baseline_run": b["id"]}
                  for k, v in run["methodology"].items() if b["methodology"].get(k) != v]
    return {"run": run["id"], "baseline": [b["id"] for b in base], "scenario": run["scenario"],
            "resolution": res, "fingerprint_differences": diffs, **report}


def before_after(services: Services, prefix: str, scenario: str, labels: dict[str, str],
                 where: list[str], slices: list[str], before: tuple[float, float],
                 after: tuple[float, float]) -> tuple[dict[str, Any], dict[str, Any],
                                                       dict[str, Any], str | None]:
    """A change judged (a deploy, a config change): the windows before and after it recorded
    as finished runs ``<prefix>-before`` / ``-after`` and compared. Returns both runs, the
    report and its verdict, None when no difference had enough data to be judged."""
    method = MethodologyIn(slices=slices).model_dump()

    def record(phase: str, t0: float, t1: float) -> dict[str, Any]:
        run = {"id": f"{prefix}-{phase}", "scenario": scenario,
               "labels": {**labels, "phase": phase}, "where": where, "methodology": method,
               "fingerprint": {}, "pinned": False, "started": t0, "trials": [[t0, t1]],
               "status": "running", "results": None}
        return _finish(services, run)

    run_before, run_after = record("before", *before), record("after", *after)
    report = compare_runs(services, run_after, [run_before])
    judged = any(d["verdict"] != "not_enough_data" for d in report["differences"])
    return run_before, run_after, report, report["verdict"] if judged else None


@read_router.get("/v1/benchmarks/{run_id}/compare",
                 summary="Run vs baseline: intervals, p-values, regressions and root cause")
def compare(run_id: str, services: ServicesDep,
            baseline: Annotated[str, Query(description="'auto', or run id(s), comma-separated")]
            = "auto",
            baseline_branch: str = "main", last: Annotated[int, Query(ge=1, le=50)] = 3,
            format: Literal["json", "markdown"] = "json") -> Any:
    run = _find(services, run_id)
    if run["status"] != "finished":
        raise Problem(409, "Still running", f"benchmark run {run_id!r} has not finished")
    report = compare_runs(services, run, baseline_runs(services, run, baseline,
                                                        baseline_branch, last))
    if format == "markdown":
        return PlainTextResponse(markdown(report), media_type="text/markdown")
    return report


def _pct(x: float | None, metric: str = "") -> str:
    """A change as a percentage (the error rate's in percentage points)."""
    if x is None:
        return "–"
    return f"{x * 100:+.2f} pp" if metric == "error_rate" else f"{x:+.1%}"


def markdown(report: dict[str, Any]) -> str:
    """The comparison as a Markdown report (for a pull request or a CI log)."""
    lines = [f"# Benchmark {report['run']} vs {', '.join(report['baseline'])} "
             f"({report['scenario']}): **{report['verdict']}**", "",
             f"Method: {report['method']}; alpha {report['alpha']}.", "",
             "| slice | metric | baseline | run | change | 95 % CI | p (Holm) | MDE | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for d in report["differences"]:
        if d["slice"] != "overall" and d["verdict"] in ("no_change", "not_enough_data"):
            continue
        p = "–" if d["p_adjusted"] is None else f"{d['p_adjusted']:.3g}"
        lines.append(f"| {d['slice']} | {d['metric']} | {_num(d['baseline'])} | "
                     f"{_num(d['run'])} | {_pct(d['change'], d['metric'])} | "
                     f"{_pct(d['ci'][0], d['metric'])} … {_pct(d['ci'][1], d['metric'])} | {p} | "
                     f"{_pct(d['mde'], d['metric'])} | "
                     f"{d['verdict']} |")
    rc = report.get("root_cause")
    if rc:
        where = ", ".join(f"{c['dimension']}={c['value']}" for c in rc["culprit"]) or "overall"
        lines += ["", f"## Root cause: {where} ({rc['metric']} "
                      f"{_pct(rc['change'], rc['metric'])})", ""]
        t = rc["time"]
        if t.get("grew_most"):
            lines.append(f"Time that grew most: **{t['grew_most']}** (queue wait "
                         f"{_pct(t['queue_wait_share'])[1:]}, Python {_pct(t['python_share'])[1:]},"
                         f" Elixir {_pct(t['elixir_share'])[1:]} of the mean's change).")
        for c in rc["contributions"][:5]:
            lines.append(f"- {c['dimension']}={c['value']}: {c['share']:.0%} of the extra slow "
                         f"requests")
        for s in rc["signals_moved"]:
            lines.append(f"- signal {s['signal']}: {s['baseline']:.3g} → {s['run']:.3g}")
    for f in report["fingerprint_differences"]:
        lines.append(f"- differs from {f['baseline_run']}: {f['key']}: {f['baseline']} → {f['run']}")
    return "\n".join(lines) + "\n"


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4g}"


@read_router.get("/v1/regressions",
                 summary="Change points in each scenario's history, with root cause")
def regressions(services: ServicesDep, scenario: str | None = None, branch: str = "main",
                metric: Literal["p50", "p95", "p99", "p99.9", "throughput", "error_rate"] = "p99"
                ) -> list[dict[str, Any]]:
    runs = [_body(r) for r in services.store.benchmarks()]
    runs = [r for r in runs if r["status"] == "finished" and r["labels"].get("branch") == branch
            and (scenario is None or r["scenario"] == scenario)]
    out = []
    for name in sorted({r["scenario"] for r in runs}):
        history = [r for r in runs if r["scenario"] == name
                   and (r["results"]["overall"].get(metric) is not None)]
        values = [r["results"]["overall"][metric] for r in history]
        points = st.e_divisive(values) if len(values) >= 6 else []
        bounds = [0, *points, len(values)]
        for k, cp in enumerate(points):
            before = values[bounds[k]:cp]
            after = values[cp:bounds[k + 2]]
            change = (sum(after) / len(after)) / (sum(before) / len(before)) - 1
            worse = change < 0 if metric == "throughput" else change > 0
            entry = {"scenario": name, "metric": metric, "run": history[cp]["id"],
                     "index": cp, "runs": len(values), "before": sum(before) / len(before),
                     "after": sum(after) / len(after), "change": change,
                     "kind": "regression" if worse else "improvement",
                     "labels": history[cp]["labels"], "root_cause": None}
            try:
                report = compare_runs(services, history[cp], history[max(bounds[k], cp - 3):cp])
                entry["root_cause"] = report["root_cause"]
            except Problem:
                pass  # the rollups of those runs are gone: the change point stands alone
            out.append(entry)
    return out


@read_router.get("/v1/ab", summary="Two variants running at once, compared by an mSPRT: "
                                   "valid however often it is looked at")
def ab(services: ServicesDep,
       a: Annotated[list[str], Query(description="filters of variant A, e.g. pool:blue")],
       b: Annotated[list[str], Query(description="filters of variant B")],
       start: Annotated[str, Query(alias="from")], end: Annotated[str, Query(alias="to")],
       metric: Literal["p50", "p95", "p99", "p99.9", "mean"] = "p99",
       alpha: Annotated[float, Query(gt=0, lt=0.5)] = 0.05) -> dict[str, Any]:
    try:
        t0, t1 = parse_time(start, "from"), parse_time(end, "to", up=True)
        parse_filters(a, br.DIMS), parse_filters(b, br.DIMS)
    except QueryError as exc:
        raise Problem(400, "Invalid A/B query", str(exc), param=exc.param) from exc
    diffs = br.ab_differences(services.store, a, b, t0, t1, metric)
    seq = st.msprt(diffs, alpha=alpha)
    windows_a = br.load(services.store, [(t0, t1)], a, 0.0, 60, steady=False)
    requests = sum(c.requests for c in windows_a.cells)
    per_window = requests / max(len(windows_a.grid[0]) if windows_a.grid else 1, 1)
    if seq.significant:
        faster = "faster" if seq.ratio < 1 else "slower"
        half = (seq.ci_high - seq.ci_low) / 2
        status = (f"B is {abs(seq.ratio - 1):.0%} ± {half:.0%} {faster} at {metric}, "
                  f"significant")
    elif seq.more_windows_needed is None:
        status = (f"not enough data yet (need at least {st.MIN_WINDOWS - seq.windows} more minutes with "
                  f"both variants)")
    else:
        more = seq.more_windows_needed * per_window
        status = f"no difference yet (need ~{math.ceil(more):,} more requests per variant)"
    return {"a": a, "b": b, "metric": metric, "minutes": seq.windows, "ratio": seq.ratio,
            "ci": [seq.ci_low, seq.ci_high], "p_value": seq.p_value,
            "significant": seq.significant, "status": status,
            "method": "mSPRT, normal mixture (tau 0.1) on paired per-minute log ratios"}
