"""Fetch a server's jars with Maven into a cache outside the work tree.

The cache folder is keyed by a hash of the pom, so changing a version fetches anew and a second
run with the same pom costs nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

POM_DIR = Path(__file__).parent / "maven"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies"


class FetchError(RuntimeError):
    """Maven could not provide the jars; the message carries Maven's own output."""


def cache_root() -> Path:
    return Path.home() / ".cache" / "snakepit-perf"


def lib_dir(server: str, cache: Path | None = None) -> Path:
    """The folder that holds (or will hold) ``server``'s jars for the current pom."""
    pom = POM_DIR / server / "pom.xml"
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:12]
    return (cache or cache_root()) / f"{server}-lib-{digest}"


def ensure_jars(server: str, cache: Path | None = None) -> tuple[Path, bool]:
    """Return ``(lib_dir, downloaded)``; fetch with Maven only when the cache lacks them."""
    target = lib_dir(server, cache)
    if (target / ".complete").exists():
        return target, False
    if shutil.which("mvn") is None:
        raise FetchError("Maven ('mvn') is not on PATH; it is needed once to fetch the server jars")
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(POM_DIR / server / "pom.xml"), DEPENDENCY_PLUGIN,
        "-DincludeScope=runtime", f"-DoutputDirectory={partial}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise FetchError(f"fetching {server} jars failed:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}")
    (partial / ".complete").write_text("ok\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target, True


def find_jar(lib: Path, prefix: str) -> Path:
    """The first jar in ``lib`` whose name starts with ``prefix`` (e.g. the jamm agent)."""
    for jar in sorted(lib.glob(f"{prefix}*.jar")):
        return jar
    raise FetchError(f"no {prefix}*.jar in {lib}")
