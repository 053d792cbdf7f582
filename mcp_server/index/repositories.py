"""The repositories of a project as callers name them: by root path or by directory name.

Search and the navigation tools scope every query to the repositories chosen here, and each
refusal says what the caller can use instead.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mcp_server.core.errors import InvalidInput

MAX_REPOSITORY_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    root_path: str
    active_generation: int
    index_format: int

    @property
    def name(self) -> str:
        return posixpath.basename(self.root_path.rstrip("/")) or self.root_path


def project_repositories(conn: Connection, project_id: str) -> list[Repository]:
    """The project's repositories, indexed or not, in a stable order."""
    rows = conn.execute(
        text(
            "SELECT id, root_path, active_generation, index_format FROM repositories "
            "WHERE project_id = :p ORDER BY root_path"
        ),
        {"p": project_id},
    )
    return [Repository(r.id, r.root_path, r.active_generation, r.index_format) for r in rows]


def choose(repositories: list[Repository], repository: str | None) -> list[Repository]:
    """The repositories `repository` names (all when None): a root path, or a directory name
    that only one of them has. Unknown or ambiguous names are refused with the known ones."""
    if repository is None:
        return repositories
    if not isinstance(repository, str) or not repository.strip() or len(repository) > MAX_REPOSITORY_CHARS:
        raise InvalidInput("repository must be a repository's root path or name, as list_repositories shows")
    wanted = repository.rstrip("/") or "/"
    exact = [r for r in repositories if r.root_path.rstrip("/") == wanted]
    if exact:
        return exact
    named = [r for r in repositories if r.name == wanted]
    if len(named) == 1:
        return named
    known = ", ".join(f"{r.name} ({r.root_path})" for r in repositories[:20]) or "none"
    if len(named) > 1:
        raise InvalidInput(f"repository {repository!r} is ambiguous: give its root path; known: {known}")
    raise InvalidInput(f"unknown repository {repository[:200]!r} in this project; known: {known}")


def describe(repository: Repository, counts: dict[int, Any] | None = None) -> dict[str, Any]:
    row = (counts or {}).get(repository.id)
    return {
        "name": repository.name,
        "root_path": repository.root_path,
        "indexed": repository.active_generation > 0,
        "generation": repository.active_generation,
        "files": int(row.files) if row is not None else 0,
        "index_format": repository.index_format,
    }


def file_counts(conn: Connection, repositories: list[Repository]) -> dict[int, Any]:
    if not repositories:
        return {}
    rows = conn.execute(
        text(
            "SELECT f.repository_id, count(*) AS files FROM files f JOIN repositories r "
            "ON r.id = f.repository_id WHERE f.repository_id = ANY(:ids) "
            "AND f.gen_from <= r.active_generation AND f.gen_to > r.active_generation "
            "GROUP BY f.repository_id"
        ),
        {"ids": [r.id for r in repositories]},
    )
    return {r.repository_id: r for r in rows}
