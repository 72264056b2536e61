"""Golden rollups: a fixed, locally disordered simulated stream (every event type, an
incident) through the engine, every rollup's bytes hashed. A refactor must leave them byte for
byte as they were, run straight through or checkpointed and restored midway.

The hash was taken before the engine's clock, the runners and the shared vocabulary moved
(commit 8e6a673) and still holds. (The level-by-level cascade of that commit changed two of
11,914 rows against d25e5c3: the last bit of two gauge sums, added in another order.) If it
changes, rollups changed: say why in the commit (a dependency upgrade that changes digests or
encodings changes it too).
"""

from __future__ import annotations

import hashlib
import random

import pytest

from simulator.model import Incident, Simulation
from streams.engine import Engine
from streams.rollup import Rollup

T0 = 1_796_284_800  # fixed (not "yesterday"): the stream, so the bytes, never change
GOLDEN = "7277803eface29bf56c7a308663085b0a72eda3a34c27eb1aece70651dd1bafb"
ROLLUPS = 11914


def stream() -> list:
    events = list(Simulation(40, T0, 900, seed=5, incidents=[
        Incident("latency_regression", "default", T0 + 300, T0 + 600)]).events())
    rng = random.Random(7)
    for i in range(0, len(events), 2000):  # shuffled in chunks: some arrive late
        chunk = events[i:i + 2000]
        rng.shuffle(chunk)
        events[i:i + 2000] = chunk
    return events


def rollup_hash(rollups: list[Rollup]) -> tuple[str, int]:
    h = hashlib.sha256()
    rows = sorted((r.family, r.labels, r.resolution, r.bucket, r.late, r.tag or "",
                   r.agg.to_bytes()) for r in rollups)
    for row in rows:
        h.update(repr(row[:6]).encode())
        h.update(row[6])
    return h.hexdigest(), len(rows)


@pytest.mark.parametrize("restore_at", [None, 37], ids=["straight", "checkpointed"])
def test_rollups_are_byte_for_byte_the_golden_ones(restore_at: int | None):
    events, eng, out = stream(), Engine(lateness=2.0), []
    for n, i in enumerate(range(0, len(events), 500)):
        if n == restore_at:
            eng = Engine.restore(eng.snapshot())
        out += eng.process(events[i:i + 500], tag=str(i))  # tags: offsets
    out += eng.flush()
    assert sum(r.late for r in out) == 8490, "the stream exercises late deltas"
    assert rollup_hash(out) == (GOLDEN, ROLLUPS)
