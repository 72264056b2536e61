"""Test harness: real Apache Kafka and Apache Cassandra, reused if already up, else started.

The servers live in the same data directory as ``snakepit-perf infra up`` uses (override with
``SNAKEPIT_PERF_DATA_DIR``), so a developer who ran ``infra up`` pays no start-up cost. Servers
this harness starts are stopped at the end of the session; servers it found running are left.
A server that cannot start fails the run with the tail of its log: integration tests are never
silently skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra import local
from snakepit_perf import config

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@dataclass
class LocalServers:
    kafka_bootstrap: str
    cassandra_host: str
    cassandra_port: int


@pytest.fixture(scope="session")
def local_servers() -> Iterator[LocalServers]:
    settings = config.load()
    host, port = settings.kafka.bootstrap.rsplit(":", 1)
    targets = local.servers(settings.data_dir, kafka_port=int(port),
                            cassandra_port=settings.cassandra.port, host=host)
    for st in map(local.status, targets):
        if st.state == "external":
            server = next(s for s in targets if s.name == st.name)
            if not server.ready():
                pytest.fail(f"{st.name}: port {st.address} is taken by a process that is not "
                            f"a working {st.name}")
    results = local.up(targets)
    started = [s for s, r in zip(targets, results, strict=True) if r.started]
    yield LocalServers(settings.kafka.bootstrap, settings.cassandra.hosts[0],
                       settings.cassandra.port)
    local.down(started)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_servers: LocalServers) -> str:
    return local_servers.kafka_bootstrap


@pytest.fixture(scope="session")
def cassandra_session(local_servers: LocalServers):
    from cassandra.cluster import Cluster

    cluster = Cluster([local_servers.cassandra_host], port=local_servers.cassandra_port)
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture
def cassandra_stores(local_servers: LocalServers):
    """``make(keyspace)`` opens a CassandraStore in a fresh keyspace; all are dropped after,
    through the store's own session (one that lived through a node restart in the test)."""
    from store.cassandra import CassandraStore

    made = []

    def make(keyspace: str) -> CassandraStore:
        store = CassandraStore([local_servers.cassandra_host], local_servers.cassandra_port,
                               keyspace=keyspace, write_consistency="ONE",
                               read_consistency="ONE")
        made.append(store)
        return store

    yield make
    for store in made:
        store.session.execute(f"DROP KEYSPACE IF EXISTS {store.keyspace}", timeout=60)
        store.close()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A topic/keyspace-safe name unique to this test run (servers may be reused)."""
    return f"t_{request.node.name[:20].replace('[', '_').replace(']', '')}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def output_dir() -> Path:
    OUTPUT_DIR.mkdir(exist_ok=True)
    return OUTPUT_DIR
