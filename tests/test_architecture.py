"""The layers contract (docs/architecture.md): nothing lower imports anything higher.

    entry points   mcp_server.frontends (mcp_tools, cli), mcp_server.runners.supervisor,
                   codebase_operator
    services       mcp_server.frontends.operations, mcp_server.index.search, mcp_server.indexer,
                   mcp_server.runners
    store          mcp_server.core.jobs, mcp_server.core.lifecycle, mcp_server.index.store,
                   mcp_server.db, mcp_server.embeddings, mcp_server.runners.kube_api
    common         mcp_server.core.settings, mcp_server.core.errors, mcp_server.core.validation

Imports inside functions count too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "entry",
        ("mcp_server.frontends", "mcp_server.runners.supervisor", "codebase_operator"),
    ),
    (
        "service",
        (
            "mcp_server.frontends.operations",
            "mcp_server.index.search",
            "mcp_server.index.navigation",
            "mcp_server.indexer",
            "mcp_server.runners",
        ),
    ),
    (
        "store",
        (
            "mcp_server.core.jobs",
            "mcp_server.core.lifecycle",
            "mcp_server.index",
            "mcp_server.index.store",
            "mcp_server.db",
            "mcp_server.embeddings",
            "mcp_server.runners.kube_api",
            "mcp_server.migrations",
        ),
    ),
    (
        "common",
        (
            "mcp_server.core",
            "mcp_server.core.settings",
            "mcp_server.core.errors",
            "mcp_server.core.validation",
            "mcp_server.core.shards",
        ),
    ),
]


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (prefix length, layer index)
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[0]):
                best = (len(prefix), index)
    return None if best is None else best[1]


def module_files() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "mcp_server").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        found[".".join(rel.parts).removesuffix(".__init__")] = path
    for path in (ROOT / "operator" / "codebase_operator").rglob("*.py"):
        rel = path.relative_to(ROOT / "operator").with_suffix("")
        found[".".join(rel.parts).removesuffix(".__init__")] = path
    for path in (ROOT / "migrations").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        found["mcp_server." + ".".join(rel.parts).removesuffix(".__init__")] = path
    return found


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.startswith(("mcp_server", "codebase_operator"))}


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = [
        m for m in module_files() if layer_of(m) is None and m != "mcp_server" and "__main__" not in m
    ]
    assert unplaced == []


def test_no_module_imports_a_higher_layer() -> None:
    violations = []
    for module, path in module_files().items():
        own = layer_of(module)
        if own is None:
            continue
        for imported in imports_of(path):
            target = layer_of(imported)
            if target is not None and target < own:
                violations.append(f"{module} ({LAYERS[own][0]}) imports {imported} ({LAYERS[target][0]})")
    assert violations == []


def test_every_package_in_the_tree_ships_in_the_wheel() -> None:
    """pyproject lists packages by hand; one left out works in the editable install the tests use
    and is missing from `pip install .` (it happened: mcp_server.index.search)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "mcp_server").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    found |= {
        "codebase_operator"
        + "".join(f".{p}" for p in init.parent.relative_to(ROOT / "operator/codebase_operator").parts)
        for init in (ROOT / "operator" / "codebase_operator").rglob("__init__.py")
    }
    assert found - listed == set()
