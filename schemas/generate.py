"""Write the JSON Schema files in ``json/`` from the event classes: ``python -m schemas.generate``."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from schemas.events import EVENT_TYPES, SCHEMA_VERSION

SCHEMA_DIR = Path(__file__).parent / "json"


def schemas() -> dict[str, dict]:
    """One self-contained JSON Schema (draft 2020-12) per event type, keyed by file name."""
    out = {}
    for cls in EVENT_TYPES:
        tag = cls.__struct_config__.tag
        doc = msgspec.json.schema(cls)
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "$id": f"https://snakepit-perf.dev/schemas/{tag}.{SCHEMA_VERSION}.json", **doc}
        out[f"{tag}.{SCHEMA_VERSION}.json"] = doc
    return out


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for old in SCHEMA_DIR.glob("*.json"):
        old.unlink()
    for name, doc in schemas().items():
        (SCHEMA_DIR / name).write_text(render(doc))
        print(f"wrote {SCHEMA_DIR / name}")


if __name__ == "__main__":
    main()
