"""Wire the distributed parts: the stream worker and the API, over Kafka and Cassandra."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.app import create_app
from api.auth import ApiKey
from api.services import Services
from models.runner import AlertRunner, StoredAlerts
from runners.faust_worker import FaustWorker
from schemas.events import Event
from sdk.producer import EventProducer
from snakepit_perf import config
from snakepit_perf.alerting import (
    alert_engine,
    alert_outputs,
    deploy_judge,
    kafka_publisher,
    recommender,
)
from snakepit_perf.config import Settings
from store.archive import ArchiveReader
from store.cassandra import CassandraStore


class KafkaSink:
    """Accepted HTTP events go to the events topic; ``submit`` returns once Kafka has them."""

    def __init__(self, producer: EventProducer) -> None:
        self.producer = producer

    def submit(self, events: Sequence[Event]) -> None:
        self.producer.send_many(events)
        if self.producer.flush(30) > 0:
            raise RuntimeError("Kafka did not acknowledge the events in 30 s")


def cassandra_store(settings: Settings) -> CassandraStore:
    c = settings.cassandra
    return CassandraStore(c.hosts, c.port, c.keyspace, c.replication_factor)


def alerts_checkpoint(settings: Settings) -> str:
    """The one alert-state checkpoint of a worker group (each worker keeps its pools in it)."""
    return f"alerts:{settings.kafka.consumer_group}"


def build_worker(settings: Settings) -> FaustWorker:
    """A worker that also evaluates alerts for its partitions' pools and publishes them."""
    k = settings.kafka
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # Faust keeps its data dir under it
    store = cassandra_store(settings)
    outputs = [kafka_publisher(settings), *alert_outputs(settings)]
    # One checkpoint for the group: a restarted or rebalanced worker resumes its pools' learned
    # baselines and firing alerts instead of relearning and paging again.
    alerts = AlertRunner(alert_engine(settings), outputs, store=store,
                         checkpoint=alerts_checkpoint(settings), shared=True,
                         keep_overrides=bool(settings.alerts.rules_file),
                         repeat_s=settings.alerts.repeat_interval_minutes * 60)
    return FaustWorker(store, k.bootstrap, k.events_topic, k.consumer_group, k.dlq_topic,
                       on_minutes=alerts.consume, data_dir=settings.data_dir / "faust",
                       rollups_topic=k.rollups_topic, time_bounds=config.time_bounds(settings),
                       limits=config.limits(settings))


def build_api(settings: Settings, keys: list[ApiKey] | None = None) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = cassandra_store(settings)
    producer = EventProducer(settings.kafka.bootstrap, settings.kafka.events_topic)
    archive = ArchiveReader(settings.data_dir / "archive")  # filled by `export --archive`
    # Alerts are evaluated by the workers; the API lists them from the workers' checkpoint.
    view = StoredAlerts(store, alerts_checkpoint(settings))
    publisher = kafka_publisher(settings)
    app = create_app(Services(store=store, sink=KafkaSink(producer), mode="distributed",
                              archive=archive, alert_view=view, time_bounds=config.time_bounds(settings),
                              body_idle_s=settings.api.body_idle_s,
                              max_query_rows=settings.api.max_query_rows),
                     keys)

    # Deploys are judged here, from the stored rollups, and published beside the alerts.
    judge = deploy_judge(app.state.services, settings, publisher)
    recs = app.state.recommender = recommender(app.state.services, settings, publisher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        judge.start()
        recs.start()
        try:
            yield
        finally:
            recs.stop()
            judge.stop()
            app.state.services.spans.close()  # calls still waiting for a partner span
            producer.flush(30)
            store.close()

    app.router.lifespan_context = lifespan
    return app
