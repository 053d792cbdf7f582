"""Writes to the searchable index: projects, repositories, generations, files and chunks.

A run for repository R works on generation G = R.active_generation + 1:
  1. `begin_run` resets leftovers of killed runs (rows marked `gen_to = G` go back to LIVE) but
     keeps rows written at `gen_from = G`: a retry reuses those whose content hash still matches.
  2. `write_files` stores new file rows and their chunks at `gen_from = G` and marks the rows they
     replace with `gen_to = G`, committing batch by batch (durable, invisible to search).
     `copy_shared` does the same with rows copied from another repository of the project that
     holds the same file (path and content hash), instead of parsed and embedded ones.
  3. `retire_missing` marks deleted files `gen_to = G`; unused pending rows are deleted.
  4. `publish` sets R.active_generation = G in one UPDATE: search now sees the new generation.
     Rows with `gen_to <= G` are garbage-collected afterwards.
Search reads rows with `gen_from <= active < gen_to`, so nothing of an unfinished run is visible
and the previous generation stays searchable until the switch; the one exception, a first index
(no previous generation) read as written while its job runs, is `repositories.readable`'s.

One cohesive thing, the write protocol above (about 440 lines); the text full-text search sees is
in lexical_text.py, the HNSW indexes in vector_indexes.py, listing and deleting in catalogue.py.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mcp_server.core.errors import (
    EmbeddingModelMismatch,
    JobNoLongerRunning,
    ShardGenerationMoved,
    ShardSourceMoved,
)
from mcp_server.core.shards import Shard
from mcp_server.db.schema import LIVE
from mcp_server.index.lexical_text import lexical_body, lexical_text

# The version of what a run writes per file, recorded per repository at publish time. 1: chunks
# plus the symbol table (definitions, identifier occurrences). A repository of an older format is
# re-read in full by its next run; the navigation tools refuse it until then.
INDEX_FORMAT = 1
TEXT_SEARCH_CONFIG = "english"


@dataclass(frozen=True, slots=True)
class KnownFile:
    file_id: int
    content_hash: bytes


@dataclass(frozen=True, slots=True)
class RunState:
    repository_id: int
    project_id: str
    generation: int  # the generation this run writes
    live: dict[str, KnownFile]  # path -> row visible in the active generation
    pending: dict[str, KnownFile]  # path -> row written at this generation by an earlier attempt
    # The repository had no live file at all (a first index): for a shard, `live` holds only its
    # own part, which may be empty in a repository that is not.
    empty_before: bool = False


@dataclass(slots=True)
class ChunkRow:
    start_line: int
    end_line: int
    symbol: str | None
    kind: str
    content: str


@dataclass(frozen=True, slots=True)
class SymbolRow:
    name: str
    qualified_name: str
    parent: str | None
    kind: str
    start_line: int
    end_line: int
    signature: str


@dataclass(slots=True)
class FileWrite:
    path: str
    language: str | None
    content_hash: bytes
    size_bytes: int
    chunks: list[ChunkRow]
    symbols: list[SymbolRow] = field(default_factory=list)
    occurrences: list[tuple[str, list[int]]] = field(default_factory=list)  # (identifier, lines)


# The files another repository of the project holds, published, with these content hashes and
# the same format and chunking settings (IndexStore.copy_shared); uses ix_files_content_hash.
SHARED_LOOKUP = (
    "SELECT f.id, f.path, f.content_hash FROM files f "
    "JOIN repositories r ON r.id = f.repository_id "
    "WHERE f.content_hash = ANY(:hashes) AND r.project_id = :p AND r.id <> :me "
    " AND r.index_format = :fmt AND r.chunking = :k "
    " AND f.gen_from <= r.active_generation AND r.active_generation < f.gen_to"
)

# Class of the advisory locks that serialise runs of one repository (the key is a hash of it).
_RUN_LOCK_CLASS = 0x72756E  # "run"


class IndexStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- projects and models --------------------------------------------------------------------

    def check_project_model(
        self, project_id: str, *, model_id: str, dimension: int, allow_change: bool
    ) -> None:
        """Record the project's embedding model on first use; refuse another one later unless a
        forced re-index is replacing the whole project."""
        with self._engine.begin() as conn:
            row = conn.execute(
                text("SELECT embedding_model, embedding_dimension FROM projects WHERE project_id = :p"),
                {"p": project_id},
            ).one_or_none()
            if row is None:
                conn.execute(
                    text(
                        "INSERT INTO projects (project_id, embedding_model, embedding_dimension) "
                        "VALUES (:p, :m, :d) ON CONFLICT (project_id) DO NOTHING"
                    ),
                    {"p": project_id, "m": model_id, "d": dimension},
                )
                return
            if (row.embedding_model, row.embedding_dimension) == (model_id, dimension):
                return
            if not allow_change:
                raise EmbeddingModelMismatch(
                    f"project {project_id!r} was indexed with embedding model {row.embedding_model!r} "
                    f"({row.embedding_dimension} dimensions) but {model_id!r} ({dimension} dimensions) is "
                    "configured: vectors of two models cannot be compared. Re-index with "
                    "force_reindex=true to re-embed the project with the configured model, or configure "
                    "the original model again."
                )

    def project_model(self, project_id: str) -> tuple[str, int] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                text("SELECT embedding_model, embedding_dimension FROM projects WHERE project_id = :p"),
                {"p": project_id},
            ).one_or_none()
        return (row.embedding_model, row.embedding_dimension) if row else None

    # --- a run ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def repository_lock(self, *, project_id: str, root_path: str, shared: bool = False) -> Iterator[None]:
        """Hold the run lock of one repository: runs of it, whoever starts them (a job's indexer,
        a watcher's sync), never interleave. A session lock on a connection of its own, so the
        run's transactions do not release it; a database restart does (and fails the run).

        `shared`: the shards of one sharded run hold it together (only one job of a repository is
        ever active, so shared holders are shards of the same run); an unsharded run or a sync
        waits for all of them."""
        key = {"c": _RUN_LOCK_CLASS, "k": f"{project_id}/{root_path}"}
        kind = "_shared" if shared else ""
        with self._engine.connect() as conn:
            conn.execute(text(f"SELECT pg_advisory_lock{kind}(:c, hashtext(:k))"), key)
            conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection holds no lock any more
                    conn.execute(text(f"SELECT pg_advisory_unlock{kind}(:c, hashtext(:k))"), key)
                    conn.commit()

    def begin_run(self, *, project_id: str, root_path: str) -> RunState:
        with self._engine.begin() as conn:
            repo = self._lock_repository(conn, project_id, root_path)
            generation = repo.active_generation + 1
            self._undo_killed_run(conn, repo.id, repo.active_generation, generation)
            return self._run_state(conn, repo, project_id, generation, owns=None)

    def begin_shard(
        self,
        *,
        project_id: str,
        root_path: str,
        job_id: uuid.UUID,
        shard: Shard,
        source_commit: str | None = None,
    ) -> RunState:
        """`begin_run` for one shard of a sharded run: the first shard to start fixes the generation
        all of them write (and undoes a killed earlier run's marks); a later one, or a retry,
        takes that generation and undoes only its own part's marks. The state holds only the
        files the shard owns.

        `source_commit`: the commit a git source's shard checked out. Each shard fetches for
        itself, so a branch pushed to while they start would mix two trees in one generation:
        a shard that got another commit than the shards before it stops the run."""
        with self._engine.begin() as conn:
            repo = self._lock_repository(conn, project_id, root_path)
            if source_commit is not None:
                other = conn.execute(
                    text(
                        "SELECT shard, source_commit FROM job_shards WHERE job_id = :j AND shard <> :s "
                        "AND source_commit IS NOT NULL AND source_commit <> :c LIMIT 1"
                    ),
                    {"j": job_id, "s": shard.index, "c": source_commit},
                ).first()
                if other is not None:
                    raise ShardSourceMoved(
                        f"{shard} checked out commit {source_commit[:12]} but shard {other.shard + 1} "
                        f"indexed {other.source_commit[:12]}: the branch moved while the run started, "
                        "and one generation cannot mix two commits. The previous index is kept; run "
                        "again, or give a commit SHA as the ref"
                    )
            active = repo.active_generation
            fixed = conn.execute(
                text("SELECT generation FROM job_shards WHERE job_id = :j LIMIT 1"), {"j": job_id}
            ).scalar()
            if fixed is None:
                generation = active + 1
                self._undo_killed_run(conn, repo.id, active, generation)
            else:
                generation = fixed
                if active != generation - 1:
                    raise ShardGenerationMoved(
                        f"the repository was published by another run (generation {active}) while this "
                        f"sharded run was writing generation {generation}; start the job again"
                    )
                marked = conn.execute(
                    text(
                        "SELECT id, path FROM files WHERE repository_id = :r "
                        "AND gen_to > :a AND gen_to <> :live"
                    ),
                    {"r": repo.id, "a": active, "live": LIVE},
                )
                own = [row.id for row in marked if shard.owns(row.path)]
                if own:
                    params = {"ids": own, "live": LIVE}
                    conn.execute(text("UPDATE files SET gen_to = :live WHERE id = ANY(:ids)"), params)
                    conn.execute(text("UPDATE chunks SET gen_to = :live WHERE file_id = ANY(:ids)"), params)
            conn.execute(
                text(
                    "INSERT INTO job_shards (job_id, shard, generation, source_commit) "
                    "VALUES (:j, :s, :g, :c) "
                    "ON CONFLICT (job_id, shard) DO UPDATE SET status = 'running', counters = NULL, "
                    " attempts = job_shards.attempts + 1, source_commit = EXCLUDED.source_commit, "
                    " updated_at = now()"
                ),
                {"j": job_id, "s": shard.index, "g": generation, "c": source_commit},
            )
            return self._run_state(conn, repo, project_id, generation, owns=shard.owns)

    def finish_shard(self, *, job_id: uuid.UUID, shard: Shard, counters: Mapping[str, Any]) -> bool:
        """Record a shard's end; True when it is the last of its run, which then publishes.

        Under the job row's lock, so of two shards ending at once exactly one sees all done.
        """
        with self._engine.begin() as conn:
            status = conn.execute(
                text("SELECT status FROM indexing_jobs WHERE id = :j FOR UPDATE"), {"j": job_id}
            ).scalar()
            if status != "running":
                raise JobNoLongerRunning(f"job {job_id} is {status}; its index was not published")
            conn.execute(
                text(
                    "UPDATE job_shards SET status = 'done', counters = CAST(:c AS jsonb), "
                    "progress_fraction = 1, remaining_seconds = 0, updated_at = now(), "
                    # The shard's own final figures, not its last progress report's.
                    "files_seen = :seen, files_total = :seen, files_indexed = :indexed, "
                    "files_skipped = :skipped, chunks_created = :chunks "
                    "WHERE job_id = :j AND shard = :s"
                ),
                {
                    "j": job_id,
                    "s": shard.index,
                    "c": json.dumps(dict(counters)),
                    "seen": int(counters.get("files_seen") or 0),
                    "indexed": int(counters.get("files_indexed") or 0),
                    "skipped": int(counters.get("files_skipped") or 0),
                    "chunks": int(counters.get("chunks_created") or 0),
                },
            )
            done = conn.execute(
                text("SELECT count(*) FROM job_shards WHERE job_id = :j AND status = 'done'"), {"j": job_id}
            ).scalar()
        return done == shard.count

    def shard_counters(self, job_id: uuid.UUID) -> list[dict[str, Any]]:
        """What each finished shard of a run counted (its RunCounters), for the run's summary."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT counters FROM job_shards WHERE job_id = :j AND counters IS NOT NULL "
                    "ORDER BY shard"
                ),
                {"j": job_id},
            )
            return [dict(row.counters) for row in rows]

    @staticmethod
    def _lock_repository(conn: Connection, project_id: str, root_path: str) -> Any:
        conn.execute(
            text(
                "INSERT INTO repositories (project_id, root_path) VALUES (:p, :r) "
                "ON CONFLICT (project_id, root_path) DO NOTHING"
            ),
            {"p": project_id, "r": root_path},
        )
        return conn.execute(
            text(
                "SELECT id, active_generation, index_format FROM repositories "
                "WHERE project_id = :p AND root_path = :r FOR UPDATE"
            ),
            {"p": project_id, "r": root_path},
        ).one()

    @staticmethod
    def _undo_killed_run(conn: Connection, repository_id: int, active: int, generation: int) -> None:
        """Undo the "replaced" marks of a killed run; its new rows (gen_from = G) stay for reuse."""
        params = {"r": repository_id, "a": active, "live": LIVE}
        conn.execute(
            text(
                "UPDATE files SET gen_to = :live WHERE repository_id = :r AND gen_to > :a AND gen_to <> :live"
            ),
            params,
        )
        conn.execute(
            text(
                "UPDATE chunks SET gen_to = :live "
                "WHERE repository_id = :r AND gen_to > :a AND gen_to <> :live"
            ),
            params,
        )
        conn.execute(
            text("DELETE FROM files WHERE repository_id = :r AND gen_from > :g"),
            {"r": repository_id, "g": generation},
        )

    @staticmethod
    def _run_state(
        conn: Connection,
        repo: Any,
        project_id: str,
        generation: int,
        *,
        owns: Callable[[str], bool] | None,
    ) -> RunState:
        active = repo.active_generation
        live: dict[str, KnownFile] = {}
        pending: dict[str, KnownFile] = {}
        rows = conn.execute(
            text(
                "SELECT id, path, content_hash, gen_from FROM files WHERE repository_id = :r AND gen_to > :a"
            ),
            {"r": repo.id, "a": active},
        )
        # Rows of an older format lack what this version writes per file (the symbol table):
        # an impossible hash makes every file "changed", so it is re-read and replaced.
        stale = repo.index_format < INDEX_FORMAT
        any_live = False
        for row in rows:
            if row.gen_from <= active:
                any_live = True
            if owns is not None and not owns(row.path):
                continue
            known = KnownFile(row.id, b"" if stale else bytes(row.content_hash))
            if row.gen_from <= active:
                live[row.path] = known
            else:
                pending[row.path] = known
        return RunState(repo.id, project_id, generation, live, pending, empty_before=not any_live)

    def write_files(
        self,
        state: RunState,
        writes: Sequence[FileWrite],
        embeddings: npt.NDArray[np.float32],
        *,
        replaced_file_ids: Sequence[int],
    ) -> int:
        """Store files and their chunks at generation G in one transaction; return chunks written.

        `embeddings` holds one row per chunk, in the order of `writes` then `chunks`.
        """
        total_chunks = sum(len(w.chunks) for w in writes)
        if embeddings.shape[0] != total_chunks:
            raise ValueError(f"{embeddings.shape[0]} embeddings for {total_chunks} chunks")
        dimension = int(embeddings.shape[1]) if total_chunks else 0
        with self._engine.begin() as conn:
            if replaced_file_ids:
                self._mark_replaced(conn, state, list(replaced_file_ids))
            if not writes:
                return 0
            file_ids = self._allocate_ids(conn, "files", len(writes))
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                with cur.copy(
                    "COPY files (id, repository_id, path, language, content_hash, size_bytes, gen_from) "
                    "FROM STDIN"
                ) as copy:
                    for file_id, w in zip(file_ids, writes, strict=True):
                        copy.write_row(
                            (
                                file_id,
                                state.repository_id,
                                w.path,
                                w.language,
                                w.content_hash,
                                w.size_bytes,
                                state.generation,
                            )
                        )
                self._copy_symbols(cur, state, file_ids, writes)
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS chunk_stage ("
                    " file_id bigint, path text, language text, start_line int, end_line int,"
                    " symbol text, kind text, content text, embedding vector, head text, body text"
                    ") ON COMMIT DELETE ROWS"
                )
                with cur.copy(
                    "COPY chunk_stage (file_id, path, language, start_line, end_line, symbol, kind, "
                    "content, embedding, head, body) FROM STDIN WITH (FORMAT BINARY)"
                ) as copy:
                    # Binary COPY with pgvector's numpy dumper: formatting vectors as text in Python
                    # would dominate the write time.
                    copy.set_types(
                        [
                            "int8",
                            "text",
                            "text",
                            "int4",
                            "int4",
                            "text",
                            "text",
                            "text",
                            "vector",
                            "text",
                            "text",
                        ]
                    )
                    i = 0
                    for file_id, w in zip(file_ids, writes, strict=True):
                        for c in w.chunks:
                            head = f"{w.path} {c.symbol or ''}"
                            copy.write_row(
                                (
                                    file_id,
                                    w.path,
                                    w.language,
                                    c.start_line,
                                    c.end_line,
                                    c.symbol,
                                    c.kind,
                                    c.content.replace("\x00", ""),
                                    embeddings[i],
                                    lexical_text(head),
                                    lexical_body(c.content.replace("\x00", "")),
                                )
                            )
                            i += 1
                cur.execute(
                    "INSERT INTO chunks (file_id, repository_id, project_id, gen_from, path, language, "
                    " start_line, end_line, symbol, kind, content, embedding_dim, embedding, search_tsv) "
                    "SELECT file_id, %(r)s, %(p)s, %(g)s, path, language, start_line, end_line, symbol, kind,"
                    " content, %(d)s, embedding,"
                    f" setweight(to_tsvector('{TEXT_SEARCH_CONFIG}', head), 'A') ||"
                    f" setweight(to_tsvector('{TEXT_SEARCH_CONFIG}', body), 'B')"
                    " FROM chunk_stage",
                    {"r": state.repository_id, "p": state.project_id, "g": state.generation, "d": dimension},
                )
        return total_chunks

    def has_shared_sources(self, state: RunState, *, chunking: str) -> bool:
        """Whether another repository of the project could be copied from (see `copy_shared`)."""
        with self._engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT 1 FROM repositories WHERE project_id = :p AND id <> :me "
                    "AND active_generation > 0 AND index_format = :fmt AND chunking = :k LIMIT 1"
                ),
                {"p": state.project_id, "me": state.repository_id, "fmt": INDEX_FORMAT, "k": chunking},
            ).scalar()
        return found is not None

    def copy_shared(
        self,
        state: RunState,
        wanted: Mapping[str, bytes],
        *,
        chunking: str,
        replaced_file_ids: Mapping[str, int],
    ) -> dict[str, int]:
        """Copy, for each wanted path -> content hash, the rows another repository of the project
        holds for the same path and content in its published generation (file, chunks with their
        vectors, symbols, occurrences) into generation G; return path -> chunks copied.

        Only from a repository published with the same index format and `chunking`, so the rows
        are exactly what parsing and embedding the file here would write (the embedded text holds
        the path, hence the same path). One indexed lookup (`ix_files_content_hash`) per call.
        One REPEATABLE READ transaction: every statement reads one snapshot, so a source row that
        its own repository deletes meanwhile is still copied whole, never half. Copies, not shared
        rows: see design.md, "Content shared across repositories".
        """
        if not wanted:
            return {}
        snapshot = self._engine.connect().execution_options(isolation_level="REPEATABLE READ")
        with snapshot as conn, conn.begin():
            rows = conn.execute(
                text(SHARED_LOOKUP),
                {
                    "hashes": list(set(wanted.values())),
                    "p": state.project_id,
                    "me": state.repository_id,
                    "fmt": INDEX_FORMAT,
                    "k": chunking,
                },
            )
            sources: dict[str, int] = {}
            for row in rows:
                if wanted.get(row.path) == bytes(row.content_hash):
                    sources.setdefault(row.path, row.id)
            if not sources:
                return {}
            paths = list(sources)
            source_ids = [sources[path] for path in paths]
            file_ids = self._allocate_ids(conn, "files", len(paths))
            replaced = [replaced_file_ids[path] for path in paths if path in replaced_file_ids]
            if replaced:
                self._mark_replaced(conn, state, replaced)
            params = {
                "src": source_ids,
                "dst": file_ids,
                "r": state.repository_id,
                "p": state.project_id,
                "g": state.generation,
            }
            mapping = "JOIN unnest(CAST(:src AS bigint[]), CAST(:dst AS bigint[])) AS m(src, dst) "
            conn.execute(
                text(
                    "INSERT INTO files (id, repository_id, path, language, content_hash, size_bytes, "
                    " gen_from) SELECT m.dst, :r, f.path, f.language, f.content_hash, f.size_bytes, :g "
                    f"FROM files f {mapping}ON f.id = m.src"
                ),
                params,
            )
            copied = conn.execute(
                text(
                    "INSERT INTO chunks (file_id, repository_id, project_id, gen_from, path, language, "
                    " start_line, end_line, symbol, kind, content, embedding_dim, embedding, search_tsv) "
                    "SELECT m.dst, :r, :p, :g, c.path, c.language, c.start_line, c.end_line, c.symbol, "
                    " c.kind, c.content, c.embedding_dim, c.embedding, c.search_tsv "
                    f"FROM chunks c {mapping}ON c.file_id = m.src "
                    "RETURNING file_id"
                ),
                params,
            )
            per_file: dict[int, int] = {}
            for (file_id,) in copied:
                per_file[file_id] = per_file.get(file_id, 0) + 1
            conn.execute(
                text(
                    "INSERT INTO symbols (file_id, project_id, name, qualified_name, parent, kind, "
                    " start_line, end_line, signature) "
                    "SELECT m.dst, :p, s.name, s.qualified_name, s.parent, s.kind, s.start_line, "
                    f" s.end_line, s.signature FROM symbols s {mapping}ON s.file_id = m.src"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO symbol_occurrences (file_id, project_id, name, lines) "
                    f"SELECT m.dst, :p, o.name, o.lines FROM symbol_occurrences o {mapping}"
                    "ON o.file_id = m.src"
                ),
                params,
            )
        return {path: per_file.get(file_id, 0) for path, file_id in zip(paths, file_ids, strict=True)}

    def reuse_pending(self, state: RunState, *, replaced_file_ids: Sequence[int]) -> None:
        """An earlier attempt of this generation already wrote these files: only mark what they replace."""
        if replaced_file_ids:
            with self._engine.begin() as conn:
                self._mark_replaced(conn, state, list(replaced_file_ids))

    def retire(self, state: RunState, *, file_ids: Sequence[int]) -> None:
        """Mark live files that no longer exist (or changed) as ending at this generation."""
        if file_ids:
            with self._engine.begin() as conn:
                self._mark_replaced(conn, state, list(file_ids))

    def drop_pending(self, state: RunState, *, file_ids: Sequence[int]) -> None:
        """Delete rows an earlier attempt wrote that this run does not use."""
        if file_ids:
            with self._engine.begin() as conn:
                conn.execute(text("DELETE FROM files WHERE id = ANY(:ids)"), {"ids": list(file_ids)})

    def analyze(self) -> None:
        """Refresh the planner's statistics after a bulk load: lexical search weighs query words by
        how rare they are (pg_stats), and autovacuum would only get there a minute later."""
        with self._engine.connect() as conn:
            conn.execute(text("ANALYZE chunks"))
            conn.commit()

    def published_by(self, job_id: uuid.UUID) -> bool:
        """Whether the job's run made its generation the live index of its repository."""
        with self._engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM repositories WHERE last_job_id = :j LIMIT 1"), {"j": job_id}
            ).scalar()
        return found is not None

    def publish(
        self,
        state: RunState,
        *,
        job_id: uuid.UUID | None,
        replace_project_model: tuple[str, int] | None,
        chunking: str | None = None,
    ) -> None:
        """Make generation G the searchable one, then collect what it replaced.

        `chunking` records what shaped the rows besides the content (None: unknown, so no other
        repository copies from this one).

        Only while the job is still `running`: its row is locked for the switch, so a cancel either
        lands first (nothing is published) or waits and then finds the new index live, and can say so.
        """
        with self._engine.begin() as conn:
            if job_id is not None:
                status = conn.execute(
                    text("SELECT status FROM indexing_jobs WHERE id = :j FOR UPDATE"), {"j": job_id}
                ).scalar()
                if status is not None and status != "running":
                    raise JobNoLongerRunning(f"job {job_id} is {status}; its index was not published")
            conn.execute(
                text(
                    "UPDATE repositories SET active_generation = :g, last_indexed_at = now(), "
                    "last_job_id = :j, index_format = :f, chunking = :k WHERE id = :r"
                ),
                {
                    "g": state.generation,
                    "j": job_id,
                    "r": state.repository_id,
                    "f": INDEX_FORMAT,
                    "k": chunking,
                },
            )
            if replace_project_model is not None:
                model_id, dimension = replace_project_model
                current = conn.execute(
                    text(
                        "SELECT embedding_model, embedding_dimension FROM projects "
                        "WHERE project_id = :p FOR UPDATE"
                    ),
                    {"p": state.project_id},
                ).one()
                if (current.embedding_model, current.embedding_dimension) != (model_id, dimension):
                    # The other repositories of the project hold vectors of the old model: they are
                    # emptied and must be re-indexed.
                    conn.execute(
                        text(
                            "DELETE FROM files USING repositories r WHERE files.repository_id = r.id "
                            "AND r.project_id = :p AND r.id <> :r"
                        ),
                        {"p": state.project_id, "r": state.repository_id},
                    )
                    conn.execute(
                        text(
                            "UPDATE projects SET embedding_model = :m, embedding_dimension = :d "
                            "WHERE project_id = :p"
                        ),
                        {"m": model_id, "d": dimension, "p": state.project_id},
                    )
        with self._engine.begin() as conn:
            conn.execute(
                text("DELETE FROM files WHERE repository_id = :r AND gen_to <= :g"),
                {"r": state.repository_id, "g": state.generation},
            )

    # --- helpers --------------------------------------------------------------------------------

    @staticmethod
    def _copy_symbols(cur: Any, state: RunState, file_ids: list[int], writes: Sequence[FileWrite]) -> None:
        """The files' symbol tables, in the transaction of their chunks (so they share a generation)."""
        with cur.copy(
            "COPY symbols (file_id, project_id, name, qualified_name, parent, kind, start_line, end_line, "
            "signature) FROM STDIN"
        ) as copy:
            for file_id, w in zip(file_ids, writes, strict=True):
                for d in w.symbols:
                    copy.write_row(
                        (
                            file_id,
                            state.project_id,
                            d.name.replace("\x00", ""),
                            d.qualified_name.replace("\x00", ""),
                            d.parent.replace("\x00", "") if d.parent else None,
                            d.kind,
                            d.start_line,
                            d.end_line,
                            d.signature.replace("\x00", ""),
                        )
                    )
        with cur.copy("COPY symbol_occurrences (file_id, project_id, name, lines) FROM STDIN") as copy:
            for file_id, w in zip(file_ids, writes, strict=True):
                for name, lines in w.occurrences:
                    copy.write_row((file_id, state.project_id, name.replace("\x00", ""), lines))

    @staticmethod
    def _mark_replaced(conn: Connection, state: RunState, file_ids: list[int]) -> None:
        params = {"g": state.generation, "ids": file_ids}
        conn.execute(text("UPDATE files SET gen_to = :g WHERE id = ANY(:ids)"), params)
        conn.execute(text("UPDATE chunks SET gen_to = :g WHERE file_id = ANY(:ids)"), params)

    @staticmethod
    def _allocate_ids(conn: Connection, table: str, count: int) -> list[int]:
        rows = conn.execute(
            text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
        return [r[0] for r in rows]
