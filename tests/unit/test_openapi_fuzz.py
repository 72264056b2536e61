"""schemathesis drives every route from the OpenAPI schema: no 5xx, every 4xx is problem JSON."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from api.app import create_app
from api.services import Services
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore

_store = SQLiteStore(Path(tempfile.mkdtemp()) / "fuzz.sqlite3")
_runner = EmbeddedRunner(_store)
app = create_app(Services(store=_store, sink=_runner, engine=_runner.engine))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.exclude(path="/v1/live").parametrize()
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_no_server_errors_and_problem_json_for_client_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
    if 400 <= response.status_code < 500:
        content_type = response.headers["content-type"]
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/problem+json"), \
            (case.method, case.path, response.status_code, response.text[:200])
        body = response.json()
        assert body["status"] == response.status_code and body["detail"]
