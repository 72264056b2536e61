"""API keys: no key 401, wrong role 403, right role passes; keys are stored hashed, never logged."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import hash_key, parse_keys
from api.services import Services
from harness.data import T0
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore

VIEWER, OPERATOR = "spk_viewer_secret", "spk_operator_secret"


@pytest.fixture
def client(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    runner = EmbeddedRunner(store)
    keys = parse_keys([f"grafana:viewer:{hash_key(VIEWER)}",
                       f"forwarder:operator:{hash_key(OPERATOR)}"])
    with TestClient(create_app(Services(store=store, sink=runner, engine=runner.engine),
                               keys)) as c:
        yield c
    store.close()


EVENT = b'{"type":"request","time":%d,"pool":"p","command":"c","duration_us":1,"status":"ok"}' \
    % T0
QUERY = {"metric": "requests_total", "from": T0, "to": T0 + 60}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_key_is_401_as_problem_json(client):
    r = client.get("/v1/query", params=QUERY)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/query", params=QUERY, headers=bearer("spk_wrong")).status_code == 401
    assert client.get("/health").status_code == 200  # liveness stays open


def test_roles(client):
    assert client.get("/v1/query", params=QUERY, headers=bearer(VIEWER)).status_code == 200
    r = client.post("/v1/events", content=EVENT, headers={**bearer(VIEWER),
                                                          "Content-Type": "application/json"})
    assert r.status_code == 403 and "has role viewer; this needs operator" in r.json()["detail"]
    r = client.post("/v1/events", content=EVENT, headers={**bearer(OPERATOR),
                                                          "Content-Type": "application/json"})
    assert r.status_code == 202
    assert client.get("/v1/rejects", headers=bearer(OPERATOR)).status_code == 200


def test_keys_are_never_logged(client, caplog):
    caplog.set_level(logging.DEBUG)
    client.get("/v1/query", params=QUERY, headers=bearer(VIEWER))
    client.get("/v1/query", params=QUERY, headers=bearer("spk_leaky_guess"))
    assert VIEWER not in caplog.text and "spk_leaky_guess" not in caplog.text


def test_bad_key_entries_are_refused():
    with pytest.raises(ValueError, match="name:role:sha256hex"):
        parse_keys(["grafana:superuser:" + "0" * 64])


def test_live_websocket_needs_a_key_too(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect("/v1/live/ws") as ws:
        ws.receive_bytes()
    assert closed.value.code == 4401
    with pytest.raises(WebSocketDisconnect) as closed, \
            client.websocket_connect(f"/v1/live/ws?key={VIEWER}") as ws:  # not in the URL
        ws.receive_bytes()
    assert closed.value.code == 4401
    with client.websocket_connect("/v1/live/ws",
                                  subprotocols=["snakepit-perf.v1", f"bearer.{VIEWER}"]) as ws:
        assert ws.accepted_subprotocol == "snakepit-perf.v1"
        assert ws.receive_bytes() == b"[]"
