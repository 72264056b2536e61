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

from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from schemas.events import Event, Python, Request

SOURCES = ("snakepit.grpc_worker.", "otlp")


_PRIME, _OFFSET = np.uint64(0x100000001B3), np.uint64(0xCBF29CE484222325)  # FNV-1a's


def call_keys(ids: Sequence[str]) -> list[int]:
    """Correlation ids as 64-bit hashes: the same in every process (Python's ``hash`` of a
    string is not), 8 bytes to keep, and a whole batch at once.

    FNV-1a over each id's UTF-8 bytes taken 8 at a time (zero-padded, length mixed in first),
    then SplitMix64's finaliser to spread the bits: a few numpy operations per 8 bytes of the
    longest id, ~0.2 µs an id where a hashlib digest per id costs ~0.7 µs."""
    if not ids:
        return []
    raw = [i.encode() for i in ids]
    n = len(raw)
    length = np.fromiter(map(len, raw), np.int64, n)
    words = (length + 7) >> 3
    cols = np.array(raw, dtype=f"S{max(int(words.max()), 1) * 8}").view(np.uint64).reshape(n, -1)
    h = _OFFSET ^ length.astype(np.uint64)  # the byte length: "a" and "a\0" pad alike
    for j in range(cols.shape[1]):  # past an id's own words its hash stays as it is
        h = np.where(words > j, (h ^ cols[:, j]) * _PRIME, h)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h.tolist()


class CallDeduper:
    """The correlation ids of recent calls (as 64-bit hashes, stable across processes)."""

    CAPACITY = 1 << 17

    def __init__(self) -> None:
        # the oldest is evicted first: OrderedDict.popitem is O(1), where deleting a plain
        # dict's first key makes the next lookup of it scan past every earlier deletion
        self.seen: OrderedDict[int, None] = OrderedDict()
        self.dropped = 0

    def filter(self, reqs: list[Request]) -> tuple[list[Request], list[Event]]:
        """The requests that are a call's first copy, and Python events from dropped copies."""
        keep: list[Request] = []
        python: list[Event] = []
        seen = self.seen
        calls = [i for i, r in enumerate(reqs) if r.trace_id is not None
                 and r.source is not None and r.source.startswith(SOURCES)]
        keys: list[int | None] = [None] * len(reqs)
        for i, key in zip(calls, call_keys([reqs[i].trace_id or "" for i in calls]), strict=True):
            keys[i] = key
        for r, key in zip(reqs, keys, strict=True):
            if key is None:
                keep.append(r)
                continue
            if key in seen:
                self.dropped += 1
                if r.python_us is not None:
                    python.append(Python(time=r.time, kind="call", pool=r.pool, command=r.command,
                                         worker_id=r.worker_id, trace_id=r.trace_id,
                                         python_us=r.python_us, name="request.python_us"))
                continue
            seen[key] = None
            if len(seen) > self.CAPACITY:
                seen.popitem(last=False)
            keep.append(r)
        return keep, python

    def state(self) -> bytes:
        return np.fromiter(self.seen, dtype=np.uint64, count=len(self.seen)).tobytes()

    def load(self, data: bytes) -> None:
        self.seen = OrderedDict.fromkeys(np.frombuffer(data, dtype=np.uint64).tolist())
