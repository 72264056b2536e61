"""Rollup storage: one interface (``base.RollupStore``), SQLite embedded and Cassandra distributed."""
