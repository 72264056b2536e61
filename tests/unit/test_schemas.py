"""The published JSON Schema files are generated from the code and agree with its validator."""

from __future__ import annotations

import json

import jsonschema
import orjson
import pytest

from schemas.decode import decode_json
from schemas.generate import SCHEMA_DIR, render, schemas


def test_schema_files_are_up_to_date():
    generated = schemas()
    on_disk = {p.name: p.read_text() for p in SCHEMA_DIR.glob("*.json")}
    assert set(on_disk) == set(generated), "run: python -m schemas.generate"
    for name, doc in generated.items():
        assert on_disk[name] == render(doc), f"{name} is stale: run python -m schemas.generate"


SAMPLES = [
    {"type": "request", "time": 1_800_000_000, "pool": "p", "command": "c", "duration_us": 5,
     "status": "ok", "tags": {"region": "eu"}},
    {"type": "request", "time": "2027-01-15T08:00:00Z", "pool": "p", "command": "c",
     "duration_us": 5, "status": "ok", "python_us": 3, "queue_wait_us": 1},
    {"type": "request", "time": 1_800_000_000, "pool": "p", "command": "c", "duration_us": -5,
     "status": "ok"},
    {"type": "request", "time": 1_800_000_000, "pool": "p", "command": "c", "duration_us": 5,
     "status": "maybe"},
    {"type": "request", "time": 1_800_000_000, "pool": "p", "duration_us": 5, "status": "ok"},
    {"type": "worker", "time": 1_800_000_000, "kind": "crashed", "worker_id": "w", "exit_code": -9},
    {"type": "worker", "time": 1_800_000_000, "kind": "crashed", "worker_id": "w", "extra": 1},
    {"type": "pool", "time": 1_800_000_000, "kind": "saturated", "pool": "p", "queue_depth": 3},
    {"type": "session", "time": 1_800_000_000, "kind": "created", "duration_us": 40,
     "success": True},
    {"type": "resource", "time": 1_800_000_000, "scope": "host", "cpu_per_core": [1.5, 99]},
    {"type": "resource", "time": 1_800_000_000, "scope": "host", "cpu_per_core": [-1]},
    {"type": "python", "time": 1_800_000_000, "kind": "gc", "metrics": {"objects": 10}},
    {"type": "annotation", "time": 1_800_000_000, "kind": "deploy", "title": "v2.1"},
    {"type": "annotation", "time": 1_800_000_000, "kind": "deploy"},
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: json.dumps(s)[:70])
def test_json_schema_and_validator_agree(sample: dict):
    schema = schemas()[f"{sample['type']}.v1.json"]
    by_schema = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).is_valid(sample)
    by_code = not decode_json(orjson.dumps(sample)).rejects
    assert by_schema == by_code
