"""Fixtures the integration tests share."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import kafka as kh
from harness.procs import free_port, up


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator[str]:
    """A real embedded `snakepit-perf run` on a free port, its data in the test's own folder."""
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path)}
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 (the child writes to it until the end)
    run = subprocess.Popen([kh.EXE, "run", "--port", str(port)], env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        kh.wait_for(lambda: up(port), 30, "run to serve", procs=((run, tmp_path / "run.log"),))
        yield f"http://127.0.0.1:{port}"
    finally:
        run.terminate()
        run.wait(30)
        log.close()
