"""Locust headless, as a library: ``python -m snakepit_perf.locust_run FILE USERS RATE SECONDS
HOST``. The trial command of ``snakepit-perf bench run --locustfile``.

Its own process because Locust patches the standard library for gevent when imported; the
snakepit-perf plugin is loaded whether or not the locustfile imports it, so the client's view of
every request reaches the run. Prints Locust's totals; exits 0 unless no request was made.
"""

from __future__ import annotations

import sys

import gevent
from locust import events
from locust.env import Environment
from locust.util.load_locustfile import load_locustfile

import snakepit_perf.locust_plugin  # noqa: F401  (registers the listeners)


def main(argv: list[str]) -> int:
    path, users, rate, seconds, host = argv
    user_classes, _shapes = load_locustfile(path)
    if not user_classes:
        print(f"snakepit-perf: {path} defines no Locust User class", file=sys.stderr)
        return 2
    env = Environment(user_classes=list(user_classes.values()), host=host, events=events)
    runner = env.create_local_runner()
    runner.start(int(users), float(rate))
    gevent.spawn_later(float(seconds), runner.quit)
    runner.greenlet.join()
    total = env.stats.total
    print(f"locust: {total.num_requests} requests, {total.num_failures} failures, "
          f"p99 {total.get_response_time_percentile(0.99)} ms, "
          f"{total.total_rps:.1f} req/s")
    return 0 if total.num_requests else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
