"""Hostile ingest bodies get a clear answer and never spoil the good events beside them."""

from __future__ import annotations

import gzip

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore

GOOD = b'{"type":"request","time":%d,"pool":"p","command":"c","duration_us":5,"status":"ok"}' \
    % T0
DEEP = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.fixture
def client():
    store = SQLiteStore(":memory:")
    runner = EmbeddedRunner(store)
    return TestClient(create_app(Services(store=store, sink=runner, engine=runner.engine,
                                          runner=runner)), raise_server_exceptions=False)


def post(client, body: bytes, ndjson: bool = False, gz: bool = False):
    headers = {"Content-Type": "application/x-ndjson" if ndjson else "application/json"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    return client.post("/v1/events", content=body, headers=headers)


def test_a_deeply_nested_object_is_a_400_with_a_reason(client):
    r = post(client, DEEP)
    assert r.status_code == 400 and "depth limit" in r.json()["detail"]


def test_a_deeply_nested_ndjson_line_does_not_take_the_good_lines_down(client):
    r = post(client, b"\n".join([GOOD] * 5 + [DEEP]), ndjson=True)
    assert r.status_code == 202 and r.json()["accepted"] == 5
    assert r.json()["rejected"][0]["index"] == 5


def test_every_gzip_member_is_read(client):
    r = post(client, gzip.compress(GOOD) + gzip.compress(b"\n" + GOOD + b"\n" + GOOD),
             ndjson=True, gz=True)
    assert r.status_code == 202 and r.json()["accepted"] == 3


def test_a_truncated_gzip_stream_is_refused_whole(client):
    r = post(client, gzip.compress(b"\n".join([GOOD] * 100))[:-20], ndjson=True, gz=True)
    assert r.status_code == 400 and "truncated" in r.json()["detail"]
    assert client.app.state.services.figures().stats.get("events", 0) == 0


def test_a_gauge_that_would_overflow_is_rejected_with_a_reason(client):
    r = post(client, b'[{"type":"resource","time":%d,"scope":"host","cpu_percent":1.7e308},'
                     % T0 + GOOD + b"]")
    assert r.status_code == 202 and r.json()["accepted"] == 1
    assert "1e+18" in r.json()["rejected"][0]["reason"]
