"""Snakepit's telemetry as it really is, end to end: envelopes built from Snakepit 0.13's source
(tests/snakepit_envelopes.py) through a real `run` and through the real Kafka topic to a real
worker; Snakepit's OpenTelemetry spans exported by the real OpenTelemetry SDK (protobuf and
JSON) into a real `run`. Counts per logical pool are exact, each call counted once."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from confluent_kafka import Producer

from harness import kafka as kh
from harness.data import T0
from harness.metrics import samples
from streams.series import rolled_up_pool
from tests import snakepit_envelopes as sp


def by_pool(base: str, metric: str, start: float, end: float, stat: str = "count"
            ) -> dict[str, float]:
    r = httpx.get(f"{base}/v1/query", params={"metric": metric, "stat": stat, "from": int(start),
                                              "to": int(end) + 1, "step": "1m",
                                              "group_by": "pool"})
    assert r.status_code == 200, r.text
    combine = max if stat == "max" else sum  # the events may straddle a minute boundary
    return {s["labels"]["pool"]: combine(p[1] for p in s["points"]) for s in r.json()["series"]}


def stored_counts(base: str, start: float, end: float) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for key, metric in (("requests", "requests_total"), ("errors", "request_errors_total"),
                        ("timeouts", "request_timeouts_total")):
        for pool, n in by_pool(base, metric, start, end).items():
            counts.setdefault(pool, {"requests": 0, "errors": 0, "timeouts": 0})[key] = round(n)
    return counts


def test_every_snakepit_event_through_a_real_run(run_server: str):
    t0 = time.time() - 300
    envelopes, expected = sp.deployment(t0)
    r = httpx.post(f"{run_server}/v1/events", content=orjson.dumps(envelopes),
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 202, r.text
    assert r.json() == {"accepted": len(envelopes), "rejected": []}
    t1 = envelopes[-1]["time"]
    kh.wait_for(lambda: stored_counts(run_server, t0, t1) == expected, 60,
                f"stored calls per pool to be {expected}, last {stored_counts(run_server, t0, t1)}")
    pools = httpx.get(f"{run_server}/v1/dimensions/pool").json()
    assert sp.GENSERVER not in str(pools)
    # units: the 5 s exception of gpu_pool (native ns) and the 0.9 s streams (µs)
    longest = by_pool(run_server, "request_duration_seconds", t0, t1, stat="max")
    assert longest["gpu_pool"] == pytest.approx(5.0)
    assert longest["default"] == pytest.approx(0.04)
    native = httpx.get(f"{run_server}/v1/query", params={
        "metric": "native_events_total", "stat": "count", "from": int(t0), "to": int(t1) + 1,
        "step": "1m", "group_by": "name"}).json()
    names = {s["labels"]["name"]: sum(p[1] for p in s["points"]) for s in native["series"]}
    assert names["snakepit.request.executed"] == 12  # 11 unqueued unary calls + every_event's
    assert names["snakepit.error.oom"] == 1 and names["snakepit.script.shutdown.exit"] == 1
    metrics = httpx.get(f"{run_server}/metrics").text
    assert samples(metrics)['snakepit_perf_native_events_total{event="snakepit.gpu.power.sampled"}'] \
        == 1
    assert httpx.get(f"{run_server}/v1/rejects").json() == []


@pytest.mark.kafka
@pytest.mark.cassandra
def test_every_snakepit_event_through_kafka_to_a_real_worker(
        kafka_bootstrap, cassandra_stores, unique_name):
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic, partitions=1)
    kh.create_topic(kafka_bootstrap, f"{topic}.dlq", partitions=1)
    t0 = float(T0)
    envelopes, expected = sp.deployment(t0)
    closing = sp.saturated("default", t0 + 3 * 3600)  # closes every earlier hour
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(0, len(envelopes), 25):  # batches as a forwarder sends them
        raw.produce(topic, orjson.dumps(envelopes[i:i + 25]))
    raw.produce(topic, orjson.dumps(closing))
    assert raw.flush(30) == 0
    store = cassandra_stores(unique_name)
    kh.run_worker_to_end(store, kafka_bootstrap, topic, unique_name, dlq_topic=f"{topic}.dlq")
    got: dict[str, dict[str, int]] = {}
    refs = [r for r in store.series("request") if rolled_up_pool(r.labels) not in (None, "__all__")]
    for row in store.read(refs, 3600, int(t0) // 3600 * 3600, int(t0) + 3600):
        c = row.agg.counters
        mine = got.setdefault(row.series.labels[0], {"requests": 0, "errors": 0, "timeouts": 0})
        for key in mine:
            mine[key] += int(c.get(key, 0))
    assert got == expected
    assert store.rejects(10) == []
    labelled = [r.labels for fam in ("worker", "python", "pool") for r in store.series(fam)]
    assert len(labelled) > 10
    assert not any(sp.GENSERVER in str(labels) for labels in labelled)


# -- OpenTelemetry ------------------------------------------------------------------------------

def _providers(base: str, encoding: str):
    """Two SDK providers as Snakepit runs them: the Elixir node and a Python worker."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if encoding == "protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    out = []
    for service in ("snakepit", "snakepit.python.bridge"):
        provider = TracerProvider(resource=Resource.create({"service.name": service,
                                                            "service.namespace": "snakepit"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=f"{base}/v1/traces")))
        out.append(provider)
    return out


def _export_calls(base: str, encoding: str, calls: list[tuple[str, str, int, int, str]]) -> None:
    """Each call as Snakepit's spans: instrumentation.ex:13-31 (``snakepit.grpc.execute.<cmd>``,
    client kind, start and stop attributes) and telemetry/open_telemetry.ex:222-300 (the bridge's
    ``snakepit.grpc.<cmd>``) on the Elixir node; grpc_server.py:514 ``BridgeService/ExecuteTool``
    with otel_tracing.py:108-113's attributes on the Python worker."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    elixir, python = _providers(base, encoding)
    ex, py = elixir.get_tracer("snakepit"), python.get_tracer("snakepit.bridge")
    for cid, wid, start_ns, elixir_ns, result in calls:
        python_ns = elixir_ns * 7 // 10
        common = {"snakepit.worker.id": wid, "snakepit.pool": sp.GENSERVER,
                  "snakepit.command": "predict", "snakepit.correlation_id": cid}
        for name, extra in (("snakepit.grpc.execute.predict", {"snakepit.timeout_ms": 30000}),
                            ("snakepit.grpc.predict", {"snakepit.telemetry.operation": "execute",
                                                       "snakepit.worker.pid": sp.pid()})):
            span = ex.start_span(name, kind=SpanKind.CLIENT, attributes={**common, **extra},
                                 start_time=start_ns)
            span.set_attribute("snakepit.grpc.duration_ms", elixir_ns // 1_000_000)
            if result == "ok":
                span.set_attribute("snakepit.grpc.status", "ok")
            else:
                span.set_attribute("snakepit.grpc.status", "error")
                span.set_attribute("snakepit.grpc.error", ":timeout")
                span.set_status(Status(StatusCode.ERROR, ":timeout"))
            span.end(end_time=start_ns + elixir_ns)
        tool = py.start_span("BridgeService/ExecuteTool", start_time=start_ns + elixir_ns // 10,
                             attributes={"snakepit.session_id": "s1", "snakepit.tool": "predict"})
        tool.set_attribute("snakepit.correlation_id", cid)
        tool.end(end_time=start_ns + elixir_ns // 10 + python_ns)
    for provider in (python, elixir):
        assert provider.force_flush(30_000)
        provider.shutdown()


def test_snakepit_spans_from_the_real_sdk_become_requests_with_python_time(run_server: str):
    t0 = time.time() - 300
    wid = sp.worker_id("gpu_pool", 1)
    calls = []
    for i in range(40):
        elixir_ns = (10 + i) * 1_000_000
        calls.append((f"otel-{i}", wid, int((t0 + i) * 1e9), elixir_ns,
                      "timeout" if i % 10 == 9 else "ok"))
    # the first 10 calls also arrive as telemetry (execute.stop with the same correlation id)
    telemetry = [sp.execute_stop(wid, "predict", cid, start / 1e9 + d / 1e9, d, result)
                 for cid, _, start, d, result in calls[:10]]
    r = httpx.post(f"{run_server}/v1/events", content=orjson.dumps(telemetry),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 202 and r.json()["accepted"] == 10
    _export_calls(run_server, "protobuf", calls[:20])
    _export_calls(run_server, "json", calls[20:])
    t1 = t0 + 60
    expected = {"gpu_pool": {"requests": 40, "errors": 0, "timeouts": 4}}
    kh.wait_for(lambda: stored_counts(run_server, t0, t1) == expected, 60,
                f"40 calls counted once, last {stored_counts(run_server, t0, t1)}")
    total = sum((10 + i) * 1000 for i in range(40))  # µs
    python_total = sum((10 + i) * 1_000_000 * 7 // 10 // 1000 for i in range(10, 40))
    kh.wait_for(lambda: by_pool(run_server, "python_exec_seconds", t0, t1, "count")
                .get("gpu_pool") == 30, 30, "Python time of the 30 span-first calls")
    py_sum = by_pool(run_server, "python_exec_seconds", t0, t1, "sum")["gpu_pool"]
    overhead = by_pool(run_server, "elixir_overhead_seconds", t0, t1, "sum")["gpu_pool"]
    assert py_sum == pytest.approx(python_total / 1e6, abs=1e-5)
    span_first = sum((10 + i) * 1000 for i in range(10, 40))
    assert overhead == pytest.approx((span_first - python_total) / 1e6, abs=1e-5)
    durations = by_pool(run_server, "request_duration_seconds", t0, t1, "sum")["gpu_pool"]
    assert durations == pytest.approx(total / 1e6, abs=1e-5)
    # the 10 telemetry-first calls keep their Python time as Python calls
    calls_py = httpx.get(f"{run_server}/v1/query", params={
        "metric": "python_call_seconds", "stat": "count", "from": int(t0), "to": int(t1),
        "step": "1m"}).json()
    assert sum(p[1] for s in calls_py["series"] for p in s["points"]) == 10


def test_otlp_receiver_answers_as_the_specification_says(run_server: str):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    bad = httpx.post(f"{run_server}/v1/traces", content=b"\x0a\xff\xff",
                     headers={"Content-Type": "application/x-protobuf"})
    assert bad.status_code == 400 and "protobuf" in bad.json()["detail"]
    other = {"resourceSpans": [{"scopeSpans": [{"spans": [{
        "name": "GET /", "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
        "startTimeUnixNano": "1795867200000000000", "endTimeUnixNano": "1795867200100000000"}]}]}]}
    r = httpx.post(f"{run_server}/v1/traces", content=orjson.dumps(other),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["partialSuccess"]["rejectedSpans"] == "1"
    empty = httpx.post(f"{run_server}/v1/traces", content=b"",
                       headers={"Content-Type": "application/x-protobuf"})
    assert empty.status_code == 200
    ExportTraceServiceResponse().ParseFromString(empty.content)
    assert httpx.post(f"{run_server}/v1/traces", content=b"{}",
                      headers={"Content-Type": "text/plain"}).status_code == 415


def test_a_span_from_a_node_with_a_broken_clock_is_rejected_and_kept(run_server: str):
    """The real SDK, one call exported from a node whose clock says 2099: that call is rejected
    with a reason in /v1/rejects; the calls beside it in the same export are counted."""
    t0 = time.time() - 200
    wid = sp.worker_id("clock_pool", 1)
    calls = [(f"clock-{i}", wid, int((t0 + i) * 1e9), 20_000_000, "ok") for i in range(5)]
    calls.append(("clock-2099", wid, int(4_102_358_400 * 1e9), 20_000_000, "ok"))
    _export_calls(run_server, "protobuf", calls)
    t1 = t0 + 60
    kh.wait_for(lambda: stored_counts(run_server, t0, t1).get("clock_pool", {}).get(
        "requests") == 5, 60, "the five calls with a sane clock")
    reasons = [r["reason"] for r in httpx.get(f"{run_server}/v1/rejects").json()]
    assert any(r.startswith("span call: ") and "2099-12-31T00:00" in r
               and "ahead of the server's clock" in r for r in reasons), reasons
