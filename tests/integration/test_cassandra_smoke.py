"""The Cassandra the harness runs is a real Apache Cassandra: keyspaces, tables, TTLs."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.cassandra


def test_cassandra_write_read_and_ttl(cassandra_session, unique_name: str):
    s = cassandra_session
    s.execute(f"CREATE KEYSPACE {unique_name} WITH replication = "
              "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    try:
        s.execute(f"CREATE TABLE {unique_name}.rollups (series text, bucket timestamp, "
                  "count bigint, PRIMARY KEY (series, bucket)) WITH default_time_to_live = 3600")
        insert = s.prepare(f"INSERT INTO {unique_name}.rollups (series, bucket, count) "
                           "VALUES (?, ?, ?) USING TTL 600")
        s.execute(insert, ("pool=default", 1_764_331_200_000, 42))
        s.execute(s.prepare(f"INSERT INTO {unique_name}.rollups (series, bucket, count) "
                            "VALUES (?, ?, ?)"), ("pool=default", 1_764_331_210_000, 7))
        rows = list(s.execute(f"SELECT bucket, count, TTL(count) AS ttl FROM {unique_name}.rollups "
                              "WHERE series = 'pool=default'"))
        assert [r.count for r in rows] == [42, 7]
        assert 590 <= rows[0].ttl <= 600, "explicit USING TTL"
        assert 3590 <= rows[1].ttl <= 3600, "table default_time_to_live"
        version = s.execute("SELECT release_version FROM system.local").one().release_version
        assert version.startswith("5.0")
    finally:
        s.execute(f"DROP KEYSPACE IF EXISTS {unique_name}")
