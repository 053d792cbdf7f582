"""The HNSW vector indexes: one partial index per project and embedding dimension.

Bulk loads drop a project's index and build it once at the end (about 5x faster than inserting
into the graph); searches meanwhile scan the project exactly. This module names those indexes,
builds the expressions search must use to hit them, and creates, drops and restores them.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# pgvector: HNSW supports up to 2,000 dimensions for `vector` and 4,000 for `halfvec`.
MAX_VECTOR_HNSW_DIM = 2000
PROJECT_LITERAL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
BUILD_PROGRESS_SECONDS = 0.5
# Bulk loads build the HNSW graph once at the end: about 5x faster than inserting into it.
INDEX_BUILD_SETTINGS = ("SET maintenance_work_mem = '512MB'", "SET max_parallel_maintenance_workers = 2")


def vector_index_name(project_id: str, dimension: int) -> str:
    """One HNSW index per project and dimension (a partial index), so loading one project never
    pays for another's graph and a bulk load can build its graph once instead of row by row."""
    digest = hashlib.blake2b(project_id.encode(), digest_size=6).hexdigest()
    return f"ix_chunks_hnsw_{digest}_{int(dimension)}"


def vector_index_predicate(project_id: str, dimension: int) -> str:
    """The partial index's WHERE clause. The project id is inlined as a literal so the planner can
    match the index at plan time; it is validated as a DNS label ([a-z0-9-]) before it gets here."""
    if not PROJECT_LITERAL_RE.fullmatch(project_id):
        raise ValueError(f"unsafe project id {project_id!r}")
    return f"project_id = '{project_id}' AND embedding_dim = {int(dimension)}"


def vector_query_cast(dimension: int) -> str:
    kind = "vector" if dimension <= MAX_VECTOR_HNSW_DIM else "halfvec"
    return f"{kind}({int(dimension)})"


def vector_expression(dimension: int) -> str:
    kind = "vector" if dimension <= MAX_VECTOR_HNSW_DIM else "halfvec"
    return f"(embedding::{kind}({dimension}))"


def vector_opclass(dimension: int) -> str:
    return "vector_cosine_ops" if dimension <= MAX_VECTOR_HNSW_DIM else "halfvec_cosine_ops"


def _lock_project_ddl(conn: Connection, project_id: str) -> None:
    """Serialise index DDL per project (transaction-scoped: released at commit)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "hnsw:" + project_id})


class VectorIndexes:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def drop(self, project_id: str, dimension: int) -> None:
        """Before a bulk load: searches meanwhile use an exact scan of the project (slower, correct)."""
        with self._engine.connect() as conn:
            _lock_project_ddl(conn, project_id)
            conn.execute(text(f"DROP INDEX IF EXISTS {vector_index_name(project_id, dimension)}"))
            conn.commit()

    def ensure(
        self, project_id: str, dimension: int, progress: Callable[[float], None] | None = None
    ) -> None:
        """Build the project's index if it has none. `progress` is called about every half second
        from another thread with the share of the build done (the table scan's blocks, which
        pgvector's HNSW build reports in pg_stat_progress_create_index while it loads tuples): the
        build is one statement that takes tens of seconds on a large project."""
        name = vector_index_name(project_id, dimension)
        with self._engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar():
                return
            _lock_project_ddl(conn, project_id)
            for statement in INDEX_BUILD_SETTINGS:
                conn.execute(text(statement))
            done = threading.Event()
            watcher = None
            if progress is not None:
                backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
                watcher = threading.Thread(
                    target=self._watch_build, args=(backend, progress, done), daemon=True
                )
                watcher.start()
            try:
                conn.execute(
                    text(
                        f"CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw "
                        f"({vector_expression(dimension)} {vector_opclass(dimension)}) "
                        f"WHERE {vector_index_predicate(project_id, dimension)}"
                    )
                )
                conn.commit()
            finally:
                done.set()
                if watcher is not None:
                    watcher.join(5)

    def _watch_build(self, backend: int, progress: Callable[[float], None], done: threading.Event) -> None:
        try:
            with self._engine.connect() as conn:
                while not done.wait(BUILD_PROGRESS_SECONDS):
                    row = conn.execute(
                        text(
                            "SELECT blocks_done, blocks_total FROM pg_stat_progress_create_index"
                            " WHERE pid = :pid"
                        ),
                        {"pid": backend},
                    ).first()
                    conn.commit()
                    if row is not None and row.blocks_total:
                        progress(min(1.0, row.blocks_done / row.blocks_total))
        except Exception:  # progress is a nicety: the build goes on without it
            log.warning("could not follow the vector index build", exc_info=True)

    def restore_missing(self) -> list[str]:
        """Rebuild the HNSW index of every project that lacks one and has no active job: a bulk run
        killed before its `finally` (SIGKILL, OOM) leaves its project on exact scans until then."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.project_id, p.embedding_dimension FROM projects p WHERE NOT EXISTS ("
                    " SELECT 1 FROM indexing_jobs j WHERE j.project_id = p.project_id"
                    " AND j.status IN ('pending', 'running'))"
                )
            ).all()
        restored = []
        for row in rows:
            if not self.exists(row.project_id, row.embedding_dimension):
                self.ensure(row.project_id, row.embedding_dimension)
                restored.append(row.project_id)
        return restored

    def exists(self, project_id: str, dimension: int) -> bool:
        with self._engine.connect() as conn:
            name = vector_index_name(project_id, dimension)
            return conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None
