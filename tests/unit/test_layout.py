"""The dependency rule (README, "Layout"): who may import whom, read from the source's imports.

An import that breaks the rule fails here, named by file and line, before it can grow into a
cycle or drag a framework into the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {"schemas", "streams", "store", "runners", "query", "models", "sdk", "simulator", "api",
           "infra", "snakepit_perf"}
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "streams": {"schemas"},
    "store": {"schemas", "streams"},
    "runners": {"schemas", "streams", "store"},
    "query": {"schemas", "streams", "store"},
    "models": {"schemas", "streams", "store"},
    "sdk": {"schemas"},
    "simulator": {"schemas", "sdk"},
    "infra": set(),
    "api": {"schemas", "streams", "store", "runners", "query", "models"},
    "snakepit_perf": PRODUCT - {"snakepit_perf"},
    "harness": PRODUCT,
    "bench": PRODUCT | {"harness"},
    "tests": PRODUCT | {"harness", "bench"},
}
# The engine stays free of frameworks, drivers and stores: it runs the same under any runner.
ENGINE_FORBIDDEN = {"faust", "confluent_kafka", "cassandra", "fastapi", "starlette", "uvicorn",
                    "httpx", "sqlite3", "pyarrow", "river"}


def imports(package: str) -> list[tuple[str, int, str]]:
    """(file, line, top-level module) of every absolute import in ``package``."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            rel = str(path.relative_to(ROOT))
            found += [(rel, node.lineno, name.split(".")[0]) for name in names]
    return found


def ours(module: str) -> bool:
    return module in ALLOWED


def test_every_package_imports_only_what_the_rule_allows():
    broken = [f"{file}:{line} imports {mod}" for pkg, allowed in ALLOWED.items()
              for file, line, mod in imports(pkg)
              if ours(mod) and mod != pkg and mod not in allowed]
    assert not broken, "\n".join(broken)


def test_the_engine_imports_no_framework_driver_or_store():
    found = [f"{file}:{line} imports {mod}" for file, line, mod in imports("streams")
             if mod in ENGINE_FORBIDDEN]
    assert not found, "\n".join(found)


def test_packages_form_no_import_cycle():
    graph = {pkg: {mod for _, _, mod in imports(pkg) if ours(mod) and mod != pkg}
             for pkg in ALLOWED}
    done: set[str] = set()

    def visit(pkg: str, path: tuple[str, ...]) -> None:
        assert pkg not in path, "import cycle: " + " -> ".join((*path, pkg))
        if pkg in done:
            return
        for dep in graph[pkg]:
            visit(dep, (*path, pkg))
        done.add(pkg)

    for pkg in graph:
        visit(pkg, ())


def test_the_rule_sees_every_package_and_real_imports():
    """The check reads real code: every top-level package of ours is in the rule, and the
    engine's known imports are found (a scan that found nothing would pass everything)."""
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)
    engine = {mod for _, _, mod in imports("streams")}
    assert {"schemas", "fastdigest", "msgspec"} <= engine
    assert any(mod == "fastapi" for _, _, mod in imports("api"))
