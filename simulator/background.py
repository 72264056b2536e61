"""A simulated deployment feeding the embedded engine from a thread (``run --simulate``).

It first backfills the last 15 minutes as fast as it can, so the dashboard has history to show
within seconds of start, then keeps producing at the chosen rate in real time. Incidents, given
in absolute time, may start in the backfill and go on live; with incidents the backfill is 45
minutes, so the detectors are past their cold start (30 minutes) before an incident that
starts up to 15 minutes ago.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from schemas.events import Event
from simulator.model import Incident, Simulation

log = logging.getLogger(__name__)


class BackgroundSimulation:
    FLUSH_S = 0.1  # live events reach the engine within this (the live view's latency budget)

    def __init__(self, submit: Callable[[Sequence[Event]], None], rate: float,
                 backfill_s: float | None = None, seed: int = 1,
                 incidents: Sequence[Incident] = ()) -> None:
        self.submit = submit
        self.incidents = list(incidents)
        if backfill_s is None:
            backfill_s = 2700.0 if incidents else 900.0
        self.rate = rate
        self.backfill_s = backfill_s
        self.seed = seed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snakepit-perf-simulate",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            now = time.time()
            backfill = Simulation(self.rate, now - self.backfill_s, self.backfill_s, seed=self.seed,
                                  incidents=self.incidents)
            self._feed(backfill.events(), realtime=False)
            live = Simulation(self.rate, backfill.end, 365 * 86400, seed=self.seed + 1,
                              incidents=self.incidents)
            self._feed(live.events(), realtime=True)
        except Exception:  # a broken simulation must not take the service down with it
            log.exception("simulation stopped")

    def _feed(self, events, realtime: bool) -> None:
        batch: list[Event] = []
        first = time.monotonic()
        for event in events:
            if self._stop.is_set():
                return
            if realtime:
                ahead = event.time - time.time()
                if ahead > 0:
                    if batch:  # send what is due before waiting for the next event
                        self._send(batch)
                        batch = []
                    if self._stop.wait(ahead):
                        return
            if not batch:
                first = time.monotonic()
            batch.append(event)
            if len(batch) >= 1000 or (realtime and time.monotonic() - first > self.FLUSH_S):
                self._send(batch)
                batch = []
        if batch:
            self._send(batch)

    def _send(self, batch: list[Event]) -> None:
        """Submit, waiting and retrying while the runner is overloaded or cannot store (as a
        well-behaved client does on 429/503), until stopped."""
        while True:
            try:
                self.submit(batch)
                return
            except Exception as exc:
                retry_after = getattr(exc, "retry_after", None)
                if retry_after is None:
                    raise
                if self._stop.wait(min(retry_after, 1.0)):
                    return
