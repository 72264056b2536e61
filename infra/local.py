"""``infra up|down|status``: start the local servers, wait until they accept clients, stop them.

Each server lives in ``<data_dir>/infra/<name>/`` with its config, data, log and pid file.
``down`` stops only what ``up`` started (by pid); a server someone else runs on the same port is
reported as ``external`` and left alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from infra import process
from infra.cassandra import CassandraServer
from infra.kafka import KafkaServer


class Server(Protocol):
    name: str
    home: Path
    host: str
    port: int

    @property
    def pid_file(self) -> Path: ...
    @property
    def log_file(self) -> Path: ...
    @property
    def address(self) -> str: ...
    def start(self) -> bool: ...
    def ready(self) -> bool: ...


class StartError(RuntimeError):
    """A server did not come up; the message holds the tail of its log."""


@dataclass
class Status:
    name: str
    address: str
    state: str  # "running" (ours), "external" (port taken by another process), "stopped"
    pid: int | None
    log_file: Path


def servers(data_dir: Path, kafka_port: int = 9092, cassandra_port: int = 9042,
            host: str = "127.0.0.1") -> list[Server]:
    root = data_dir / "infra"
    return [
        KafkaServer(root / "kafka", host=host, port=kafka_port, controller_port=kafka_port + 1),
        CassandraServer(root / "cassandra", host=host, port=cassandra_port),
    ]


def status(server: Server) -> Status:
    pid = process.read_pid(server.pid_file)
    if pid is not None:
        state = "running"
    elif process.port_open(server.host, server.port):
        state = "external"
    else:
        state = "stopped"
    return Status(server.name, server.address, state, pid, server.log_file)


@dataclass
class UpResult:
    name: str
    started: bool
    downloaded: bool
    seconds: float


def up(targets: list[Server], timeout: float = 240.0) -> list[UpResult]:
    """Start every stopped server, then wait for all to accept clients (in parallel)."""
    results: dict[str, UpResult] = {}
    t0 = time.monotonic()
    for server in targets:
        st = status(server)
        if st.state == "stopped":
            downloaded = server.start()
            results[server.name] = UpResult(server.name, True, downloaded, 0.0)
        else:
            results[server.name] = UpResult(server.name, False, False, 0.0)
    pending = list(targets)
    deadline = t0 + timeout
    while pending:
        for server in list(pending):
            if server.ready():
                results[server.name].seconds = round(time.monotonic() - t0, 1)
                pending.remove(server)
            elif results[server.name].started and process.read_pid(server.pid_file) is None:
                raise StartError(_failure(server, "exited during start"))
        if pending and time.monotonic() > deadline:
            raise StartError("\n\n".join(_failure(s, f"not ready after {timeout:.0f}s")
                                         for s in pending))
        if pending:
            time.sleep(1.0)
    return [results[s.name] for s in targets]


def down(targets: list[Server]) -> list[tuple[str, bool]]:
    """Stop the servers this tool started; returns (name, was_running) pairs."""
    return [(s.name, process.stop(s.pid_file)) for s in reversed(targets)]


def _failure(server: Server, what: str) -> str:
    return f"{server.name} {what}; last lines of {server.log_file}:\n{process.log_tail(server.log_file)}"
