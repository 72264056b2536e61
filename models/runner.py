"""Feed closed 1-minute rollups to the alert engine in minute order and keep what it says."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from models.alerts import AlertEngine
from models.signals import minute_signals
from store.base import Checkpoint, RollupStore
from streams.engine import Rollup

Publish = Callable[[dict[str, Any]], None]


class AlertRunner:
    """Thread-safe: the embedded flusher calls :meth:`consume`, the API reads :meth:`alerts`."""

    def __init__(self, engine: AlertEngine | None = None, publish: Publish | None = None,
                 store: RollupStore | None = None, checkpoint: str = "alerts") -> None:
        self.engine = engine or AlertEngine()
        self.publish = publish
        self._lock = threading.Lock()
        self.store = store
        self.checkpoint = checkpoint
        if store is not None:
            cp = store.load_checkpoint(checkpoint)
            if cp is not None:
                self.engine.restore(cp.state)

    def consume(self, rollups: list[Rollup]) -> list[dict[str, Any]]:
        by_minute: dict[int, list[Rollup]] = defaultdict(list)
        for r in rollups:
            by_minute[r.bucket].append(r)
        notes: list[dict[str, Any]] = []
        with self._lock:
            for minute in sorted(by_minute):
                signals = minute_signals(by_minute[minute])
                notes += self.engine.observe(minute, {p: s for (_, p), s in signals.items()})
            if self.store is not None and by_minute:
                self.store.write([], checkpoint=(self.checkpoint,
                                                 Checkpoint(self.engine.snapshot())))
        for note in notes:
            if self.publish is not None:
                self.publish(note)
        return notes

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        """``firing``: the latest notification of each alert firing now; ``resolved`` and
        ``all``: the notification history (newest first)."""
        with self._lock:
            history = list(reversed(self.engine.history))
            if state == "all":
                return history
            if state == "resolved":
                return [n for n in history if n["status"] == "resolved"]
            firing = {st.fingerprint for st in self.engine.states.values()
                      if st.status == "firing"}
            latest: dict[str, dict[str, Any]] = {}
            for note in history:
                if note["fingerprint"] in firing and note["status"] == "firing":
                    latest.setdefault(note["fingerprint"], note)
            return list(latest.values())
