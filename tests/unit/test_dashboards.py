"""Dashboard layouts: saved per user, shared with a role read-only, edited only by the owner."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import hash_key, parse_keys
from api.services import Services
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore

KEYS = {"alice": ("viewer", "spk_alice"), "bob": ("viewer", "spk_bob"),
        "ops": ("operator", "spk_ops"), "root": ("admin", "spk_root")}
LAYOUT = {"title": "Latency", "range": "1h",
          "panels": [{"title": "P99 by pool", "metric": "request_duration_seconds",
                      "stats": ["p99"], "group_by": "pool", "width": 12}]}


@pytest.fixture
def client(tmp_path):
    store = SQLiteStore(tmp_path / "d.sqlite3")
    runner = EmbeddedRunner(store)
    keys = parse_keys([f"{name}:{role}:{hash_key(secret)}" for name, (role, secret) in KEYS.items()])
    with TestClient(create_app(Services(store=store, sink=runner, engine=runner.engine), keys)) as c:
        yield c
    store.close()


def as_(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[user][1]}"}


def test_a_layout_comes_back_for_its_owner_and_not_for_another_user(client):
    saved = client.post("/v1/dashboards", json=LAYOUT, headers=as_("alice"))
    assert saved.status_code == 201
    d = saved.json()
    assert d["owner"] == "alice" and d["editable"] and d["panels"][0]["stats"] == ["p99"]
    assert [x["id"] for x in client.get("/v1/dashboards", headers=as_("alice")).json()] == [d["id"]]
    assert client.get(f"/v1/dashboards/{d['id']}", headers=as_("alice")).json()["title"] == "Latency"
    assert client.get("/v1/dashboards", headers=as_("bob")).json() == []
    assert client.get(f"/v1/dashboards/{d['id']}", headers=as_("bob")).status_code == 404
    assert client.get("/v1/dashboards").status_code == 401


def test_sharing_with_a_role_is_read_only_for_others(client):
    d = client.post("/v1/dashboards", json={**LAYOUT, "shared_role": "operator"},
                    headers=as_("alice")).json()
    assert client.get("/v1/dashboards", headers=as_("bob")).json() == [], "viewer < operator"
    seen = client.get("/v1/dashboards", headers=as_("ops")).json()
    assert [x["id"] for x in seen] == [d["id"]] and not seen[0]["editable"]
    edit = client.put(f"/v1/dashboards/{d['id']}", json={**LAYOUT, "title": "mine now"},
                      headers=as_("ops"))
    assert edit.status_code == 403
    assert client.delete(f"/v1/dashboards/{d['id']}", headers=as_("ops")).status_code == 403
    renamed = client.put(f"/v1/dashboards/{d['id']}", json={**LAYOUT, "title": "Latency v2"},
                         headers=as_("alice"))
    assert renamed.status_code == 200 and renamed.json()["shared_role"] == ""
    assert client.get("/v1/dashboards", headers=as_("ops")).json() == [], "unshared again"
    assert client.delete(f"/v1/dashboards/{d['id']}", headers=as_("root")).status_code == 204
    assert client.get("/v1/dashboards", headers=as_("alice")).json() == []


def test_invalid_layouts_are_rejected_with_the_field(client):
    bad = client.post("/v1/dashboards", json={**LAYOUT, "panels": [{"title": "x"}]},
                      headers=as_("alice"))
    assert bad.status_code == 422
    assert "metric" in bad.text
    assert client.get("/v1/whoami", headers=as_("ops")).json() == {"name": "ops", "role": "operator"}
