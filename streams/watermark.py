"""The engine's clock: event time as it trusts it, kept apart from the windows it closes.

Each source (a Kafka partition, the HTTP ingest) reports its newest event time, never past the
wall clock the batch arrived by; the watermark is the oldest source's time minus the allowed
lateness, so one fast or far-ahead source cannot close everyone else's windows. ``closed_until``
is how far the windows are closed: an event before the base pane it implies is late.

>>> clock = Watermark(lateness=5)
>>> clock.observe("p0", 100.0); clock.observe("p1", 90.0); clock.value()
85.0
"""

from __future__ import annotations

import math
from typing import Any


class Watermark:
    def __init__(self, lateness: float = 5.0) -> None:
        self.lateness = lateness
        self.source_time: dict[str, float] = {}  # each source's newest event time
        self.closed_until = -math.inf

    def observe(self, source: str, newest: float, now: float | None = None) -> None:
        """A batch from ``source`` whose newest event is ``newest``, arrived at wall clock
        ``now``: events a little ahead (a fast clock) wait until they are due."""
        if now is not None:
            newest = min(newest, now)
        if newest > self.source_time.get(source, -math.inf):
            self.source_time[source] = newest

    def value(self) -> float:
        if not self.source_time:
            return -math.inf
        return min(self.source_time.values()) - self.lateness

    def forget(self, source: str) -> None:
        """A partition moved to another worker: it must no longer hold the watermark back."""
        self.source_time.pop(source, None)

    def late_before(self, resolution: int) -> float:
        """Events before this are late: their base pane (of ``resolution``) has closed. After
        a flush (closed until infinity) everything is."""
        if not math.isfinite(self.closed_until):
            return self.closed_until
        return math.floor(self.closed_until / resolution) * resolution

    def snapshot(self) -> dict[str, Any]:
        return {"lateness": self.lateness, "source_time": self.source_time,
                "closed_until": None if self.closed_until == -math.inf else self.closed_until}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Watermark:
        clock = cls(state["lateness"])
        clock.source_time = dict(state["source_time"])
        clock.closed_until = -math.inf if state["closed_until"] is None else state["closed_until"]
        return clock
