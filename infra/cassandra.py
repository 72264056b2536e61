"""A one-node Apache Cassandra 5.0 on loopback, run as ``CassandraDaemon`` from Maven jars."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import maven, process
from infra.java import java17

# Java 17 module flags Cassandra 5.0 needs (its conf/jvm17-server.options lists the same).
_EXPORTS = [
    "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql",
    "java.base/java.lang.ref", "jdk.unsupported/sun.misc", "jdk.attach/sun.tools.attach",
]
_OPENS = [
    "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar", "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch", "java.base/java.io", "java.base/java.lang.reflect",
    "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
]


@dataclass
class CassandraServer:
    """Cassandra serving CQL on ``host:port``; ``storage_port`` is its (unused) gossip port."""

    home: Path
    host: str = "127.0.0.1"
    port: int = 9042
    storage_port: int = 7000
    heap: str = "1G"
    name: str = "cassandra"

    @property
    def pid_file(self) -> Path:
        return self.home / "cassandra.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "cassandra.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> bool:
        """Fetch the jars if needed and start the node. Returns True if jars were downloaded."""
        lib, downloaded = maven.ensure_jars("cassandra")
        self.home.mkdir(parents=True, exist_ok=True)
        args = self._write_jvm_args(lib)
        process.spawn(
            [java17(), f"@{args}", "org.apache.cassandra.service.CassandraDaemon"],
            self.log_file, self.pid_file, self.home,
        )
        return downloaded

    def ready(self) -> bool:
        """True when a CQL query answers."""
        if not process.port_open(self.host, self.port):
            return False
        from cassandra.cluster import Cluster

        cluster = Cluster([self.host], port=self.port, connect_timeout=3)
        try:
            session = cluster.connect()
            session.execute("SELECT release_version FROM system.local", timeout=5)
        except Exception:
            return False
        finally:
            cluster.shutdown()
        return True

    def _write_jvm_args(self, lib: Path) -> Path:
        yaml = self._write_yaml()
        logback = self._write_logback()
        flags = [
            f"-Xms{self.heap}", f"-Xmx{self.heap}", "-Xss512k", "-XX:+UseG1GC",
            "-XX:+ParallelRefProcEnabled", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            "-Djdk.attach.allowAttachSelf=true", "-Dio.netty.tryReflectionSetAccessible=true",
            f"-javaagent:{maven.find_jar(lib, 'jamm-')}",
            *[f"--add-exports={m}=ALL-UNNAMED" for m in _EXPORTS],
            *[f"--add-opens={m}=ALL-UNNAMED" for m in _OPENS],
            f"-Dcassandra.config={yaml.resolve().as_uri()}",
            f"-Dcassandra.storagedir={self.home / 'data'}",
            f"-Dcassandra.logdir={self.home}",
            "-Dcassandra-foreground=yes",
            f"-Dlogback.configurationFile={logback}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.unsafesystem=true",
            "-Dcassandra.ignore_kernel_bug_1057843_check=true",
            "-Dcassandra.ring_delay_ms=0",
            "-cp", f"{lib}/*",
        ]
        path = self.home / "cassandra.jvm"
        path.write_text("\n".join(flags) + "\n")
        return path

    def _write_yaml(self) -> Path:
        data = self.home / "data"
        dirs = {name: data / name for name in
                ("data", "commitlog", "saved_caches", "hints", "cdc_raw")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        text = f"""cluster_name: snakepit-perf
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
commitlog_sync: periodic
commitlog_sync_period: 10s
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{self.host}:{self.storage_port}"
listen_address: {self.host}
rpc_address: {self.host}
storage_port: {self.storage_port}
native_transport_port: {self.port}
start_native_transport: true
data_file_directories:
  - {dirs["data"]}
commitlog_directory: {dirs["commitlog"]}
saved_caches_directory: {dirs["saved_caches"]}
hints_directory: {dirs["hints"]}
cdc_raw_directory: {dirs["cdc_raw"]}
auto_snapshot: false
snapshot_before_compaction: false
concurrent_compactors: 1
"""
        path = self.home / "cassandra.yaml"
        path.write_text(text)
        return path

    def _write_logback(self) -> Path:
        path = self.home / "logback.xml"
        path.write_text(
            "<configuration>\n"
            '  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">\n'
            "    <encoder><pattern>%d %-5level [%thread] %logger{20} - %msg%n</pattern></encoder>\n"
            "  </appender>\n"
            '  <root level="INFO"><appender-ref ref="STDOUT"/></root>\n'
            "</configuration>\n"
        )
        return path
