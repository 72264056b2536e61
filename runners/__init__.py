"""What drives the engine: the embedded runner (HTTP ingest in-process, a write-ahead log, a
SQLite store) and the Faust worker (Kafka partitions, Cassandra), over ``streams`` and ``store``.
"""
