"""Exports read back by real readers (pyarrow, DuckDB, the csv module) equal the JSON answer;
annotations line up with the points they overlap."""

from __future__ import annotations

import csv
import io

import duckdb
import msgspec
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0, requests
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("export") / "e.sqlite3")
    runner = EmbeddedRunner(store)
    app = create_app(Services(store=store, sink=runner, engine=runner.engine))
    with TestClient(app) as c:
        c.post("/v1/events", content=msgspec.json.encode(requests(6000, 600)),
               headers={"Content-Type": "application/json"})
        deploy = {"type": "annotation", "time": T0 + 130, "kind": "deploy", "title": "v2.1"}
        c.post("/v1/events", content=msgspec.json.encode([deploy]),
               headers={"Content-Type": "application/json"})
        runner.close_all()
        yield c
    store.close()


PARAMS = {"metric": "request_duration_seconds", "stat": "p99", "from": T0, "to": T0 + 600,
          "step": "1m", "group_by": "pool,command"}


def test_json_csv_parquet_and_duckdb_agree(client, tmp_path):
    answer = client.get("/v1/query", params=PARAMS).json()
    expected = sorted((s["labels"]["pool"], s["labels"]["command"], t, v)
                      for s in answer["series"] for t, v in s["points"])
    assert len(expected) == 2 * 2 * 10

    rows = client.get("/v1/export", params={**PARAMS, "format": "json"}).json()
    assert sorted((r["pool"], r["command"], r["epoch_s"], r["value"]) for r in rows) == expected
    assert rows[0]["unit"] == "seconds" and rows[0]["time"].endswith("Z")

    r = client.get("/v1/export", params={**PARAMS, "format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    got = [(row["pool"], row["command"], int(row["epoch_s"]), float(row["value"]))
           for row in csv.DictReader(io.StringIO(r.text))]
    assert sorted(got) == expected

    r = client.get("/v1/export", params={**PARAMS, "format": "parquet"})
    path = tmp_path / "p99.parquet"
    path.write_bytes(r.content)
    table = pq.read_table(path)
    assert sorted(zip(table["pool"].to_pylist(), table["command"].to_pylist(),
                      table["epoch_s"].to_pylist(), table["value"].to_pylist(),
                      strict=True)) == expected
    duck = duckdb.sql(f"SELECT pool, command, epoch_s, value FROM '{path}' "
                      f"ORDER BY 1, 2, 3").fetchall()
    assert [tuple(x) for x in duck] == expected


def test_annotations_join_the_points_they_overlap(client):
    rows = client.get("/v1/export", params={**PARAMS, "group_by": "pool",
                                            "annotations": "true"}).json()
    marked = {(r["epoch_s"], r["annotations"]) for r in rows if r["annotations"]}
    assert marked == {(T0 + 120, "deploy: v2.1")}
    assert rows[0]["epoch_s"] == T0 and rows[0]["annotations"] == ""
    listed = client.get("/v1/annotations", params={"from": T0, "to": T0 + 600}).json()
    assert [a["title"] for a in listed] == ["v2.1"]


def test_row_limit_is_a_clear_413(client):
    r = client.get("/v1/export", params={**PARAMS, "limit": 5})
    assert r.status_code == 413 and r.json()["param"] == "limit"
    assert "40 rows" in r.json()["detail"]


def test_annotations_can_be_posted(client):
    r = client.post("/v1/annotations", content=b'{"time": %d, "kind": "config_change",'
                    b' "title": "pool_size 8 -> 12", "pool": "pool-a"}' % (T0 + 300))
    assert r.status_code == 201
    listed = client.get("/v1/annotations", params={"from": T0 + 299, "to": T0 + 301}).json()
    assert [a["title"] for a in listed] == ["pool_size 8 -> 12"]
    bad = client.post("/v1/annotations", content=b'{"time": %d, "kind": "party"}' % (T0 + 300))
    assert bad.status_code == 400 and "kind" in bad.json()["detail"]
