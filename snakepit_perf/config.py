"""Configuration: defaults, then one TOML file, then ``SNAKEPIT_PERF_*`` variables, then CLI flags.

The TOML file has one table per section (``[api]``, ``[kafka]``, ``[cassandra]``, ...). An
environment variable names a setting as ``SNAKEPIT_PERF_<SECTION>_<KEY>`` in upper case, e.g.
``SNAKEPIT_PERF_KAFKA_BOOTSTRAP=broker:9092`` or ``SNAKEPIT_PERF_API_PORT=9000``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

from models.recommend import RecommendSettings
from schemas.decode import TimeBounds
from streams.series import Limits

ENV_PREFIX = "SNAKEPIT_PERF_"
# What the clients read (gate, import, the Locust plugin, a load command under `bench run`): the
# server to talk to, its key, the benchmark run and scenario. They are not settings of a server,
# so a process started with them (`bench run -- snakepit-perf simulate ...`) must not refuse them.
CLIENT_ENV = frozenset(ENV_PREFIX + n for n in ("URL", "KEY", "RUN", "SCENARIO"))


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind."""


@dataclass
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # API keys as name:role:sha256hex (create with `snakepit-perf keys create`).
    keys: list[str] = field(default_factory=list)
    # Slow clients: a request head must arrive within head_timeout_s of the connection (or of
    # the last response); a body may pause at most body_idle_s (then 408).
    head_timeout_s: float = 10
    body_idle_s: float = 20
    # The rows (series × buckets) one query may read: past it the next coarser resolution
    # that still resolves the step is read, or the query gets a 400 saying what to narrow.
    max_query_rows: int = 500_000


@dataclass
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    events_topic: str = "snakepit.events"
    dlq_topic: str = "snakepit.events.dlq"
    rollups_topic: str = "snakepit.rollups"
    alerts_topic: str = "snakepit.alerts"
    consumer_group: str = "snakepit-perf-workers"


@dataclass
class CassandraSettings:
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    port: int = 9042
    keyspace: str = "snakepit_perf"
    replication_factor: int = 1


@dataclass
class AlertSettings:
    # Alertmanager's base URL (e.g. http://127.0.0.1:9093); empty: not used.
    alertmanager_url: str = ""
    # Webhooks that receive each notification, signed with HMAC-SHA256 of webhook_secret.
    webhook_urls: list[str] = field(default_factory=list)
    webhook_secret: str = ""
    # A TOML file of [[rule]] tables overriding the default alert rules per signal and pool.
    rules_file: str = ""
    # An alert still firing is notified again (Kafka, webhooks) after this many minutes.
    repeat_interval_minutes: int = 240
    # Embedded run: also publish alerts and deploy verdicts on kafka.alerts_topic (the
    # distributed workers and API always do).
    kafka: bool = False


@dataclass
class DeploySettings:
    # Each `deploy` annotation is judged: before_s before it against after_s once settle_s has
    # passed, once the after window's events are stored (lateness_s later).
    before_s: float = 900
    settle_s: float = 120
    after_s: float = 600
    lateness_s: float = 30
    check_every_s: float = 10


@dataclass
class IngestSettings:
    # Events waiting to be aggregated (embedded run) before ingest answers 429 with Retry-After.
    max_queued_events: int = 200_000
    # Events timed further ahead of the server's clock are rejected (a wrong producer clock);
    # events older than the longest retention are rejected too.
    max_ahead_s: float = 600
    # Embedded run: each batch is fsynced to a write-ahead log before its 202 (off: a 202 means
    # "in memory", and a crash loses what the last checkpoint did not cover).
    wal: bool = True


@dataclass
class LimitSettings:
    # What one producer's labels may cost (memory grows with active series; see streams.series).
    max_label_values: int = 1000
    max_series_per_family: int = 10_000
    max_series: int = 25_000


@dataclass
class RetentionSettings:
    # How long the embedded store keeps each resolution, and rejects; applied every
    # check_every_s by the running service (Cassandra rows expire by TTL instead).
    raw_10s_hours: float = 48
    minute_days: float = 35
    hour_days: float = 400
    rejects_days: float = 7
    check_every_s: float = 3600

    def longest_s(self) -> float:
        return max(self.per_resolution().values())

    def per_resolution(self) -> dict[int, int]:
        return {10: int(self.raw_10s_hours * 3600), 60: int(self.minute_days * 86400),
                3600: int(self.hour_days * 86400)}


@dataclass
class Settings:
    data_dir: Path = field(default_factory=lambda: Path.home() / ".snakepit-perf")
    api: ApiSettings = field(default_factory=ApiSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = field(default_factory=CassandraSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    deploys: DeploySettings = field(default_factory=DeploySettings)
    recommend: RecommendSettings = field(default_factory=RecommendSettings)


def time_bounds(settings: Settings) -> TimeBounds:
    """The event times ingest believes: ``[ingest] max_ahead_s``, and the longest retention."""
    return TimeBounds(settings.ingest.max_ahead_s, settings.retention.longest_s())


def limits(settings: Settings) -> Limits:
    return Limits(**vars(settings.limits))


def load(path: Path | None = None, env: dict[str, str] | None = None,
         overrides: dict[str, Any] | None = None) -> Settings:
    """Build settings from the layers in order; ``overrides`` keys are ``section.key`` or ``key``."""
    settings = Settings()
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        _apply_mapping(settings, data, str(path))
    env = os.environ if env is None else env
    for name, value in env.items():
        if name.startswith(ENV_PREFIX) and name not in CLIENT_ENV:
            _set(settings, _env_key(settings, name), value, name)
    for key, value in (overrides or {}).items():
        if value is not None:
            _set(settings, key, value, f"--{key.split('.')[-1].replace('_', '-')}")
    return settings


def _apply_mapping(settings: Settings, data: dict[str, Any], origin: str) -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                _set(settings, f"{key}.{sub}", subvalue, origin)
        else:
            _set(settings, key, value, origin)


def _env_key(settings: Settings, name: str) -> str:
    rest = name[len(ENV_PREFIX):].lower()
    for f in fields(settings):
        if is_dataclass(getattr(settings, f.name)) and rest.startswith(f.name + "_"):
            return f"{f.name}.{rest[len(f.name) + 1:]}"
    return rest


def _set(settings: Settings, key: str, value: Any, origin: str) -> None:
    target: Any = settings
    parts = key.split(".")
    for part in parts[:-1]:
        if not hasattr(target, part) or not is_dataclass(getattr(target, part)):
            raise ConfigError(f"{origin}: unknown setting section '{part}'")
        target = getattr(target, part)
    name = parts[-1]
    hints = get_type_hints(type(target))
    if name not in hints or is_dataclass(getattr(target, name)):
        raise ConfigError(f"{origin}: unknown setting '{key}'")
    setattr(target, name, _coerce(hints[name], value, key, origin))


_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}


def _coerce(kind: Any, value: Any, key: str, origin: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in _BOOLS:
                raise ValueError("expected true or false")
            return _BOOLS[text]
        if kind is int:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError("a boolean is not a number")
            return float(value)
        if kind is Path:
            return Path(os.path.expanduser(str(value)))
        if kind == list[str]:
            return [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: setting '{key}' = {value!r} is not valid: {exc}") from exc
