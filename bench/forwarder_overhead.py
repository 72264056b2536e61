"""The Elixir forwarder's cost per event on the BEAM, against a bare ``send/2`` in the same run
(integrations/elixir/snakepit_perf/bench/handler.exs, run with Debian's mix). Aim: <= 10 us.

    .venv/bin/python -m bench.forwarder_overhead [--events 100000]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1] / "integrations" / "elixir" / "snakepit_perf"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    mix = shutil.which("mix")
    if mix is None:
        raise SystemExit("mix not found: install Debian's elixir (make test does)")
    subprocess.run([mix, "run", "bench/handler.exs", str(args.events)], cwd=PROJECT, check=True)


if __name__ == "__main__":
    main()
