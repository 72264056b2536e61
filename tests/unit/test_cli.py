"""The console script is the real entry point: help lists what exists, `run` serves HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

EXE = str(Path(sys.executable).with_name("snakepit-perf"))


def test_help_lists_exactly_the_commands_that_exist():
    out = subprocess.run([EXE, "--help"], capture_output=True, text=True, check=True).stdout
    listed = re.findall(r"^    (\S+)\s", out, flags=re.MULTILINE)
    assert listed == ["run", "worker", "api", "export", "store", "keys", "simulate", "bench",
                      "gate", "annotate", "import", "collect", "infra"]


def test_run_serves_health_on_the_chosen_port(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([EXE, "run", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "run did not start serving in 30 s"
                time.sleep(0.2)
        assert body["status"] == "ok" and body["mode"] == "embedded"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_run_refuses_a_public_bind_without_auth(tmp_path: Path):
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([EXE, "run", "--host", "0.0.0.0"], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0 without API keys" in proc.stderr
