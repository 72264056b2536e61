"""Real Locust, headless, against `simulate --serve` while the embedded `run` records: the gate
passes the baseline and fails, naming the command, once that command is 20 % slower."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from junitparser import JUnitXml

from tests.integration import kafka_helpers as kh
from tests.integration.test_durability import start_run
from tests.integration.test_simulate import free_port

LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = str(Path(__file__).with_name("load") / "locustfile.py")
SECONDS = 90  # 9 windows of 10 s: enough blocks for the bootstrap to judge


def serve(target: int, monitor: str, log: Path, *extra: str) -> subprocess.Popen:
    proc = subprocess.Popen([kh.EXE, "simulate", "--serve", str(target), "--url", monitor,
                             "--pool-size", "6", *extra], stdout=open(log, "ab"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{target}/call/ping", timeout=2).status_code < 500
        except httpx.TransportError:
            return False

    kh.wait_for(up, 30, "simulate --serve to answer", procs=((proc, log),))
    return proc


def bench(monitor: str, target: int, branch: str) -> tuple[str, str]:
    out = subprocess.run(
        [kh.EXE, "bench", "run", "--scenario", "locust-predict", "--url", monitor, "--label",
         f"branch={branch}", "--metric", "p99", "--slice", "command", "--",
         LOCUST, "-f", LOCUSTFILE, "--headless", "-u", "8", "-r", "8", "-t", f"{SECONDS}s",
         "--host", f"http://127.0.0.1:{target}", "--only-summary", "--loglevel", "WARNING",
         "--exit-code-on-error", "0"],  # the pools fail 0.5 % of calls, as configured
        capture_output=True, text=True, timeout=SECONDS + 240, env={**os.environ})
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = out.stdout.split("benchmark run ")[1].split()[0]
    return run_id, out.stdout


def gate(monitor: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kh.EXE, "gate", "--url", monitor, *args], capture_output=True,
                          text=True, timeout=120)


def test_locust_run_passes_the_gate_and_a_slower_command_fails_it(tmp_path: Path):
    port, target = free_port(), free_port()
    run = start_run(tmp_path / "data", port, tmp_path / "run.log")
    monitor = f"http://127.0.0.1:{port}"
    try:
        app = serve(target, monitor, tmp_path / "serve.log")
        try:
            base, _ = bench(monitor, target, "main")
        finally:
            app.terminate()
            app.wait(30)
        ok = gate(monitor, "--run", base, "--rule", "p99<2s", "--rule", "error_rate<0.05")
        assert ok.returncode == 0, ok.stdout + ok.stderr

        app = serve(target, monitor, tmp_path / "serve.log", "--slow", "predict:1.2")
        try:
            slow, printed = bench(monitor, target, "feature")
        finally:
            app.terminate()
            app.wait(30)
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
        requests = httpx.get(f"{monitor}/v1/benchmarks/{slow}").json()["results"]["overall"]
        assert requests["requests"] > 3000
    finally:
        run.terminate()
        run.wait(60)
