"""A producer with a wrong clock cannot steer the stream: events far ahead of the server's clock
or older than the longest retention are rejected with a reason, the good events beside them are
kept, and events a little ahead wait in open panes instead of closing everyone's windows."""

from __future__ import annotations

import time

import msgspec
import orjson
import pytest

from harness.data import T0, requests
from runners.partitions import Partitions
from schemas.decode import TimeBounds, decode_json, decode_ndjson
from schemas.events import Request
from store.sqlite import SQLiteStore
from streams.engine import Engine

NOW = T0 + 3600.0
BOUNDS = TimeBounds(max_ahead_s=600, max_age_s=400 * 86400)
Y2099 = 4_102_358_400.0  # 2099-12-31T00:00:00Z
Y2001 = 978_307_200.0  # 2001-01-01: the schema accepts it, the retention does not


def request(t: float) -> dict:
    return {"type": "request", "time": t, "pool": "p", "command": "c", "duration_us": 100,
            "status": "ok"}


def ev(t: float) -> Request:
    return msgspec.convert(request(t), Request)


@pytest.mark.parametrize("decode,body", [
    (decode_json, orjson.dumps([request(NOW), request(Y2099), request(NOW - 5),
                                request(Y2001)])),
    (decode_ndjson, b"\n".join(orjson.dumps(e) for e in
                               [request(NOW), request(Y2099), request(NOW - 5), request(Y2001)])),
])
def test_times_outside_the_window_are_rejected_and_the_rest_kept(decode, body):
    out = decode(body, BOUNDS.window(NOW))
    assert [e.time for e in out.events] == [NOW, NOW - 5]
    assert [r.index for r in out.rejects] == [1, 3]
    ahead, old = (r.reason for r in out.rejects)
    assert "2099-12-31T00:00:00Z" in ahead and "ahead of the server's clock" in ahead
    assert "73" in ahead and "years" in ahead and "10 min" in ahead
    assert "older than the longest retention (400 days)" in old
    assert orjson.loads(out.rejects[0].raw)["time"] == Y2099


def test_the_window_edges_are_inclusive_and_rfc3339_times_are_judged_too():
    body = orjson.dumps([request(NOW + 600), request(NOW + 600.5),
                         {**request(0), "time": "2099-12-31T00:00:00Z"}])
    out = decode_json(body, BOUNDS.window(NOW))
    assert [e.time for e in out.events] == [NOW + 600]
    assert [r.index for r in out.rejects] == [1, 2]


def test_native_envelopes_are_judged_by_the_same_window():
    native = {"event": ["snakepit", "pool", "saturated"], "measurements": {"queue_size": 3},
              "metadata": {"pool": "p"}, "time": Y2099}
    out = decode_json(orjson.dumps([native, request(NOW)]), BOUNDS.window(NOW))
    assert len(out.events) == 1 and len(out.rejects) == 1
    assert "ahead of the server's clock" in out.rejects[0].reason


def test_without_a_window_nothing_is_judged():
    assert len(decode_json(orjson.dumps([request(Y2099)])).events) == 1


def test_a_fast_clock_waits_in_open_panes_instead_of_closing_other_windows():
    """A node 5 minutes fast (inside the window) must not make everyone else's events late."""
    eng = Engine(lateness=5)
    eng.process([ev(NOW + 300)], now=NOW)
    assert eng.watermark() <= NOW - 5
    eng.process([ev(NOW - 2)], now=NOW)
    assert eng.stats["late_events"] == 0
    closed = eng.process([], now=NOW + 400)  # no event: the watermark stands
    assert closed == []
    later = eng.process([ev(NOW + 301)],
                        now=NOW + 400)
    buckets = {r.bucket for r in later if r.resolution == 10}
    assert int(NOW - 2) // 10 * 10 in buckets  # due now, so closed
    assert int(NOW + 300) // 10 * 10 not in buckets  # still open: its time has not come


def test_without_the_clock_a_future_event_would_close_everything():
    """The control for the test above: what the cap prevents."""
    eng = Engine(lateness=5)
    eng.process([ev(NOW + 300)])
    eng.process([ev(NOW - 2)])
    assert eng.stats["late_events"] == 1


def test_the_worker_judges_by_the_message_timestamp_so_a_replay_judges_the_same(tmp_path):
    """A message produced when its events were 5 s old; replayed a day later its events are
    judged by its timestamp again: accepted the same, with the same watermark."""
    sent_at = time.time() - 86400
    events = requests(200, 20, start=sent_at - 25)
    body = msgspec.json.encode([*events, ev(sent_at + 3600)])
    outcomes = []
    for _ in range(2):  # the first pass, and a replay into a fresh engine
        letters: list = []
        parts = Partitions(SQLiteStore(tmp_path / f"p{len(outcomes)}.sqlite3"), "t", "g",
                           dead_letter=lambda p, o, r, sink=letters: sink.append(r))
        parts.handle(0, 0, body, timestamp=sent_at)
        engine = parts.held[0].engine
        outcomes.append((engine.stats["events"], engine.watermark(),
                         [r.reason for rs in letters for r in rs]))
    assert outcomes[0] == outcomes[1]
    events_counted, watermark, reasons = outcomes[0]
    assert events_counted == 200 and watermark <= sent_at - 5
    assert reasons and "ahead of the server's clock" in reasons[0]
