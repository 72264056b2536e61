"""What the tests and the benchmarks share: data with known answers (``data``), running our
commands as real processes (``procs``) and the real Kafka broker (``kafka``). Neither tests
nor benchmarks import each other; both import this."""
