"""The HNSW vector indexes: one partial index per project and embedding dimension.

Bulk loads drop a project's index and build it once at the end (about 5x faster than inserting
into the graph); searches meanwhile scan the project exactly. This module names those indexes,
builds the expressions search must use to hit them, and creates, drops and restores them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from mcp_server.core.settings import Settings
from mcp_server.db.database import is_embedded
from mcp_server.db.errors import first_line, is_out_of_shared_memory

log = logging.getLogger(__name__)

# The graph indexes `embedding::halfvec(d)` (2 bytes a dimension) while the column keeps float32
# `vector` for exact scans. Measured on the standard library's 137,643 chunks of 256 dimensions
# (bench/halfvec_hnsw.py, against a `vector` index built in the same run): index 109 against
# 179 MiB, build 0.93x, recall@10 against an exact scan 0.985 against 0.973, p50 1.43 against
# 1.88 ms. pgvector's HNSW also takes up to 4,000 dimensions of `halfvec` (2,000 of `vector`).
PROJECT_LITERAL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
BUILD_PROGRESS_SECONDS = 0.5
MIB = 2**20
# What the in-memory HNSW graph holds per row besides the vector's 4 bytes per dimension (the
# element, its level-0 neighbour list of 2 x m = 32 candidates, allocation headers). Measured with
# pgvector's notice "hnsw graph no longer fits into maintenance_work_mem after N tuples": 512 MB
# held 312,183 rows of 256 dimensions, 1,720 bytes each (bench/million_chunks.py --build-memory
# 512,auto at 500,000 chunks). Each build asks for a quarter more than this estimate. The estimate
# still counts 4 bytes a dimension, as measured then with `vector`; a halfvec graph needs less.
GRAPH_BYTES_PER_ROW = 700
MIN_BUILD_MEMORY = 64 * MIB
# A database server we do not run: what its container's /dev/shm is known to hold (the chart
# gives the bundled one 1 GiB), since a parallel build puts the whole graph there.
EXTERNAL_BUILD_MEMORY = 512 * MIB
EXTERNAL_BUILD_WORKERS = 2


@dataclass(frozen=True)
class BuildBudget:
    """How much memory and how many parallel workers the HNSW build may use on the database server.

    A build is linear while its graph fits in `maintenance_work_mem` and several times slower past
    it (at 1,000,000 chunks 906 s with 512 MB against the in-memory rate's ~150 s, docs/scale.md),
    and pgvector's parallel build allocates the whole of it in shared memory up front: so each
    build asks for what its graph needs, up to this budget, not a fixed size.
    """

    memory_bytes: int
    workers: int

    @classmethod
    def for_server(cls, *, embedded: bool, memory_mb: int = 0, workers: int = 0) -> BuildBudget:
        """0 = sized to the machine: the embedded server runs here, so a quarter of this machine's
        memory (no more than /dev/shm has free) and its cores; a server elsewhere gets the sizes
        its container is known to allow."""
        if embedded:
            auto_memory, auto_workers = _machine_memory() // 4, max(2, min((os.cpu_count() or 1) - 1, 8))
            shm = _free_shared_memory()
            if shm is not None:
                auto_memory = min(auto_memory, shm * 8 // 10)
        else:
            auto_memory, auto_workers = EXTERNAL_BUILD_MEMORY, EXTERNAL_BUILD_WORKERS
        return cls(
            memory_bytes=max(MIN_BUILD_MEMORY, memory_mb * MIB if memory_mb else auto_memory),
            workers=workers if workers else auto_workers,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> BuildBudget:
        """The budget every build uses, whoever starts it: an index run, or the supervisor and the
        server restoring an index a killed run dropped (CODEBASE_VECTOR_BUILD_MEMORY_MB/_WORKERS)."""
        return cls.for_server(
            embedded=is_embedded(settings),
            memory_mb=settings.indexing.vector_build_memory_mb,
            workers=settings.indexing.vector_build_workers,
        )

    def settings_for(self, rows: int, dimension: int) -> dict[str, str]:
        """The session settings of one build: the graph's estimated size, within the budget."""
        graph = rows * (4 * dimension + GRAPH_BYTES_PER_ROW) * 5 // 4
        memory = min(self.memory_bytes, max(MIN_BUILD_MEMORY, graph))
        return {
            "maintenance_work_mem": f"{memory // MIB}MB",
            "max_parallel_maintenance_workers": str(self.workers),
        }


DEFAULT_BUDGET = BuildBudget(memory_bytes=EXTERNAL_BUILD_MEMORY, workers=EXTERNAL_BUILD_WORKERS)


def _log_graph_overflow(diagnostic: Any) -> None:
    """pgvector says when the graph outgrew maintenance_work_mem: from there the build goes on
    several times slower, so the budget was too small for this project (or the estimate low)."""
    message = str(getattr(diagnostic, "message_primary", "") or "")
    if "no longer fits into maintenance_work_mem" in message:
        log.warning(
            "%s: the vector index build slows down from here (CODEBASE_VECTOR_BUILD_MEMORY_MB)", message
        )


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 4 * EXTERNAL_BUILD_MEMORY


def _free_shared_memory() -> int | None:
    try:
        stat = os.statvfs("/dev/shm")
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def vector_index_name(project_id: str, dimension: int) -> str:
    """One HNSW index per project and dimension (a partial index), so loading one project never
    pays for another's graph and a bulk load can build its graph once instead of row by row."""
    digest = hashlib.blake2b(project_id.encode(), digest_size=6).hexdigest()
    # "hnswh": over halfvec. The `vector` indexes before it were named ix_chunks_hnsw_<digest>_<d>
    # (dropped by migration 0010; restore_missing builds these in their place).
    return f"ix_chunks_hnswh_{digest}_{int(dimension)}"


def vector_index_predicate(project_id: str, dimension: int) -> str:
    """The partial index's WHERE clause. The project id is inlined as a literal so the planner can
    match the index at plan time; it is validated as a DNS label ([a-z0-9-]) before it gets here."""
    if not PROJECT_LITERAL_RE.fullmatch(project_id):
        raise ValueError(f"unsafe project id {project_id!r}")
    return f"project_id = '{project_id}' AND embedding_dim = {int(dimension)}"


def vector_query_cast(dimension: int) -> str:
    return f"halfvec({int(dimension)})"


def vector_expression(dimension: int) -> str:
    """What the graph indexes and what an ordering must be written as for the planner to use it."""
    return f"(embedding::halfvec({int(dimension)}))"


def vector_opclass(dimension: int) -> str:
    return "halfvec_cosine_ops"


def _lock_project_ddl(conn: Connection, project_id: str) -> None:
    """Serialise index DDL per project (transaction-scoped: released at commit)."""
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "hnsw:" + project_id})


class VectorIndexes:
    def __init__(self, engine: Engine, budget: BuildBudget = DEFAULT_BUDGET) -> None:
        self._engine = engine
        self._budget = budget

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
            rows = int(
                conn.execute(
                    text(f"SELECT count(*) FROM chunks WHERE {vector_index_predicate(project_id, dimension)}")
                ).scalar_one()
            )
            settings = self._budget.settings_for(rows, dimension)
            try:
                self._build(conn, name, project_id, dimension, settings, progress)
            except DBAPIError as exc:
                if (
                    not is_out_of_shared_memory(first_line(exc))
                    or settings["max_parallel_maintenance_workers"] == "0"
                ):
                    raise
                # A container's small /dev/shm (64 MB by default) cannot hold a parallel build's
                # graph; a serial build keeps it in the backend's own memory instead.
                log.warning(
                    "the parallel vector index build ran out of shared memory (%s); building it serially",
                    first_line(exc),
                )
                conn.rollback()
                _lock_project_ddl(conn, project_id)
                serial = {**settings, "max_parallel_maintenance_workers": "0"}
                self._build(conn, name, project_id, dimension, serial, progress)

    def _build(
        self,
        conn: Connection,
        name: str,
        project_id: str,
        dimension: int,
        settings: dict[str, str],
        progress: Callable[[float], None] | None,
    ) -> None:
        for setting, value in settings.items():
            conn.execute(text("SELECT set_config(:name, :value, true)"), {"name": setting, "value": value})
        log.info(
            "building vector index %s (maintenance_work_mem %s, %s parallel workers)",
            name,
            settings["maintenance_work_mem"],
            settings["max_parallel_maintenance_workers"],
        )
        done = threading.Event()
        watcher = None
        if progress is not None:
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            watcher = threading.Thread(target=self._watch_build, args=(backend, progress, done), daemon=True)
            watcher.start()
        driver = conn.connection.dbapi_connection
        notices = getattr(driver, "add_notice_handler", None)
        if notices is not None:
            notices(_log_graph_overflow)
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
            if notices is not None:
                driver.remove_notice_handler(_log_graph_overflow)  # type: ignore[union-attr]
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
