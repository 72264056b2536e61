"""The load generator models a deployment: queues emerge, incidents show, same seed same events."""

from __future__ import annotations

import msgspec

from harness.data import T0
from schemas.decode import accept
from schemas.events import Pool, Request, Worker
from simulator.model import Incident, Simulation
from simulator.run import drive, to_native

START = T0 + 14 * 3600  # near the daily peak


def events(seconds=300, rate=200.0, incidents=(), seed=1):
    return list(Simulation(rate, START, seconds, seed=seed, incidents=list(incidents)).events())


def test_same_seed_same_events_and_time_order():
    a, b = events(60), events(60)
    assert msgspec.json.encode(a) == msgspec.json.encode(b)
    assert msgspec.json.encode(a) != msgspec.json.encode(events(60, seed=2))
    times = [e.time for e in a]
    assert times == sorted(times)


def test_healthy_deployment_has_little_queueing():
    reqs = [e for e in events() if isinstance(e, Request)]
    assert 200 * 300 * 0.8 < len(reqs) < 200 * 300 * 1.6 * 1.2
    assert sum(e.status == "timeout" for e in reqs) == 0
    assert sum(e.status == "error" for e in reqs) / len(reqs) < 0.02
    assert all(e.python_us is None or e.python_us <= e.duration_us for e in reqs)


def test_queue_saturation_makes_queues_and_timeouts_emerge():
    incident = Incident("queue_saturation", "batch", START + 60, START + 240)
    evs = events(incidents=[incident])
    waits = [e.queue_wait_us for e in evs if isinstance(e, Request) and e.pool == "batch"
             and incident.start + 60 <= e.time < incident.end]
    calm = [e.queue_wait_us for e in evs if isinstance(e, Request) and e.pool == "batch"
            and e.time < incident.start]
    assert sorted(waits)[len(waits) // 2] > 100 * (sorted(calm)[len(calm) // 2] + 1000)
    depths = [e.queue_depth for e in evs if isinstance(e, Pool) and e.pool == "batch"
              and e.kind == "stats" and incident.start + 60 <= e.time < incident.end]
    assert max(depths) > 100


def test_latency_regression_and_crash_loop_are_visible():
    evs = events(incidents=[Incident("latency_regression", "default", START + 100, START + 200),
                            Incident("crash_loop", "gpu", START + 100, START + 200)])

    def median(lo, hi):
        d = sorted(e.duration_us for e in evs if isinstance(e, Request) and e.pool == "default"
                   and lo <= e.time < hi)
        return d[len(d) // 2]

    assert median(START + 120, START + 200) > 2.5 * median(START, START + 100)
    crashes = [e for e in evs if isinstance(e, Worker) and e.kind == "crashed"]
    assert sum(START + 100 <= e.time < START + 200 and e.pool == "gpu" for e in crashes) >= 5


def test_native_mode_emits_what_snakepit_emits_and_each_call_counts_once():
    evs = events(20)
    reqs = [e for e in evs if isinstance(e, Request)]
    assert any(e.queue_wait_us for e in reqs) and any(not e.queue_wait_us for e in reqs)
    counted = 0
    for e in reqs:
        items = to_native(e)
        if e.worker_id is None:  # a queue timeout: Snakepit emits nothing
            assert items == []
            continue
        names = [".".join(i["event"]) for i in items]
        assert names[0] == "snakepit.grpc_worker.execute.stop"
        assert items[0]["metadata"]["pool"] == "Elixir.Snakepit.Pool"
        assert names[1:] == ([] if e.queue_wait_us else ["snakepit.request.executed"])
        back = [accept(msgspec.json.decode(msgspec.json.encode(i))) for i in items]
        assert len(back) == len(names) >= 1
        assert all(reason is None for _, reason in back), back
        requests = [b for b, _ in back if isinstance(b, Request)]
        assert len(requests) == 1
        r = requests[0]
        assert (r.pool, r.worker_id, r.command, r.duration_us) == \
            (e.pool, e.worker_id, e.command, e.duration_us)
        assert r.status == e.status
        counted += 1
    assert counted > 100
    spawned = [i for e in evs if isinstance(e, Worker) and e.kind == "spawned"
               for i in to_native(e)]
    for item in spawned:
        event, reason = accept(item)
        assert reason is None and event.pool in {e.pool for e in reqs}


class _Collect:
    def __init__(self):
        self.events = []

    def send(self, e):
        self.events.append(e)

    def flush(self):
        pass


def test_drive_sends_every_event_once():
    sink = _Collect()
    n = drive(sink, 100, 30, seed=3, realtime=False, start=START, progress=False)
    assert n == len(sink.events) == len(events(30, rate=100, seed=3))
