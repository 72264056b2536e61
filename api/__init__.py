"""The HTTP API (FastAPI): ingest, queries, exports and the dashboard's backend."""
