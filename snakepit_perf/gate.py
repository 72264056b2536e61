"""``snakepit-perf gate``: pass or fail a pipeline on what the service measured (R14).

Rules are written as k6 users write thresholds:

- SLA rules: ``p99<250ms``, ``p(95)<200`` (no unit: milliseconds, as in k6), ``mean<=80ms``,
  ``error_rate<0.01``, ``throughput>500/s``, optionally for a slice: ``p99{pool=gpu}<1s``.
  They are judged on ``/v1/query`` over the range (``--from``/``--to``, or the run's windows).
- Regression rules: ``regression(p99)<5%`` — no significant regression larger than 5 % at P99
  against the run's baseline (``/v1/benchmarks/{id}/compare``); needs ``--run``.

Exit codes: 0 every rule passed; 1 a rule failed; 2 it could not judge (no data in the range,
no baseline, a malformed rule, the API unreachable), with a one-line reason.
"""

from __future__ import annotations

import re
import sys
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

PASS, FAIL, CANNOT = 0, 1, 2
DEPLOY_WAIT_S = 1800.0  # gate --deploy --wait: at most this long for the judge's verdict
_SLA = re.compile(r"^\s*(?P<stat>p\(\d+(?:\.\d+)?\)|p\d+(?:\.\d+)?|mean|max|error_rate|throughput)"
                  r"(?:\{(?P<where>[^}]*)\})?\s*(?P<op><=|>=|<|>)\s*"
                  r"(?P<value>\d+(?:\.\d+)?(?:e-?\d+)?)\s*(?P<unit>ms|s|us|µs|/s|%)?\s*$")
_REGRESSION = re.compile(r"^\s*regression\((?P<stat>p\d+(?:\.\d+)?|throughput|error_rate)"
                         r"(?:\{(?P<where>[^}]*)\})?\)\s*<\s*(?P<value>\d+(?:\.\d+)?)\s*%\s*$")
_SCALE = {"ms": 1e-3, "s": 1.0, "us": 1e-6, "µs": 1e-6, None: 1e-3}


class CannotJudge(Exception):
    """Why the gate could not judge (exit 2)."""


@dataclass
class Rule:
    text: str
    kind: str  # sla | regression
    stat: str
    where: dict[str, str] = field(default_factory=dict)
    op: str = "<"
    threshold: float = 0.0  # seconds for latencies; a fraction for rates and regressions


@dataclass
class Verdict:
    rule: Rule
    passed: bool
    value: float | None
    detail: str
    baseline: float | None = None
    interval: tuple[float | None, float | None] | None = None


def parse_rule(text: str) -> Rule:
    if m := _REGRESSION.match(text):
        return Rule(text, "regression", m["stat"], _where(m["where"], text), "<",
                    float(m["value"]) / 100)
    m = _SLA.match(text)
    if not m:
        raise CannotJudge(f"rule {text!r}: write e.g. p99<250ms, error_rate<0.01, "
                          f"throughput>500/s, p99{{pool=gpu}}<1s or regression(p99)<5%")
    stat = m["stat"].replace("(", "").replace(")", "")
    value, unit = float(m["value"]), m["unit"]
    if stat in ("error_rate", "throughput"):
        if unit not in ((None, "%") if stat == "error_rate" else (None, "/s")):
            wants = "a fraction or %" if stat == "error_rate" else "/s"
            raise CannotJudge(f"rule {text!r}: {stat} takes {wants}")
        threshold = value / 100 if unit == "%" else value
    else:
        if unit in ("/s", "%"):
            raise CannotJudge(f"rule {text!r}: a latency takes ms, s or us")
        threshold = value * _SCALE[unit]
    return Rule(text, "sla", stat, _where(m["where"], text), m["op"], threshold)


def _where(text: str | None, rule: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key or not value:
            raise CannotJudge(f"rule {rule!r}: a slice is {{dim=value,...}}")
        out[key.strip()] = value.strip()
    return out


def load_rules(rules: list[str], path: Path | None) -> list[Rule]:
    """Rules from flags and from a TOML file (``rules = ["p99<250ms", ...]``)."""
    texts = list(rules)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CannotJudge(f"rules file {path}: {exc}") from exc
        listed = data.get("rules", [])
        if not isinstance(listed, list) or not all(isinstance(r, str) for r in listed):
            raise CannotJudge(f"rules file {path}: `rules` must be a list of strings")
        texts += listed
    if not texts:
        raise CannotJudge("no rules: give --rule or --rules FILE")
    return [parse_rule(t) for t in texts]


def _holds(value: float, op: str, threshold: float) -> bool:
    return {"<": value < threshold, "<=": value <= threshold, ">": value > threshold,
            ">=": value >= threshold}[op]


class Judge:
    """Evaluates rules over the API."""

    def __init__(self, client: httpx.Client, ranges: list[tuple[float, float]],
                 where: list[str], run: str | None, baseline: str) -> None:
        self.client, self.ranges, self.where = client, ranges, where
        self.run, self.baseline = run, baseline
        self._report: dict[str, Any] | None = None

    def _query(self, metric: str, stat: str, where: dict[str, str]) -> tuple[float, float]:
        """``(value, requests)`` over the ranges (percentiles: of their union, one range only
        is exact; several trials answer the worst trial, as a gate should)."""
        values, requests = [], 0.0
        filters = self.where + [f"{k}:{v}" for k, v in where.items()]
        for t0, t1 in self.ranges:
            q = {"from": t0, "to": t1, "where": filters}
            n = self._one({**q, "metric": "requests_total", "stat": "count"})
            requests += n or 0
            if not n:
                continue
            if metric == "error_rate":
                ok = self._one({**q, "metric": "request_success_ratio", "stat": "value"})
                values.append(1 - ok)
            elif metric == "throughput":
                values.append(n / (t1 - t0))
            else:
                values.append(self._one({**q, "metric": "request_duration_seconds",
                                         "stat": stat}))
        if not requests:
            which = f" for {', '.join(filters)}" if filters else ""
            raise CannotJudge(f"no requests in the range{which}")
        worse = min if metric == "throughput" else max
        return worse(values), requests

    def _one(self, params: dict[str, Any]) -> float | None:
        r = self.client.get("/v1/query", params=params)
        if r.status_code != 200:
            raise CannotJudge(f"/v1/query answered {r.status_code}: {_detail(r)}")
        points = [p[1] for s in r.json()["series"] for p in s["points"]]
        return points[0] if points else None

    def sla(self, rule: Rule) -> Verdict:
        value, n = self._query(rule.stat, rule.stat, rule.where)
        passed = _holds(value, rule.op, rule.threshold)
        return Verdict(rule, passed, value, f"{_show(rule.stat, value)} over {n:.0f} requests "
                       f"({'within' if passed else 'breaks'} {rule.op}"
                       f"{_show(rule.stat, rule.threshold)})")

    def regression(self, rule: Rule) -> Verdict:
        if self.run is None:
            raise CannotJudge(f"rule {rule.text!r} needs --run (a benchmark run to compare)")
        if self._report is None:
            r = self.client.get(f"/v1/benchmarks/{self.run}/compare",
                                params={"baseline": self.baseline})
            if r.status_code != 200:
                raise CannotJudge(f"no comparison for run {self.run}: {_detail(r)}")
            self._report = r.json()
        name = ",".join(f"{k}={v}" for k, v in rule.where.items()) or "overall"
        d = next((d for d in self._report["differences"] if d["slice"] == name
                  and d["metric"] == rule.stat), None)
        if d is None or d["verdict"] == "not_enough_data":
            raise CannotJudge(f"rule {rule.text!r}: the comparison has no {rule.stat} for "
                              f"{name} (too few requests or windows)")
        change = d["change"]
        worse = -change if rule.stat == "throughput" else change
        failed = d["verdict"] == "regression" and worse > rule.threshold
        detail = (f"{rule.stat} {_pct(change)} vs baseline "
                  f"{', '.join(self._report['baseline'])} ({d['verdict']}, p "
                  f"{_p(d['p_adjusted'])})")
        cause = self._report.get("root_cause")
        if failed and cause and cause["culprit"]:
            detail += "; root cause: " + ", ".join(
                f"{c['dimension']}={c['value']}" for c in cause["culprit"])
        return Verdict(rule, not failed, d["run"], detail, d["baseline"], tuple(d["ci"]))


def _detail(r: httpx.Response) -> str:
    try:
        return r.json().get("detail", r.text[:200])
    except ValueError:
        return r.text[:200]


def _show(stat: str, v: float) -> str:
    if stat == "error_rate":
        return f"{v:.4g}"
    if stat == "throughput":
        return f"{v:.1f}/s"
    return f"{v * 1000:.1f}ms"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1%}"


def _p(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def junit(verdicts: list[Verdict], seconds: float) -> bytes:
    """A JUnit XML report: one test case per rule; a failure carries value, baseline, interval."""
    failures = sum(not v.passed for v in verdicts)
    suite = ET.Element("testsuite", name="snakepit-perf gate", tests=str(len(verdicts)),
                       failures=str(failures), errors="0", time=f"{seconds:.3f}")
    for v in verdicts:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{v.rule.kind}",
                             name=v.rule.text, time="0")
        if not v.passed:
            text = [f"value: {v.value}"]
            if v.baseline is not None:
                text.append(f"baseline: {v.baseline}")
            if v.interval is not None:
                text.append(f"interval of the change: {_pct(v.interval[0])} … "
                            f"{_pct(v.interval[1])}")
            ET.SubElement(case, "failure", message=v.detail, type=v.rule.kind).text = \
                "\n".join(text)
    return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def markdown(verdicts: list[Verdict]) -> str:
    ok = all(v.passed for v in verdicts)
    lines = [f"## snakepit-perf gate: **{'passed' if ok else 'failed'}**", "",
             "| rule | result | value | baseline | interval | detail |",
             "|---|---|---|---|---|---|"]
    for v in verdicts:
        value = "–" if v.value is None else _show(v.rule.stat, v.value)
        base = "–" if v.baseline is None else _show(v.rule.stat, v.baseline)
        interval = "–" if v.interval is None else f"{_pct(v.interval[0])} … {_pct(v.interval[1])}"
        lines.append(f"| `{v.rule.text}` | {'pass' if v.passed else '**fail**'} | {value} | "
                     f"{base} | {interval} | {v.detail} |")
    return "\n".join(lines) + "\n"


def as_json(verdicts: list[Verdict]) -> bytes:
    return orjson.dumps({"passed": all(v.passed for v in verdicts), "rules": [
        {"rule": v.rule.text, "kind": v.rule.kind, "passed": v.passed, "value": v.value,
         "baseline": v.baseline, "interval": v.interval, "detail": v.detail}
        for v in verdicts]}, option=orjson.OPT_INDENT_2)


def deploy_verdict(client: httpx.Client, version: str, wait: bool,
                   timeout_s: float = DEPLOY_WAIT_S) -> tuple[Verdict, dict[str, Any]]:
    """The stored verdict of a deploy as a rule that fails when it regressed; with ``wait``,
    until the judge has given it (after the deploy's windows have passed)."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get(f"/v1/deploys/{version}")
        if r.status_code == 200:
            break
        if r.status_code != 404 or not wait or time.monotonic() > deadline:
            raise CannotJudge(f"deploy {version}: {_detail(r)}")
        time.sleep(2.0)
    note = r.json()
    if note["status"] == "not_enough_data":
        raise CannotJudge(f"deploy {version}: too few requests before or after it to judge")
    worst = (note["regressions"] or note["improvements"] or [{}])[0]
    rule = Rule(f"deploy {version} not regressed", "deploy", worst.get("metric", "p99"))
    return Verdict(rule, note["status"] != "regressed", worst.get("run"), note["summary"],
                   worst.get("baseline"), tuple(worst["ci"]) if worst else None), note


def run(url: str, key: str | None, rules: list[str], rules_file: Path | None,
        start: str | None, end: str | None, where: list[str], run_id: str | None,
        baseline: str, outputs: dict[str, Path | None], wait: bool, out=sys.stdout,
        deploy: str | None = None) -> int:
    import time

    from snakepit_perf.bench_run import settle

    t = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        parsed = load_rules(rules, rules_file) if rules or rules_file or not deploy else []
        with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
            verdicts: list[Verdict] = []
            if deploy:  # the deploy's after window against its before window
                judged, note = deploy_verdict(client, deploy, wait)
                verdicts.append(judged)
                run_id, baseline = note["run"], note["baseline"]
            if parsed:
                ranges = _ranges(client, start, end, run_id)
                if wait:
                    settle(client, [list(r) for r in ranges], where)
                judge = Judge(client, ranges, where, run_id, baseline)
                verdicts += [judge.sla(r) if r.kind == "sla" else judge.regression(r)
                             for r in parsed]
    except CannotJudge as exc:
        print(f"snakepit-perf gate: cannot judge: {exc}", file=sys.stderr)
        return CANNOT
    except httpx.HTTPError as exc:
        print(f"snakepit-perf gate: cannot judge: {url}: {exc}", file=sys.stderr)
        return CANNOT
    md = markdown(verdicts)
    print(md, file=out)
    writers = {"junit": lambda: junit(verdicts, time.perf_counter() - t),
               "markdown": lambda: md.encode(), "json": lambda: as_json(verdicts)}
    for kind, path in outputs.items():
        if path is not None:
            path.write_bytes(writers[kind]())
    return PASS if all(v.passed for v in verdicts) else FAIL


def _ranges(client: httpx.Client, start: str | None, end: str | None,
            run_id: str | None) -> list[tuple[float, float]]:
    if start is not None and end is not None:
        return [(_time(start), _time(end))]
    if start is not None or end is not None:
        raise CannotJudge("give both --from and --to")
    if run_id is None:
        raise CannotJudge("give --from and --to, or --run")
    r = client.get(f"/v1/benchmarks/{run_id}")
    if r.status_code != 200:
        raise CannotJudge(f"run {run_id}: {_detail(r)}")
    body = r.json()
    windows = [tuple(w) for w in (body.get("results") or {}).get("windows", []) if w]
    if not windows:
        raise CannotJudge(f"run {run_id} has no stored windows (finished? warm-up longer "
                          f"than the run?)")
    return windows


def _time(text: str) -> float:
    """As ``/v1/query`` takes it: epoch seconds or RFC 3339."""
    from query.engine import QueryError, parse_time

    try:
        return float(parse_time(text, "from"))
    except QueryError as exc:
        raise CannotJudge(str(exc)) from exc

