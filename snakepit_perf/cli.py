"""The ``snakepit-perf`` command line: one sub-command per part that exists."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from snakepit_perf import __version__, config


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        settings = config.load(args.config, overrides=_overrides(args))
    except config.ConfigError as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return 2
    return args.func(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="snakepit-perf",
        description="Performance monitoring for Snakepit deployments.",
    )
    parser.add_argument("--version", action="version", version=f"snakepit-perf {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--data-dir", type=Path,
                        help="where state, logs and local servers live (default ~/.snakepit-perf)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    run = sub.add_parser("run", parents=[common],
                         help="run the embedded service (engine + API in one process)")
    run.add_argument("--host", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to bind (default 8080)")
    run.add_argument("--simulate", type=float, nargs="?", const=50.0, metavar="RATE",
                     help="also feed it a simulated Snakepit deployment: the last 15 minutes at "
                          "once, then RATE requests/s live (default 50); for a demo or a try-out")
    run.add_argument("--incident", action="append", default=[], metavar="KIND:POOL:FROM:TO",
                     help="with --simulate: an incident from FROM to TO seconds relative to now "
                          "(negative: in the past, back to -1800), e.g. error_burst:default:-300:600")
    run.set_defaults(func=_cmd_run)

    worker = sub.add_parser("worker", parents=[common],
                            help="a Faust stream worker: consume events from Kafka, store rollups in "
                                 "Cassandra (run several for more partitions)")
    worker.set_defaults(func=_cmd_worker)

    api = sub.add_parser("api", parents=[common],
                         help="the query and ingest API over Cassandra and Kafka (distributed)")
    api.add_argument("--host", help="address to bind (default 127.0.0.1)")
    api.add_argument("--port", type=int, help="port to bind (default 8080)")
    api.set_defaults(func=_cmd_api)

    exp = sub.add_parser("export", parents=[common],
                         help="archive closed days of rollups to Parquet (date=YYYY-MM-DD/)")
    exp.add_argument("--archive", action="store_true", required=True,
                     help="write the Parquet archive (the only export kind on the CLI; "
                          "ad-hoc exports are GET /v1/export)")
    exp.add_argument("--day", action="append", default=[], metavar="YYYY-MM-DD",
                     help="archive this UTC day (repeat); default: every closed day")
    exp.add_argument("--dir", type=Path, help="archive folder (default <data_dir>/archive)")
    exp.add_argument("--keep-days", type=int, default=400,
                     help="delete archived days older than this (default 400)")
    exp.add_argument("--store", choices=["sqlite", "cassandra"], default="sqlite",
                     help="read the embedded SQLite store or the distributed Cassandra one")
    exp.set_defaults(func=_cmd_export)

    st = sub.add_parser("store", parents=[common], help="the distributed store (Cassandra)")
    st.add_argument("action", choices=["migrate"],
                    help="create or upgrade the keyspace and tables")
    st.set_defaults(func=_cmd_store)

    keys = sub.add_parser("keys", parents=[common], help="create an API key (prints its hash entry)")
    keys.add_argument("action", choices=["create"])
    keys.add_argument("--name", required=True, help="who or what uses the key")
    keys.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    keys.set_defaults(func=_cmd_keys)

    sim = sub.add_parser("simulate", parents=[common],
                         help="a realistic Snakepit load generator, to HTTP or Kafka")
    target = sim.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="API base URL, e.g. http://127.0.0.1:8080")
    target.add_argument("--kafka", nargs="?", const="", metavar="BOOTSTRAP",
                        help="produce to the events topic (default bootstrap from config)")
    sim.add_argument("--rate", type=float, default=200.0, help="mean requests/s (default 200)")
    sim.add_argument("--duration", type=float, default=60.0, help="simulated seconds (default 60)")
    sim.add_argument("--seed", type=int, default=1, help="same seed, same events")
    sim.add_argument("--fast", action="store_true",
                     help="send as fast as possible instead of in real time")
    sim.add_argument("--start", type=float,
                     help="epoch seconds of the first event (default now)")
    sim.add_argument("--incident", action="append", default=[], metavar="KIND:POOL:FROM:TO",
                     help="inject an incident, seconds from start; kinds: latency_regression, "
                          "error_burst, crash_loop, memory_leak, queue_saturation")
    sim.add_argument("--native", action="store_true",
                     help="emit requests as native Snakepit telemetry envelopes")
    sim.add_argument("--serve", type=int, metavar="PORT",
                     help="instead: serve /call/<command> on PORT as an app in front of the "
                          "simulated pools (queueing for real), for Locust or k6 to load; "
                          "telemetry of each call goes to --url")
    sim.add_argument("--slow", action="append", default=[], metavar="COMMAND:FACTOR",
                     help="with --serve: that command's service time times FACTOR")
    sim.add_argument("--pool-size", type=int, help="with --serve: workers per pool")
    sim.set_defaults(func=_cmd_simulate)

    bench = sub.add_parser("bench", parents=[common],
                           help="benchmark runs: run a load command as a run of a scenario")
    bench_sub = bench.add_subparsers(title="bench commands", metavar="ACTION")
    brun = bench_sub.add_parser("run", parents=[common],
                                help="mark a run around a load command, wait for its windows, "
                                     "print run vs baseline")
    brun.add_argument("--scenario", required=True, help="the scenario's name (runs of one "
                                                        "scenario are compared)")
    brun.add_argument("--url", default="", help="API base URL (default from config)")
    brun.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                      help="git sha, branch, pool config, variant ... (repeat)")
    brun.add_argument("--warmup", type=float, default=0.0, help="seconds dropped per trial")
    brun.add_argument("--trials", type=int, default=1, help="times the command is run")
    brun.add_argument("--where", action="append", default=[], metavar="DIM:VALUE",
                      help="count only these requests, as /v1/query's where")
    brun.add_argument("--baseline", default="auto",
                      help="'auto' (pinned run, else the last runs of branch main) or run id(s)")
    brun.add_argument("--metric", action="append", default=[],
                      choices=["p50", "p95", "p99", "p99.9", "throughput", "error_rate"],
                      help="metrics judged (repeat; default all)")
    brun.add_argument("--slice", action="append", default=[], metavar="DIM",
                      help="dimensions judged one by one (repeat, at most 2; default pool, "
                           "command)")
    brun.add_argument("--locustfile", type=Path,
                      help="instead of a command: run this Locust test headless, as a library, "
                           "its client-side requests recorded in the run")
    brun.add_argument("--users", type=int, default=10, help="with --locustfile (default 10)")
    brun.add_argument("--spawn-rate", type=float, default=10.0,
                      help="with --locustfile: users started per second (default 10)")
    brun.add_argument("--duration", type=float, default=60.0,
                      help="with --locustfile: seconds per trial (default 60)")
    brun.add_argument("--host", default="", help="with --locustfile: the app under load")
    brun.add_argument("--fail-on-regression", action="store_true",
                      help="exit 1 when the comparison finds a regression")
    brun.add_argument("command", nargs=argparse.REMAINDER,
                      help="-- then the load command and its arguments")
    brun.set_defaults(func=_cmd_bench_run)

    gate = sub.add_parser("gate", parents=[common],
                          help="pass (0) or fail (1) a pipeline on SLA and regression rules; "
                               "2: could not judge")
    gate.add_argument("--url", default="", help="API base URL (default from config)")
    gate.add_argument("--rule", action="append", default=[], metavar="RULE",
                      help="p99<250ms, p(95)<200 (ms), error_rate<0.01, throughput>500/s, "
                           "p99{pool=gpu}<1s, regression(p99)<5%% (repeat)")
    gate.add_argument("--rules", type=Path, metavar="FILE", help='TOML: rules = ["p99<250ms"]')
    gate.add_argument("--from", dest="start", metavar="T", help="RFC 3339 or epoch seconds")
    gate.add_argument("--to", dest="end", metavar="T")
    gate.add_argument("--where", action="append", default=[], metavar="DIM:VALUE")
    gate.add_argument("--run", help="a benchmark run: its windows are the range, and "
                                    "regression rules compare it with its baseline")
    gate.add_argument("--baseline", default="auto", help="'auto' or run id(s)")
    gate.add_argument("--deploy", metavar="VERSION",
                      help="the verdict of that deploy (its after window vs its before "
                           "window): fails if it regressed; rules, if any, judge the same pair")
    gate.add_argument("--wait", action="store_true",
                      help="first wait until the range's last windows are stored (with "
                           "--deploy: until the deploy is judged)")
    gate.add_argument("--junit", type=Path, metavar="FILE", help="write a JUnit XML report")
    gate.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    gate.add_argument("--json", type=Path, metavar="FILE", help="write the verdicts as JSON")
    gate.set_defaults(func=_cmd_gate)

    ann = sub.add_parser("annotate", parents=[common],
                         help="record an annotation; a deploy is then judged before vs after")
    ann.add_argument("kind", choices=["deploy", "config_change", "business", "incident",
                                      "load_test", "other"])
    ann.add_argument("--version", help="what was deployed (the deploy's name in verdicts)")
    ann.add_argument("--title", help="default: '<kind> <version>'")
    ann.add_argument("--text", default="")
    ann.add_argument("--pool", help="only this pool changed (judged alone)")
    ann.add_argument("--time", help="RFC 3339 or epoch seconds (default now)")
    ann.add_argument("--url", default="", help="API base URL (default from config)")
    ann.set_defaults(func=_cmd_annotate)

    imp = sub.add_parser("import", parents=[common],
                         help="history recorded elsewhere: events files, or k6 results as "
                              "client-side requests")
    imp_sub = imp.add_subparsers(title="formats", metavar="FORMAT")
    k6 = imp_sub.add_parser("k6", parents=[common],
                            help="k6's JSON output (k6 run --out json=FILE, or FILE.gz)")
    k6.add_argument("file", type=Path)
    k6.add_argument("--run", help="the benchmark run the requests belong to")
    k6.add_argument("--scenario", help="scenario label (default the run's, else k6's tag)")
    k6.add_argument("--url", default="", help="API base URL (default from config)")
    k6.set_defaults(func=_cmd_import_k6)
    evs = imp_sub.add_parser("events", parents=[common],
                             help="events recorded elsewhere: NDJSON or JSON arrays (or .gz), "
                                  "POSTed in batches with a progress line (a backfill)")
    evs.add_argument("files", type=Path, nargs="+", metavar="FILE")
    evs.add_argument("--url", default="", help="API base URL (default from config)")
    evs.set_defaults(func=_cmd_import_events)

    col = sub.add_parser("collect", parents=[common],
                         help="send this host's and its Snakepit Python workers' CPU, memory, "
                              "I/O and file descriptors (psutil) as resource events")
    col.add_argument("--url", default="", help="API base URL (default from config)")
    col.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    col.add_argument("--count", type=int, help="stop after this many samples (default: never)")
    col.set_defaults(func=_cmd_collect)

    infra = sub.add_parser("infra", parents=[common],
                           help="local Apache Kafka and Apache Cassandra (no Docker)")
    infra.add_argument("action", choices=["up", "down", "status"])
    infra.add_argument("--kafka-port", type=int, help="default: the port of kafka.bootstrap (9092)")
    infra.add_argument("--cassandra-port", type=int, help="default: cassandra.port (9042)")
    infra.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for `up`")
    infra.set_defaults(func=_cmd_infra)
    return parser


def _cmd_bench_run(args: argparse.Namespace, settings: config.Settings) -> int:
    import os

    from snakepit_perf import bench_run

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    labels = dict(x.split("=", 1) for x in args.label if "=" in x)
    bad = [x for x in args.label if "=" not in x]
    if args.locustfile and not command and args.host:
        command = [sys.executable, "-m", "snakepit_perf.locust_run", str(args.locustfile),
                   str(args.users), str(args.spawn_rate), str(args.duration), args.host]
        labels = {"tool": "locust", "users": str(args.users),
                  "spawn_rate": f"{args.spawn_rate:g}", **labels}
    if not command or bad or args.trials < 1:
        print("snakepit-perf: bench run needs -- <command> (or --locustfile F --host URL), "
              "labels as KEY=VALUE and --trials >= 1", file=sys.stderr)
        return 2
    url = args.url or f"http://{settings.api.host}:{settings.api.port}"
    method = {"warmup_s": args.warmup, "trials": args.trials}
    if args.metric:
        method["metrics"] = args.metric
    if args.slice:
        method["slices"] = args.slice
    return bench_run.run(url, args.scenario, command, labels, method, args.where,
                         args.baseline, args.fail_on_regression,
                         os.environ.get("SNAKEPIT_PERF_KEY"))


def _cmd_gate(args: argparse.Namespace, settings: config.Settings) -> int:
    import os

    from snakepit_perf import gate

    url = args.url or f"http://{settings.api.host}:{settings.api.port}"
    return gate.run(url, os.environ.get("SNAKEPIT_PERF_KEY"), args.rule, args.rules,
                    args.start, args.end, args.where, args.run, args.baseline,
                    {"junit": args.junit, "markdown": args.markdown, "json": args.json},
                    args.wait, deploy=args.deploy)


def _cmd_collect(args: argparse.Namespace, settings: config.Settings) -> int:
    import os

    from snakepit_perf import collect

    url = (args.url or os.environ.get("SNAKEPIT_PERF_URL")
           or f"http://{settings.api.host}:{settings.api.port}")
    return collect.run(url, os.environ.get("SNAKEPIT_PERF_KEY"), args.interval, args.count)


def _cmd_annotate(args: argparse.Namespace, settings: config.Settings) -> int:
    import os
    import time

    import httpx

    from query.engine import QueryError, parse_time

    if args.kind == "deploy" and not args.version:
        print("snakepit-perf: annotate deploy needs --version", file=sys.stderr)
        return 2
    try:
        at = float(parse_time(args.time, "time")) if args.time else time.time()
    except QueryError as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return 2
    body: dict[str, object] = {
        "type": "annotation", "kind": args.kind, "time": at,
        "title": args.title or " ".join(x for x in (args.kind, args.version) if x)}
    for key, value in (("text", args.text), ("pool", args.pool)):
        if value:
            body[key] = value
    if args.version:
        body["tags"] = {"version": args.version}
    key = os.environ.get("SNAKEPIT_PERF_KEY")
    url = (args.url or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")
    try:
        r = httpx.post(f"{url}/v1/annotations", json=body, timeout=30,
                       headers={"Authorization": f"Bearer {key}"} if key else {})
    except httpx.HTTPError as exc:
        print(f"snakepit-perf: {url}: {exc}", file=sys.stderr)
        return 2
    if r.status_code != 201:
        print(f"snakepit-perf: annotation refused ({r.status_code}): {r.text[:500]}",
              file=sys.stderr)
        return 1
    print(f"annotated {body['title']} at {at:.3f}")
    return 0


def _cmd_import_k6(args: argparse.Namespace, settings: config.Settings) -> int:
    import os

    from snakepit_perf import k6_import

    url = args.url or f"http://{settings.api.host}:{settings.api.port}"
    return k6_import.run(url, args.file, args.run, args.scenario,
                         os.environ.get("SNAKEPIT_PERF_KEY"))


def _cmd_import_events(args: argparse.Namespace, settings: config.Settings) -> int:
    import os

    from snakepit_perf import event_import

    url = args.url or f"http://{settings.api.host}:{settings.api.port}"
    return event_import.run(url, args.files, os.environ.get("SNAKEPIT_PERF_KEY"))


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    return {
        "data_dir": getattr(args, "data_dir", None),
        "api.host": getattr(args, "host", None),
        "api.port": getattr(args, "port", None),
    }


def _cmd_run(args: argparse.Namespace, settings: config.Settings) -> int:
    import time
    from functools import partial

    from simulator.run import parse_incident
    from snakepit_perf.embedded import build_embedded

    try:
        incidents = [parse_incident(text, time.time()) for text in args.incident]
    except ValueError as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return 2
    if incidents and not args.simulate:
        print("snakepit-perf: --incident needs --simulate", file=sys.stderr)
        return 2
    return _serve(settings, partial(build_embedded, simulate=args.simulate, incidents=incidents))


def _cmd_api(args: argparse.Namespace, settings: config.Settings) -> int:
    from snakepit_perf.distributed import build_api

    return _serve(settings, build_api)


def _serve(settings: config.Settings, build) -> int:
    """Serve the app ``build(settings, keys)`` makes, if the keys make the bind safe."""
    from api.server import serve

    keys = _api_keys(settings)
    if keys is None:
        return 2
    serve(build(settings, keys), settings.api.host, settings.api.port,
          settings.api.head_timeout_s)
    return 0


def _api_keys(settings: config.Settings):
    """The configured API keys, or None (after saying why) when the bind would be unsafe."""
    from api.auth import parse_keys

    try:
        keys = parse_keys(settings.api.keys)
    except ValueError as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return None
    if not keys and not _is_loopback(settings.api.host):
        print(f"snakepit-perf: refusing to bind {settings.api.host} without API keys: anyone who "
              "can reach it could read and write your data. Create one with `snakepit-perf keys "
              "create` and set api.keys, or bind 127.0.0.1", file=sys.stderr)
        return None
    return keys


def _cmd_worker(args: argparse.Namespace, settings: config.Settings) -> int:
    import logging
    import signal

    from snakepit_perf.distributed import build_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    worker = build_worker(settings)
    print(f"Faust worker consuming {settings.kafka.events_topic} at {settings.kafka.bootstrap} "
          f"(group {settings.kafka.consumer_group}), storing to Cassandra "
          f"{','.join(settings.cassandra.hosts)}:{settings.cassandra.port}", flush=True)
    worker.run(should_stop=lambda: bool(stopping))
    return 0


def _open_store(settings: config.Settings, kind: str):
    if kind == "cassandra":
        from snakepit_perf.distributed import cassandra_store

        return cassandra_store(settings)
    from store.sqlite import SQLiteStore

    return SQLiteStore(settings.data_dir / "embedded.sqlite3")


def _cmd_export(args: argparse.Namespace, settings: config.Settings) -> int:
    from datetime import UTC, date, datetime

    from store.archive import apply_archive_retention, archive_day, closed_days

    directory = args.dir or settings.data_dir / "archive"
    store = _open_store(settings, args.store)
    try:
        now = datetime.now(UTC)
        try:
            days = [date.fromisoformat(d) for d in args.day] or closed_days(store, now)
        except ValueError as exc:
            print(f"snakepit-perf: --day: {exc}", file=sys.stderr)
            return 2
        for i, day in enumerate(days, 1):
            path = archive_day(store, day, directory)
            print(f"[{i}/{len(days)}] {day}: {path}", flush=True)
        for path in apply_archive_retention(directory, args.keep_days, now.date()):
            print(f"removed {path} (older than {args.keep_days} days)")
    finally:
        store.close()
    return 0


def _cmd_store(args: argparse.Namespace, settings: config.Settings) -> int:
    from snakepit_perf.distributed import cassandra_store

    store = cassandra_store(settings)  # migrates on connect
    print(f"keyspace {settings.cassandra.keyspace} at schema version "
          f"{store.migrate(settings.cassandra.replication_factor)}")
    store.close()
    return 0


def _cmd_keys(args: argparse.Namespace, settings: config.Settings) -> int:
    from api.auth import hash_key, new_key

    key = new_key()
    entry = f"{args.name}:{args.role}:{hash_key(key)}"
    print(f"API key (shown once, keep it secret): {key}")
    print(f"add to the server's config:  [api] keys = [\"{entry}\"]")
    print(f"or its environment:          SNAKEPIT_PERF_API_KEYS={entry}")
    return 0


def _cmd_simulate(args: argparse.Namespace, settings: config.Settings) -> int:
    from simulator.run import drive

    if args.serve is not None:
        from simulator.serve import serve

        if not args.url:
            print("snakepit-perf: --serve sends its telemetry to --url", file=sys.stderr)
            return 2
        try:
            slow = {c: float(f) for c, f in (x.rsplit(":", 1) for x in args.slow)}
            serve(args.serve, args.url, slow, args.pool_size)
        except ValueError as exc:
            print(f"snakepit-perf: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.url:
        from sdk.http import HttpSender

        sink = HttpSender(args.url)
    else:
        from sdk.producer import EventProducer

        sink = EventProducer(args.kafka or settings.kafka.bootstrap, settings.kafka.events_topic)
    try:
        sent = drive(sink, args.rate, args.duration, args.seed, realtime=not args.fast,
                     start=args.start, incidents=args.incident, native=args.native)
    except ValueError as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return 2
    rejected = getattr(sink, "rejected", 0) or getattr(sink, "failed", 0)
    print(f"sent {sent} events; {rejected} rejected or undelivered")
    return 1 if rejected else 0


def _cmd_infra(args: argparse.Namespace, settings: config.Settings) -> int:
    from infra import local

    kafka_host, kafka_port = settings.kafka.bootstrap.rsplit(":", 1)
    targets = local.servers(settings.data_dir, kafka_port=args.kafka_port or int(kafka_port),
                            cassandra_port=args.cassandra_port or settings.cassandra.port,
                            host=kafka_host)
    if args.action == "status":
        for st in map(local.status, targets):
            pid = f" pid {st.pid}" if st.pid else ""
            print(f"{st.name:<10} {st.state:<8} {st.address}{pid}  log: {st.log_file}")
        return 0
    if args.action == "down":
        for name, was_running in local.down(targets):
            print(f"{name:<10} {'stopped' if was_running else 'was not started by snakepit-perf'}")
        return 0
    print("starting Kafka and Cassandra (first run fetches their jars with Maven)...", flush=True)
    try:
        results = local.up(targets, timeout=args.timeout)
    except (local.StartError, RuntimeError) as exc:
        print(f"snakepit-perf: {exc}", file=sys.stderr)
        return 1
    for r in results:
        how = "started" if r.started else "already running"
        fetched = ", jars downloaded" if r.downloaded else ""
        print(f"{r.name:<10} {how}, ready after {r.seconds}s{fetched}")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
