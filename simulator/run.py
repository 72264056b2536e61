"""Drive a target (HTTP API or Kafka topic) with a simulated deployment, at a rate, with progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from schemas.events import Event
from simulator.model import INCIDENT_KINDS, Incident, Simulation
from simulator.native import to_native


def parse_incident(text: str, start: float) -> Incident:
    """``kind:pool:from_s:to_s`` with offsets in seconds from the simulation start."""
    try:
        kind, pool, a, b = text.split(":")
        incident = Incident(kind, pool, start + float(a), start + float(b))
    except ValueError as exc:
        raise ValueError(f"--incident {text!r}: expected kind:pool:start_s:end_s") from exc
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"--incident {text!r}: kind must be one of {', '.join(INCIDENT_KINDS)}")
    return incident


def drive(sink: Any, rate: float, duration: float, seed: int, realtime: bool,
          start: float | None = None, incidents: list[str] = (), native: bool = False,
          progress: bool = True) -> int:
    """Send every simulated event to ``sink`` (``send``/``flush``); returns events sent."""
    t0 = time.time() if start is None else start
    sim = Simulation(rate, t0, duration, seed=seed,
                     incidents=[parse_incident(i, t0) for i in incidents])
    sent = 0
    wall0 = time.monotonic()
    last_report = 0.0
    for event in _paced(sim.events(), t0, realtime):
        for item in to_native(event) if native else (event,):
            sink.send(item)
            sent += 1
        if progress and (sent & 1023) == 0:
            now = time.monotonic()
            if now - last_report > 0.5:
                last_report = now
                _bar((event.time - t0) / duration, sent, now - wall0)
    sink.flush()
    if progress:
        _bar(1.0, sent, time.monotonic() - wall0)
        print(file=sys.stderr)
    return sent


def _paced(events: Iterator[Event], t0: float, realtime: bool) -> Iterator[Event]:
    if not realtime:
        yield from events
        return
    wall0 = time.monotonic()
    for event in events:
        ahead = (event.time - t0) - (time.monotonic() - wall0)
        if ahead > 0.05:
            time.sleep(ahead)
        yield event


def _bar(fraction: float, sent: int, elapsed: float) -> None:
    width = 30
    done = int(width * min(fraction, 1.0))
    rate = sent / elapsed if elapsed > 0 else 0
    sys.stderr.write(f"\r[{'#' * done}{' ' * (width - done)}] {fraction:4.0%} "
                     f"{sent:,} events  {rate:,.0f}/s")
    sys.stderr.flush()
