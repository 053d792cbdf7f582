"""The schema's head revision, read from the migration files without importing Alembic.

Why: every process checks at start that the database is at the head revision, and Alembic's
`ScriptDirectory` costs about 0.3 s of CPU to import and load on the test machine, more than
the query it guards. The files declare `revision = "..."` and `down_revision = ...` as plain
literals; when the chain has exactly one head we use it, and anything unusual (a merge
revision, a tuple, a file we cannot parse) returns None so the caller asks Alembic.
"""

from __future__ import annotations

import ast
from functools import cache
from importlib import resources


@cache
def head_from_files() -> str | None:
    revisions: set[str] = set()
    parents: set[str] = set()
    try:
        folder = resources.files("mcp_server.migrations") / "versions"
        entries = [entry for entry in folder.iterdir() if entry.name.endswith(".py")]
    except (ModuleNotFoundError, OSError):
        return None
    for entry in entries:
        if entry.name == "__init__.py":
            continue
        values = _literals(entry.read_text(encoding="utf-8"))
        revision, parent = values.get("revision"), values.get("down_revision")
        if not isinstance(revision, str) or not (parent is None or isinstance(parent, str)):
            return None
        revisions.add(revision)
        if parent is not None:
            parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _literals(source: str) -> dict[str, object]:
    values: dict[str, object] = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return values
    for node in tree.body:
        target: ast.expr
        value: ast.expr
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        else:
            continue
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                values[target.id] = object()
    return values
