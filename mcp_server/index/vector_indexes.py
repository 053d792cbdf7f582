"""The HNSW vector indexes: one partial index per project and embedding dimension.

Bulk loads drop a project's index and build it once at the end (about 5x faster than inserting
into the graph); searches meanwhile scan the project exactly. This module names those indexes,
builds the expressions search must use to hit them, and creates, drops and restores them.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

# pgvector: HNSW supports up to 2,000 dimensions for `vector` and 4,000 for `halfvec`.
MAX_VECTOR_HNSW_DIM = 2000
PROJECT_LITERAL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
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

    def ensure(self, project_id: str, dimension: int) -> None:
        name = vector_index_name(project_id, dimension)
        with self._engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar():
                return
            _lock_project_ddl(conn, project_id)
            for statement in INDEX_BUILD_SETTINGS:
                conn.execute(text(statement))
            conn.execute(
                text(
                    f"CREATE INDEX IF NOT EXISTS {name} ON chunks USING hnsw "
                    f"({vector_expression(dimension)} {vector_opclass(dimension)}) "
                    f"WHERE {vector_index_predicate(project_id, dimension)}"
                )
            )
            conn.commit()

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
