"""What the worker SDK costs a tool call: the same function called bare and through
``Monitor.timed`` / ``Monitor.call``, in one process, the sender thread shipping to a sink that
accepts everything (so the network is not what is measured). Aim: <= 5 us per call.

    .venv/bin/python -m bench.sdk_overhead [--calls 200000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bench.common import report
from sdk.worker import Monitor


def per_call_ns(fn: Callable[[int], int], calls: int, rounds: int = 5) -> float:
    """The best of ``rounds`` runs of ``calls`` calls, per call."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for i in range(calls):
            fn(i)
        best = min(best, (time.perf_counter_ns() - start) / calls)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=200_000)
    args = ap.parse_args()
    shipped: list[int] = []
    monitor = Monitor(transport=lambda batch: shipped.append(len(batch)), sample_s=None,
                      max_queued=10 * args.calls, flush_s=0.05)

    def bare(x: int) -> int:
        return x + 1

    timed = monitor.timed(bare)

    def in_block(x: int) -> int:
        with monitor.call("bare"):
            return x + 1

    base = per_call_ns(bare, args.calls)
    rows = [("bare function", base, "ns/call"),
            ("@monitor.timed", per_call_ns(timed, args.calls), "ns/call"),
            ("with monitor.call(...)", per_call_ns(in_block, args.calls), "ns/call")]
    assert monitor.flush(120), monitor.last_error
    monitor.close()
    report("worker SDK: cost per call (best of 5)", rows, baseline=base)
    for name, ns, _ in rows[1:]:
        print(f"  {name}: +{(ns - base) / 1000:.2f} us per call over the bare function")
    print(f"  events shipped: {sum(shipped):,}, dropped: {monitor.dropped}")


if __name__ == "__main__":
    main()
