"""Real Locust, headless, against `simulate --serve` while the embedded `run` records: the gate
passes the baseline and fails, naming the command, once that command is 20 % slower; the
snakepit-perf plugin puts Locust's own view of each request beside the server's, under
`bench run` (Locust as a library) and under plain `locust` (a run of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from junitparser import JUnitXml

from harness import kafka as kh
from harness.procs import free_port, recording

LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = str(Path(__file__).with_name("load") / "locustfile.py")
SECONDS = 60  # 6 windows of 10 s: enough blocks for the bootstrap to judge a 20 % change


@contextmanager
def serving(target: int, monitor: str, log: Path, *extra: str) -> Iterator[None]:
    """`simulate --serve` on ``target``, reporting to ``monitor``, until the block ends."""
    proc = subprocess.Popen([kh.EXE, "simulate", "--serve", str(target), "--url", monitor,
                             "--pool-size", "6", *extra], stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{target}/call/ping", timeout=2).status_code < 500
        except httpx.TransportError:
            return False

    try:
        kh.wait_for(up, 30, "simulate --serve to answer", procs=((proc, log),))
        yield
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[str]:
    with recording(tmp_path) as url:
        yield url


def bench(monitor: str, target: int, branch: str, library: bool = False) -> tuple[str, str]:
    """A run of Locust under `bench run`: as a library (--locustfile) or its own CLI."""
    host = f"http://127.0.0.1:{target}"
    load = ["--locustfile", LOCUSTFILE, "--users", "8", "--spawn-rate", "8", "--duration",
            str(SECONDS), "--host", host] if library else [
        "--", LOCUST, "-f", LOCUSTFILE, "--headless", "-u", "8", "-r", "8", "-t", f"{SECONDS}s",
        "--host", host, "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0"]  # the pools fail 0.5 % of calls, as configured
    out = subprocess.run(
        [kh.EXE, "bench", "run", "--scenario", "locust-predict", "--url", monitor, "--label",
         f"branch={branch}", "--metric", "p99", "--slice", "command", *load],
        capture_output=True, text=True, timeout=SECONDS + 240, env={**os.environ})
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split("benchmark run ")[1].split()[0]
    return run_id, out.stdout


def gate(monitor: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kh.EXE, "gate", "--url", monitor, *args], capture_output=True,
                          text=True, timeout=120)


def test_locust_run_passes_the_gate_and_a_slower_command_fails_it(monitor: str, tmp_path: Path):
    target = free_port()
    with serving(target, monitor, tmp_path / "serve.log"):
        base, _ = bench(monitor, target, "main", library=True)
    ok = gate(monitor, "--run", base, "--rule", "p99<2s", "--rule", "error_rate<0.05")
    assert ok.returncode == 0, ok.stdout + ok.stderr

    with serving(target, monitor, tmp_path / "serve.log", "--slow", "predict:1.2"):
        slow, printed = bench(monitor, target, "feature")
    junit = tmp_path / "gate.xml"
    bad = gate(monitor, "--run", slow, "--baseline", base, "--rule", "regression(p99)<5%",
               "--rule", "p99<2s", "--junit", str(junit), "--markdown",
               str(tmp_path / "gate.md"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert (suite.tests, suite.failures) == (2, 1)
    failure = next(c for c in suite if not c.is_passed).result[0]
    assert "command=predict" in failure.message, failure.message
    md = (tmp_path / "gate.md").read_text()
    assert "`regression(p99)<5%` | **fail**" in md and "command=predict" in md
    for run_id in (base, slow):  # the client's view beside the server's, both ways
        results = httpx.get(f"{monitor}/v1/benchmarks/{run_id}").json()["results"]
        server, client = results["overall"], results["client"]
        assert server["requests"] > 3000
        # every call the client made reached a pool, once (the trial ends as Locust stops)
        assert abs(client["overall"]["requests"] - server["requests"]) <= \
            0.01 * server["requests"], (client["overall"], server)
        # the client waits for the server, and for HTTP on top
        assert client["locust predict"]["p50"] > results["by"]["command"]["predict"]["p50"]
        assert client["overall"]["errors"] > 0  # the pools' 0.5 % failures reach Locust


def test_the_plugin_opens_and_finishes_a_run_of_its_own_under_plain_locust(monitor: str,
                                                                          tmp_path: Path):
    target = free_port()
    with serving(target, monitor, tmp_path / "serve.log"):
        out = subprocess.run(
            [LOCUST, "-f", LOCUSTFILE, "--headless", "-u", "4", "-r", "4", "-t", "20s",
             "--host", f"http://127.0.0.1:{target}", "--only-summary",
             "--exit-code-on-error", "0", "--snakepit-perf-url", monitor],
            capture_output=True, text=True, timeout=240,
            env={**os.environ, "GITHUB_SHA": "abc123", "GITHUB_REF_NAME": "feature-x"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert "benchmark run" in out.stderr and "finished" in out.stderr, out.stderr
    runs = httpx.get(f"{monitor}/v1/benchmarks").json()
    assert len(runs) == 1
    got = httpx.get(f"{monitor}/v1/benchmarks/{runs[0]['id']}").json()
    assert got["status"] == "finished" and got["scenario"] == "locustfile"
    assert got["labels"] == {"tool": "locust", "host": f"http://127.0.0.1:{target}",
                             "users": "4", "spawn_rate": "4", "git_sha": "abc123",
                             "branch": "feature-x"}
    client, server = got["results"]["client"]["overall"], got["results"]["overall"]
    assert client["requests"] > 500 and server["requests"] > 500
    assert abs(client["requests"] - server["requests"]) <= 0.02 * server["requests"]
