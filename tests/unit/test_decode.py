"""Malformed input is rejected with a precise reason; good events in the same batch are kept."""

from __future__ import annotations

import gzip  # noqa: F401  (documented alongside the HTTP tests)

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.decode import decode_json, decode_ndjson
from schemas.events import Request

GOOD = {"type": "request", "time": 1_800_000_000.5, "pool": "p", "command": "predict",
        "duration_us": 1500, "status": "ok"}


def with_(**changes) -> dict:
    e = dict(GOOD)
    for k, v in changes.items():
        if v is ...:
            del e[k]
        else:
            e[k] = v
    return e


BAD = [
    (with_(duration_us="1500"), "Expected `int`, got `str` - at `$.duration_us`"),
    (with_(duration_us=-3), "Expected `int` >= 0 - at `$.duration_us`"),
    (with_(status="fine"), "Invalid enum value 'fine' - at `$.status` (expected one of ok, error, timeout)"),
    (with_(command=...), "missing required field `command`"),
    (with_(time=...), "missing required field `time`"),
    (with_(time="yesterday"), "at `$.time`"),
    (with_(time="2026-11-28T12:00:00"), "Expected `datetime` with a timezone component"),
    (with_(time=1_800_000_000_000), "it looks like milliseconds"),
    (with_(time=1_800_000_000_000_000), "it looks like micro- or nanoseconds"),
    (with_(duraton_us=5), "unknown field `duraton_us`"),
    (with_(type="requests"), "unknown event type 'requests'"),
    (with_(pool="x" * 300), "Expected `str` of length <= 256 - at `$.pool`"),
    (with_(tags={"a": 1}), "at `$.tags"),
    ([1, 2], "expected a JSON object, got an array"),
    ("a string", "expected a JSON object, got a string"),
    (None, "expected a JSON object, got null"),
]


@pytest.mark.parametrize("bad, reason", BAD, ids=[r for _, r in BAD])
def test_each_malformed_event_is_rejected_and_the_good_ones_kept(bad, reason: str):
    batch = [GOOD, bad, with_(duration_us=7)]
    out = decode_json(orjson.dumps(batch))
    assert [e.duration_us for e in out.events] == [1500, 7]
    assert len(out.rejects) == 1
    reject = out.rejects[0]
    assert reject.index == 1
    assert reason in reject.reason
    assert orjson.loads(reject.raw) == bad  # kept as sent, for inspection


def test_rfc3339_and_epoch_times_agree():
    out = decode_json(orjson.dumps([with_(time="2027-01-15T08:00:00.5Z"),
                                    with_(time="2027-01-15T09:00:00.5+01:00"),
                                    with_(time=1_800_000_000)]))
    assert [e.time for e in out.events] == [1_800_000_000.5, 1_800_000_000.5, 1_800_000_000.0]


def test_invalid_json_body_is_one_reject_with_the_bytes():
    body = b'[{"type": "request", '
    out = decode_json(body)
    assert out.events == [] and out.rejects[0].index == -1
    assert out.rejects[0].reason.startswith("invalid JSON")
    assert out.rejects[0].raw == body


def test_ndjson_bad_lines_do_not_spoil_good_ones():
    body = b"\n".join([orjson.dumps(GOOD), b"{not json", b"\xff\xfe\xfd", b"",
                       orjson.dumps(with_(status="nope")), orjson.dumps(with_(duration_us=9))])
    out = decode_ndjson(body)
    assert [e.duration_us for e in out.events] == [1500, 9]
    reasons = {r.index: r.reason for r in out.rejects}
    assert reasons[1].startswith("line 2: invalid JSON")
    assert "not valid UTF-8" in reasons[2]
    assert reasons[4].startswith("line 5: request:")


def test_single_object_body_is_accepted():
    out = decode_json(orjson.dumps(GOOD))
    assert isinstance(out.events[0], Request) and not out.rejects


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12),
                                                                       children, max_size=6),
    max_leaves=20)
event_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["request", "worker", "pool", "session", "resource", "python",
                              "annotation", "request_start", "bogus"])},
    optional={k: json_values | st.just(v) for k, v in GOOD.items() if k != "type"}
    | {"kind": st.sampled_from(["crashed", "stats", "created", "call", "deploy"]) | json_values,
       "worker_id": st.text(max_size=5), "scope": st.sampled_from(["host", "x"]),
       "event": json_values, "measurements": json_values})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_and_every_input_is_accounted(body: bytes):
    whole = decode_json(body)
    # a body is either events, rejects or an empty array: nothing is dropped silently
    assert whole.events or whole.rejects or orjson.loads(body) == []
    lines = decode_ndjson(body)
    assert len(lines.events) + len(lines.rejects) == sum(1 for x in body.split(b"\n")
                                                         if x.strip())
    assert [r.index for r in whole.rejects + lines.rejects if not r.reason] == []


def test_two_events_on_one_ndjson_line_are_one_reject_not_two_events():
    good = orjson.dumps(GOOD)
    out = decode_ndjson(good + b"," + good + b"\n" + good)
    assert len(out.events) == 1 and [r.index for r in out.rejects] == [0]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(event_like | json_values, max_size=8))
def test_arbitrary_json_batches_end_accepted_or_rejected_with_reason(items: list):
    out = decode_json(orjson.dumps(items, option=orjson.OPT_NON_STR_KEYS)
                      if _serialisable(items) else b"[]")
    if not _serialisable(items):
        return
    assert len(out.events) + len(out.rejects) == len(items)
    assert sorted(r.index for r in out.rejects) == sorted({r.index for r in out.rejects})
    assert all(r.reason for r in out.rejects)


def _serialisable(items: list) -> bool:
    try:
        orjson.dumps(items)
        return True
    except (TypeError, orjson.JSONEncodeError):
        return False
