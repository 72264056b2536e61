"""A query reads from the store only the series its filters and grouping need.

The store is a real SQLite store filled by the engine from 20,000 requests over 2 h (2 pools ×
2 commands, 7 workers); a thin wrapper counts what its ``read`` returns, so a query that
fetched every series and filtered afterwards would show here as too many rows.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

import pytest

from harness.data import T0, store_two_hours
from query.engine import build, run
from store.base import SeriesRef, StoredRollup
from store.sqlite import SQLiteStore
from streams.series import ALL

BUCKETS = 120  # 2 h of 1-minute buckets


class CountingStore(SQLiteStore):
    """A SQLite store that remembers the rows each ``read`` returned."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.returned: list[StoredRollup] = []

    def read(self, refs: Iterable[SeriesRef], resolution: int, start: int, end: int,
             dists: Collection[str] | None = None) -> list[StoredRollup]:
        rows = super().read(refs, resolution, start, end, dists)
        self.returned += rows
        return rows


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    s = CountingStore(tmp_path_factory.mktemp("reads") / "s.sqlite3")
    store_two_hours(s)
    yield s
    s.close()


def answer(store: CountingStore, metric: str, stat: str, group_by: str | None,
           where: list[str]) -> dict[str, float]:
    """Each group's points over the 2 h at a 1-minute step, summed; the rows read kept."""
    store.returned = []
    q = build(metric, stat, str(int(T0)), str(int(T0) + 7200), "60s", group_by, where)
    a = run(store, q)
    assert a.resolution == 60
    return {",".join(s.labels.values()) or "all": sum(v for _, v in s.points)
            for s in a.series}


def test_a_filter_on_pool_grouped_by_command_reads_that_pools_detailed_series_only(store):
    got = answer(store, "requests_total", "count", "command", ["pool:pool-a"])
    assert sum(got.values()) == 10_000 and set(got) == {"predict", "embed"}
    pools = {r.series.labels[0] for r in store.returned}
    commands = {r.series.labels[3] for r in store.returned}
    assert pools == {"pool-a"} and commands == {"predict", "embed"}  # no rolled-up series
    assert len(store.returned) == 2 * BUCKETS


def test_a_query_by_pool_reads_the_rolled_up_series_not_the_detailed_ones(store):
    got = answer(store, "request_duration_seconds", "p99", "pool", [])
    assert set(got) == {"pool-a", "pool-b"}
    assert {r.series.labels for r in store.returned} == {
        ("pool-a", *(ALL,) * 7), ("pool-b", *(ALL,) * 7)}
    assert len(store.returned) == 2 * BUCKETS


def test_a_query_of_the_whole_deployment_reads_one_series(store):
    assert answer(store, "requests_total", "count", None, []) == {"all": 20_000}
    assert {r.series.labels for r in store.returned} == {(ALL,) * 8}
    assert len(store.returned) == BUCKETS


def test_a_negated_filter_on_the_worker_family_reads_only_the_workers_it_keeps(store):
    got = answer(store, "worker_requests_total", "count", "worker_id",
                 ["worker_id!=w3", "pool:pool-b"])
    # event i goes to pool i % 2 and worker i % 7: each pool sees all 7 workers
    assert "w3" not in got and len(got) == 6
    assert {r.series.labels for r in store.returned} == {("pool-b", w) for w in got}
    assert len(store.returned) == 6 * BUCKETS
    everything = store.read(store.series("worker"), 60, int(T0), int(T0) + 7200)
    assert len(everything) == 14 * BUCKETS  # what reading it all would have cost


def test_a_query_past_the_row_limit_reads_a_coarser_resolution(store):
    q = build("requests_total", "count", str(int(T0)), str(int(T0) + 7200), None, "command",
              ["pool:pool-a"])  # 2 series: 1,440 rows at 10 s, 240 at 1 min, 4 at 1 h
    store.returned = []
    a = run(store, q, max_rows=100)
    assert a.resolution == 3600 and (a.covered_from, a.covered_to) == (int(T0), int(T0) + 7200)
    assert {s.labels["command"]: s.points[0][1] for s in a.series}.keys() == {"predict", "embed"}
    assert sum(s.points[0][1] for s in a.series) == 10_000
    assert len(store.returned) == 4
    assert run(store, q, max_rows=240).resolution == 60  # the finest that fits
    assert run(store, q).resolution == 10


def test_a_query_no_resolution_can_answer_within_the_limit_is_a_400_that_says_why(store):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import Services
    from runners.embedded import EmbeddedRunner

    params = {"metric": "requests_total", "stat": "count", "from": int(T0),
              "to": int(T0) + 7200, "step": "1m", "group_by": "command", "where": "pool:pool-a"}
    app = create_app(Services(store=store, sink=EmbeddedRunner(store), max_query_rows=100))
    with TestClient(app) as client:
        r = client.get("/v1/query", params=params)
        assert r.status_code == 400, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["param"] == "from"
        assert "up to 240 rows (2 series × 120 buckets of 60 s), more than the 100" in \
            r.json()["detail"]
        assert client.get("/v1/query", params={**params, "step": "1h"}).status_code == 200
