"""Bytes off the wire (an HTTP body or a Kafka message) to valid events and precise rejects.

A body is one JSON event, a JSON array of events, or NDJSON (one event per line), canonical or
native Snakepit envelopes. The fast path decodes and validates the whole batch in one call into
typed structs; only when that fails is the batch taken apart item by item, so every item ends
either accepted or rejected with a reason and its original bytes, and a bad item never takes the
good ones in the same batch down with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

import msgspec
import orjson

from schemas.events import ENUMS, MAX_EPOCH, TYPE_NAMES, Annotation, AnyEvent, Event, finish
from schemas.native import NativeError, is_native, normalise

_batch_decoder = msgspec.json.Decoder(list[AnyEvent])
_one_decoder = msgspec.json.Decoder(AnyEvent)


@dataclass(slots=True)
class Reject:
    index: int  # position in the batch (line number - 1 for NDJSON); -1 for the whole body
    reason: str
    raw: bytes


@dataclass(slots=True)
class Decoded:
    events: list[Event] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far from the server's clock an event's time may lie.

    One node with a broken clock must not steer the stream: an event from 2099 once moved the
    watermark past every later event, which then all came too late for alerting. Events more
    than ``max_ahead_s`` ahead are refused (Prometheus refuses samples 10 minutes ahead), and so
    are events older than the longest retention, which would only be deleted."""

    max_ahead_s: float = 600.0
    max_age_s: float = 400 * 86400.0

    def window(self, now: float) -> TimeWindow:
        return TimeWindow(now - self.max_age_s, now + self.max_ahead_s, now)


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The event times believed at ``now`` (see :class:`TimeBounds`)."""

    earliest: float
    latest: float
    now: float

    def reason(self, t: float) -> str | None:
        if t > self.latest:
            return (f"`time` {_iso(t)} is {_span(t - self.now)} ahead of the server's clock "
                    f"({_iso(self.now)}); events more than {_span(self.latest - self.now)} "
                    f"ahead are refused: is the producer's clock wrong?")
        if t < self.earliest:
            return (f"`time` {_iso(t)} is {_span(self.now - t)} old, older than the longest "
                    f"retention ({_span(self.now - self.earliest)}): it would be deleted at once")
        return None


def decode_json(body: bytes, window: TimeWindow | None = None) -> Decoded:
    """A JSON object or a JSON array of objects; with a ``window``, events timed outside it
    are rejected."""
    array = body.lstrip()[:1] == b"["
    try:
        events = _batch_decoder.decode(body) if array else [_one_decoder.decode(body)]
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return _item_by_item(body, window)
    return _finished(events, window)


def decode_ndjson(body: bytes, window: TimeWindow | None = None) -> Decoded:
    """One JSON event per line; blank lines are skipped, each bad line is its own reject."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    try:
        events = _batch_decoder.decode(b"[" + b",".join(lines) + b"]")
        if len(events) == len(lines):  # else a line held more than one value: line by line
            return _finished(events, window)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass
    out = Decoded()
    for i, line in enumerate(body.split(b"\n")):
        if not line.strip():
            continue
        try:
            item = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out.rejects.append(Reject(i, f"line {i + 1}: invalid JSON: {exc}", bytes(line)))
            continue
        event, reason = accept(item, window)
        if event is not None:
            out.events.append(event)
        else:
            out.rejects.append(Reject(i, f"line {i + 1}: {reason}", bytes(line)))
    return out


def accept(item: Any, window: TimeWindow | None = None) -> tuple[Event | None, str | None]:
    """One parsed item, canonical or native, to ``(event, None)`` or ``(None, reason)``."""
    if is_native(item):
        try:
            item = normalise(item)
        except NativeError as exc:
            return None, str(exc)
    if type(item) is not dict:
        return None, f"expected a JSON object, got {_json_kind(item)}"
    kind = item.get("type")
    if kind is not None and kind not in TYPE_NAMES:
        return None, (f"unknown event type {str(kind)[:60]!r}, expected one of "
                      f"{', '.join(TYPE_NAMES)}")
    try:
        event = msgspec.convert(item, AnyEvent)
    except RecursionError:
        return None, f"{kind}: nested too deeply"
    except msgspec.ValidationError as exc:
        return None, f"{kind}: {exc}{_enum_hint(kind, str(exc))}{_time_hint(item.get('time'))}"
    reason = _checked(event, window)
    return (None, f"{item['type']}: {reason}") if reason else (event, None)


_time = attrgetter("time")


def _checked(event: Event, window: TimeWindow | None) -> str | None:
    """``finish`` (RFC 3339 times to epoch seconds), then the time window."""
    reason = finish(event)
    if reason is None and window is not None:
        reason = window.reason(event.time)
    return reason


def _finished(events: list[Event], window: TimeWindow | None = None) -> Decoded:
    out = Decoded()
    # The common case, checked in C: epoch times, nothing to convert, all in the window.
    times = list(map(_time, events))
    if set(map(type, times)) <= {float} and Annotation not in set(map(type, events)) and (
            window is None or not times
            or (min(times) >= window.earliest and max(times) <= window.latest)):
        out.events = events
        return out
    for i, event in enumerate(events):
        if type(event.time) is float and type(event) is not Annotation and (
                window is None or window.earliest <= event.time <= window.latest):
            continue
        reason = _checked(event, window)
        if reason:
            out.rejects.append(Reject(i, reason, msgspec.json.encode(event)))
    if out.rejects:
        bad = {r.index for r in out.rejects}
        out.events = [e for i, e in enumerate(events) if i not in bad]
    else:
        out.events = events
    return out


def _item_by_item(body: bytes, window: TimeWindow | None = None) -> Decoded:
    """The slow path: native envelopes to normalise, or a batch with something wrong in it.

    Items are normalised one by one (Python), then converted to structs in one call (C); only
    if that fails is each item converted on its own, to say which ones are wrong and why."""
    out = Decoded()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        out.rejects.append(Reject(-1, f"invalid JSON: {exc}", bytes(body)))
        return out
    items = parsed if type(parsed) is list else [parsed]
    canonical: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        if is_native(item):
            try:
                canonical.append((i, normalise(item)))
            except NativeError as exc:
                out.rejects.append(Reject(i, str(exc), orjson.dumps(item)))
        else:
            canonical.append((i, item))
    try:
        events = msgspec.convert([c for _, c in canonical], list[AnyEvent])
    except (msgspec.ValidationError, RecursionError):
        events = None
    if events is not None:
        for (i, _), event in zip(canonical, events, strict=True):
            reason = _checked(event, window)
            if reason:
                out.rejects.append(Reject(i, reason, orjson.dumps(items[i])))
            else:
                out.events.append(event)
    else:
        for i, item in canonical:
            event, reason = accept(item, window)
            if event is not None:
                out.events.append(event)
            else:
                out.rejects.append(Reject(i, reason, orjson.dumps(items[i])))
    out.rejects.sort(key=lambda r: r.index)
    return out


def _enum_hint(kind: Any, message: str) -> str:
    if not message.startswith("Invalid enum value") or "at `$." not in message:
        return ""
    field_name = message.rsplit("at `$.", 1)[1].rstrip("`")
    allowed = ENUMS.get((kind, field_name))
    return f" (expected one of {', '.join(allowed)})" if allowed else ""


def _time_hint(value: Any) -> str:
    if type(value) in (int, float) and value > MAX_EPOCH:
        unit = "milliseconds" if value < MAX_EPOCH * 1000 else "micro- or nanoseconds"
        return f" (it looks like {unit}; epoch seconds are expected)"
    return ""


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return repr(t)


def _span(seconds: float) -> str:
    """A duration as people say it: 90 s, 12 min, 5.0 h, 400 days, 73.1 years."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.1f} {unit}".replace(".0 ", " ")
    return f"{seconds:.0f} s"


def _json_kind(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)
