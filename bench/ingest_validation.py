"""Validation + normalisation throughput vs a bare ``orjson.loads`` of the same batches.

    .venv/bin/python -m bench.ingest_validation
"""

from __future__ import annotations

import msgspec
import orjson

from bench.common import batches, best_of, report
from harness.data import requests
from schemas.decode import decode_json
from simulator.run import to_native

N = 200_000


def main() -> None:
    canonical = batches(N)
    native_events = [to_native(e) for e in requests(N // 4, N / 4000, seed=2)]
    enc = msgspec.json.Encoder()
    native = [enc.encode(native_events[i:i + 500]) for i in range(0, len(native_events), 500)]

    def loads(bs):
        return lambda: [orjson.loads(b) for b in bs]

    def decode(bs):
        return lambda: [decode_json(b) for b in bs]

    base = N / best_of(loads(canonical))
    rows = [("bare orjson.loads (baseline)", base, "events/s"),
            ("decode + validate, canonical", N / best_of(decode(canonical)), "events/s")]
    report("ingest: validation of canonical batches (500 events/batch)", rows, base)
    n_native = len(native_events)
    base_native = n_native / best_of(loads(native))
    report("ingest: native Snakepit envelopes (normalise + validate)", [
        ("bare orjson.loads (baseline)", base_native, "events/s"),
        ("decode + normalise + validate", n_native / best_of(decode(native)), "events/s"),
    ], base_native)


if __name__ == "__main__":
    main()
