"""Locate a Java 17 runtime: Cassandra 5.0 fails on Java 24+, which may also be installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


def java17() -> str:
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    candidates += sorted(Path("/usr/lib/jvm").glob("*17*/bin/java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    for java in candidates:
        if java.exists() and _major(java) == 17:
            return str(java)
    raise RuntimeError("Java 17 is needed to run Kafka and Cassandra; none was found")


def _major(java: Path) -> int | None:
    out = subprocess.run([str(java), "-version"], capture_output=True, text=True).stderr
    for token in out.split():
        token = token.strip('"')
        if token[:1].isdigit():
            return int(token.split(".")[0])
    return None
