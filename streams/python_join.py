"""A call's Python time joined into its request, whichever of the two arrives first.

Snakepit's telemetry times a call on the Elixir side (``grpc_worker.execute``) and knows
nothing of the time spent in Python. The worker SDK (``sdk.worker``), Snakepit's Python spans
and a duplicate copy of a call (``streams.dedupe``) send that time as a ``python`` call event
carrying the same correlation id as ``trace_id``. Joined, the request gains ``python_us`` and
R5.2's split (``python_exec_seconds`` against ``elixir_overhead_seconds``) covers it.

The two come from different processes with their own batching, so either may be first:

- *Python first*: its time waits here; the request, when it comes, takes it before it is
  aggregated.
- *Request first*: the request is aggregated without it; its bucket, series and duration wait
  here, and the Python time, when it comes, is added to that bucket's ``python_us`` and
  ``overhead_us`` distributions (a late delta if the bucket has closed), counting no request.

The Python event itself is still counted in the ``python`` family (per library). Both memories
are bounded (the newest ``CAPACITY`` entries each; an evicted one just stays unjoined) and part
of the engine's checkpoint, so a replay joins exactly what the first run joined. Nothing is
remembered until the first joinable Python event: a deployment without the SDK pays nothing.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from msgspec.structs import replace

from schemas.events import Python, Request
from streams.dedupe import call_keys

JOINABLE = ("call", "error")  # Python kinds that time one call


def joinable(e: Python) -> bool:
    return e.trace_id is not None and e.python_us is not None and e.kind in JOINABLE


class PythonJoin:
    """What waits for its partner: Python times by call, and requests by call."""

    CAPACITY = 1 << 17  # per side; ~100 bytes an entry

    def __init__(self) -> None:
        self.active = False  # set by the first joinable Python event
        self.python: OrderedDict[int, int] = OrderedDict()  # call -> python_us
        self.requests: OrderedDict[int, tuple[int, int, float]] = OrderedDict()  # call ->
        # (bucket, combo, duration µs)
        self.joined = 0

    def fill(self, reqs: list[Request]) -> list[Request]:
        """The requests, those whose Python time came first carrying it."""
        waiting = self.python
        if not waiting:
            return reqs
        out = list(reqs)
        calls = [i for i, r in enumerate(reqs) if r.trace_id is not None]
        for i, key in zip(calls, call_keys([reqs[i].trace_id or "" for i in calls]), strict=True):
            us = waiting.pop(key, None)
            r = reqs[i]
            if us is not None and r.python_us is None:
                out[i] = replace(r, python_us=min(us, r.duration_us))
                self.joined += 1
        return out

    def remember(self, reqs: list[Request], buckets: np.ndarray, combos: np.ndarray,
                 durations: np.ndarray, python: np.ndarray) -> None:
        """Requests aggregated without Python time: where to add it if it comes."""
        rows = np.flatnonzero(np.isnan(python))
        traces = [reqs[i].trace_id for i in rows.tolist()]
        if None in traces:
            has = np.array([t is not None for t in traces], bool)
            rows, traces = rows[has], [t for t in traces if t is not None]
        waiting = self.requests
        waiting.update(zip(call_keys(traces), zip(  # type: ignore[arg-type] (no None left)
            buckets[rows].tolist(), combos[rows].tolist(), durations[rows].tolist(),
            strict=True), strict=True))
        _bound(waiting, self.CAPACITY)

    def match(self, calls: list[Python]) -> list[tuple[Python, tuple[int, int, float]]]:
        """The calls whose request came first, with its (bucket, combo, duration); the
        Python time of the others waits for their request."""
        found = []
        for e, key in zip(calls, call_keys([e.trace_id or "" for e in calls]), strict=True):
            request = self.requests.pop(key, None)
            if request is None:
                self.python[key] = e.python_us or 0
            else:
                found.append((e, request))
        self.joined += len(found)
        _bound(self.python, self.CAPACITY)
        return found

    def state(self) -> tuple[dict[str, int], dict[str, bytes]]:
        """Counters, and the two memories as arrays (for the engine's checkpoint)."""
        py, req = self.python, self.requests
        n, m = len(py), len(req)
        return {"active": int(self.active), "joined": self.joined}, {
            "python_keys": np.fromiter(py, np.uint64, n).tobytes(),
            "python_us": np.fromiter(py.values(), np.int64, n).tobytes(),
            "request_keys": np.fromiter(req, np.uint64, m).tobytes(),
            "buckets": np.fromiter((v[0] for v in req.values()), np.int64, m).tobytes(),
            "combos": np.fromiter((v[1] for v in req.values()), np.int32, m).tobytes(),
            "durations": np.fromiter((v[2] for v in req.values()), np.float64, m).tobytes()}

    def load(self, counters: dict[str, int], arrays: dict[str, bytes]) -> None:
        self.active, self.joined = bool(counters["active"]), counters["joined"]

        def values(name: str, dtype: type) -> list:
            return np.frombuffer(arrays[name], dtype).tolist()

        self.python = OrderedDict(zip(values("python_keys", np.uint64), values("python_us", np.int64),
                               strict=True))
        self.requests = OrderedDict(zip(
            values("request_keys", np.uint64),
            zip(values("buckets", np.int64), values("combos", np.int32),
                values("durations", np.float64), strict=True), strict=True))


def _bound(waiting: OrderedDict, capacity: int) -> None:
    """Drop the oldest entries beyond ``capacity`` (O(1) each, see ``streams.dedupe``)."""
    while len(waiting) > capacity:
        waiting.popitem(last=False)
