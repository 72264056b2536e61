"""Gate rules as k6 users write them, and the reports read back by a real JUnit XML reader."""

from __future__ import annotations

import pytest
from junitparser import JUnitXml

from snakepit_perf import gate


@pytest.mark.parametrize(("text", "stat", "op", "threshold", "where"), [
    ("p99<250ms", "p99", "<", 0.25, {}),
    ("p(95)<200", "p95", "<", 0.2, {}),  # k6: a duration without a unit is in ms
    ("p99.9 <= 1.5s", "p99.9", "<=", 1.5, {}),
    ("error_rate<0.01", "error_rate", "<", 0.01, {}),
    ("error_rate<1%", "error_rate", "<", 0.01, {}),
    ("throughput>500/s", "throughput", ">", 500, {}),
    ("p99{pool=gpu, command=generate}<1s", "p99", "<", 1.0,
     {"pool": "gpu", "command": "generate"}),
])
def test_sla_rules_parse(text, stat, op, threshold, where):
    r = gate.parse_rule(text)
    assert (r.kind, r.stat, r.op, r.where) == ("sla", stat, op, where)
    assert r.threshold == pytest.approx(threshold)


def test_regression_rules_parse():
    r = gate.parse_rule("regression(p99{pool=gpu})<5%")
    assert (r.kind, r.stat, r.where, r.threshold) == ("regression", "p99", {"pool": "gpu"}, 0.05)


@pytest.mark.parametrize("text", ["p99<", "p99<250kg", "throughput>5ms", "error_rate<3/s",
                                  "p99{pool}<1s", "latency<1s", "regression(p99)<5"])
def test_malformed_rules_cannot_be_judged(text):
    with pytest.raises(gate.CannotJudge, match="rule"):
        gate.parse_rule(text)


def test_junit_report_has_one_case_per_rule_and_the_failure_carries_the_numbers(tmp_path):
    ok = gate.Verdict(gate.parse_rule("p99<1s"), True, 0.2, "200.0ms over 10 requests")
    bad = gate.Verdict(gate.parse_rule("regression(p99)<5%"), False, 0.3, "p99 +20.0%",
                       baseline=0.25, interval=(0.12, 0.28))
    path = tmp_path / "gate.xml"
    path.write_bytes(gate.junit([ok, bad], 1.5))
    suite = next(iter(JUnitXml.fromfile(str(path))))
    assert (suite.tests, suite.failures) == (2, 1)
    cases = {c.name: c for c in suite}
    assert cases["p99<1s"].is_passed
    failure = cases["regression(p99)<5%"].result[0]
    assert failure.message == "p99 +20.0%"
    assert "baseline: 0.25" in failure.text and "+12.0% … +28.0%" in failure.text
    md = gate.markdown([ok, bad])
    assert "**failed**" in md and "`regression(p99)<5%` | **fail** | 300.0ms | 250.0ms" in md
