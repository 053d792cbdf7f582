"""The repositories of a project as callers name them, and the generation each is read at.

Search and the navigation tools scope every query to the repositories chosen here, and each
refusal says what the caller can use instead. `readable` owns the generation rule for reads
(design.md, "The index: generations"): a published repository is read at its published
generation, even while a later run writes the next one; a repository that was never published is
read at the generation its running first index writes, flagged partial with the job's percent.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from mcp_server.core.errors import InvalidInput
from mcp_server.core.jobs import Job, JobStatus
from mcp_server.db.schema import indexing_jobs
from mcp_server.index.store import INDEX_FORMAT

MAX_REPOSITORY_CHARS = 4096


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    root_path: str
    active_generation: int
    index_format: int
    # Set by `readable` on a repository whose first index is still running: reads see what that
    # run has written so far, and `index_percent` is how far it got (None until it knows).
    partial: bool = False
    index_percent: float | None = None

    @property
    def name(self) -> str:
        return posixpath.basename(self.root_path.rstrip("/")) or self.root_path

    @property
    def generation(self) -> int:
        """The generation reads see: the published one, or for a partial first index the one its
        run writes (a first run always writes active + 1 = 1)."""
        return self.active_generation + 1 if self.partial else self.active_generation


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


def readable(conn: Connection, project_id: str, repositories: list[Repository]) -> list[Repository]:
    """The repositories that reads can see, each at the generation they see it.

    Published repositories are returned as they are, without another query: the common path costs
    nothing. A never-published one is readable while a job of its (project, root path) is
    `running`: that job writes generation 1 batch by batch, and every batch it committed is a
    complete file (its chunks and symbols in one transaction). Rows a failed or cancelled first run
    left behind are not served: they are there for the next attempt to reuse, not to be read.
    """
    published = [r for r in repositories if r.active_generation > 0]
    waiting = {r.root_path: r for r in repositories if r.active_generation == 0}
    if not waiting:
        return published
    rows = conn.execute(
        select(indexing_jobs).where(
            indexing_jobs.c.project_id == project_id,
            indexing_jobs.c.repo_path.in_(list(waiting)),
            indexing_jobs.c.status == JobStatus.RUNNING.value,
        )
    ).mappings()
    running: dict[str, Job] = {}
    for row in rows:
        job = Job.from_row(row)
        running.setdefault(job.repo_path, job)
    partial = [
        # Written by this version's indexer, so in this version's format (recorded at publish).
        replace(repo, partial=True, index_percent=running[root].percent, index_format=INDEX_FORMAT)
        for root, repo in waiting.items()
        if root in running
    ]
    return sorted(published + partial, key=lambda r: r.root_path)


def partial_note(repositories: list[Repository]) -> str | None:
    """What a reader should know when some of what it read is a first index still being written."""
    partial = [r for r in repositories if r.partial]
    if not partial:
        return None
    described = ", ".join(
        r.root_path + (f" ({r.index_percent:g}% done)" if r.index_percent is not None else "")
        for r in partial[:5]
    )
    return (
        f"the first index of {described} is still running: answers come from the files indexed so "
        "far and are incomplete; ask again when it completes"
    )


def partial_percent(repositories: list[Repository]) -> float | None:
    """The least advanced partial repository's percent (None when none is partial or none knows)."""
    known = [r.index_percent for r in repositories if r.partial and r.index_percent is not None]
    return min(known) if known else None


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
