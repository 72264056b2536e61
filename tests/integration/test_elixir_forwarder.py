"""The Elixir forwarder's own tests (`mix test`, Debian's elixir), with a real `run` for the
ones that POST: term rendering, batching, backpressure, BEAM sampling, and stored counts equal
to what the forwarder sent (integrations/elixir/snakepit_perf/test/)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from schemas.native import TABLE

PROJECT = Path(__file__).resolve().parents[2] / "integrations" / "elixir" / "snakepit_perf"


def test_the_forwarder_attaches_to_exactly_the_events_the_normaliser_maps():
    listed = [line for line in (PROJECT / "priv" / "events.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert listed == sorted(TABLE)


def test_mix_test_against_a_real_run(run_server: str, tmp_path: Path):
    mix = shutil.which("mix")
    assert mix, "Debian's elixir is not installed (make test installs it)"
    env = {**os.environ, "SNAKEPIT_PERF_URL": run_server, "MIX_ENV": "test",
           "MIX_HOME": str(tmp_path / "mix"), "MIX_BUILD_ROOT": str(tmp_path / "_build")}
    out = subprocess.run([mix, "test", "--no-color"], cwd=PROJECT, env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-4000:]
    assert "Excluding" not in text  # the :service tests ran
    m = re.search(r"(\d+) tests, 0 failures", text)
    assert m and int(m.group(1)) >= 17, text[-2000:]
