"""Each Snakepit call counted once, whether it arrives as telemetry, as spans, or as both.

Snakepit gives every call a correlation id, carried by the ``grpc_worker.execute`` telemetry
span (metadata ``correlation_id``) and by its OpenTelemetry spans (``snakepit.correlation_id``).
Requests from those two sources carry it as ``trace_id``; the first copy of a call counts, a
later one is dropped, and if only the later one has Python time that time is kept as a
``python`` call event, which ``streams.python_join`` joins into the first copy.

The memory is bounded (the last ``CAPACITY`` calls, ~40 bytes each) and part of the engine's
checkpoint, so a replay after a crash drops exactly what the first run dropped. Both copies of
a call must reach the same engine: they do when both go through the API or the SDK, which key
Kafka messages by logical pool.
"""

from __future__ import annotations

import hashlib

import numpy as np

from schemas.events import Event, Python, Request

SOURCES = ("snakepit.grpc_worker.", "otlp")


def call_key(correlation_id: str) -> int:
    """A correlation id as a 64-bit hash: the same in every process, and 8 bytes to keep."""
    return int.from_bytes(hashlib.blake2b(correlation_id.encode(), digest_size=8).digest(), "big")


class CallDeduper:
    """The correlation ids of recent calls (as 64-bit hashes, stable across processes)."""

    CAPACITY = 1 << 17

    def __init__(self) -> None:
        self.seen: dict[int, None] = {}  # insertion-ordered: the oldest is evicted first
        self.dropped = 0

    def filter(self, reqs: list[Request]) -> tuple[list[Request], list[Event]]:
        """The requests that are a call's first copy, and Python events from dropped copies."""
        keep: list[Request] = []
        python: list[Event] = []
        seen = self.seen
        for r in reqs:
            if r.trace_id is None or r.source is None or not r.source.startswith(SOURCES):
                keep.append(r)
                continue
            key = call_key(r.trace_id)
            if key in seen:
                self.dropped += 1
                if r.python_us is not None:
                    python.append(Python(time=r.time, kind="call", pool=r.pool, command=r.command,
                                         worker_id=r.worker_id, trace_id=r.trace_id,
                                         python_us=r.python_us, name="request.python_us"))
                continue
            seen[key] = None
            if len(seen) > self.CAPACITY:
                del seen[next(iter(seen))]
            keep.append(r)
        return keep, python

    def state(self) -> bytes:
        return np.fromiter(self.seen, dtype=np.uint64, count=len(self.seen)).tobytes()

    def load(self, data: bytes) -> None:
        self.seen = dict.fromkeys(np.frombuffer(data, dtype=np.uint64).tolist())
