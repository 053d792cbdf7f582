"""Writes to the searchable index: projects, repositories, generations, files and chunks.

A run for repository R works on generation G = R.active_generation + 1:
  1. `begin_run` resets leftovers of killed runs (rows marked `gen_to = G` go back to LIVE) but
     keeps rows written at `gen_from = G`: a retry reuses those whose content hash still matches.
  2. `write_files` stores new file rows and their chunks at `gen_from = G` and marks the rows they
     replace with `gen_to = G`, committing batch by batch (durable, invisible to search).
  3. `retire_missing` marks deleted files `gen_to = G`; unused pending rows are deleted.
  4. `publish` sets R.active_generation = G in one UPDATE: search now sees the new generation.
     Rows with `gen_to <= G` are garbage-collected afterwards.
Search reads rows with `gen_from <= active < gen_to`, so nothing of an unfinished run is ever
visible and the previous generation stays searchable until the switch.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mcp_server.core.errors import EmbeddingModelMismatch, JobNoLongerRunning
from mcp_server.db.schema import LIVE

# The version of what a run writes per file, recorded per repository at publish time. 1: chunks
# plus the symbol table (definitions, identifier occurrences). A repository of an older format is
# re-read in full by its next run; the navigation tools refuse it until then.
INDEX_FORMAT = 1
# pgvector: HNSW supports up to 2,000 dimensions for `vector` and 4,000 for `halfvec`.
MAX_VECTOR_HNSW_DIM = 2000
TEXT_SEARCH_CONFIG = "english"
PROJECT_LITERAL_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Bulk loads build the HNSW graph once at the end: about 5x faster than inserting into it.
INDEX_BUILD_SETTINGS = ("SET maintenance_work_mem = '512MB'", "SET max_parallel_maintenance_workers = 2")

_CAMEL_RE = re.compile(
    r"[A-Za-z][a-z0-9]*[A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z][A-Za-z0-9]*|[A-Za-z]+[0-9]+[A-Za-z][A-Za-z0-9]*"
)
_CAMEL_SPLIT_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifiers(content: str) -> str:
    """The camelCase identifiers of `content`, split into words ("parseHTTPResponse" -> "parse
    HTTP Response", "html2text" -> "html 2 text"). PostgreSQL's parser already splits snake_case
    at underscores."""
    seen: set[str] = set()
    words: list[str] = []
    for match in _CAMEL_RE.finditer(content):
        token = match.group(0)
        if token in seen:
            continue
        seen.add(token)
        words.extend(_CAMEL_SPLIT_RE.findall(token))
    return " ".join(words)


# ASCII punctuation except "_" (PostgreSQL's parser already splits words at underscores).
_PUNCTUATION_TO_SPACE = str.maketrans({ch: " " for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"})


def lexical_text(content: str) -> str:
    """What full-text search sees of `content` (chunks and queries alike): punctuation as spaces,
    then the camelCase identifiers split into words. Without the first step PostgreSQL's parser
    reads `self.cache`, `a/b.py` and `x-y` as one host, file or hyphenated token, so none of
    their words could be found."""
    plain = content.translate(_PUNCTUATION_TO_SPACE)
    return plain + " " + split_identifiers(plain)


# PostgreSQL refuses a tsvector whose words exceed 1 MB ("string is too long for tsvector"), which
# would fail a whole write batch over one minified bundle kept as a single line. Past this many
# bytes a chunk is only found by keyword through its start (by meaning through all of it).
MAX_LEXICAL_BYTES = 512 * 1024


def _lexical_body(content: str) -> str:
    body = lexical_text(content)
    if len(body) * 4 > MAX_LEXICAL_BYTES:  # cheap test first: a character is at most 4 bytes
        data = body.encode("utf-8")
        if len(data) > MAX_LEXICAL_BYTES:
            body = data[:MAX_LEXICAL_BYTES].decode("utf-8", "ignore")
    return body


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

    def drop_vector_index(self, project_id: str, dimension: int) -> None:
        """Before a bulk load: searches meanwhile use an exact scan of the project (slower, correct)."""
        with self._engine.connect() as conn:
            self._with_project_lock(conn, project_id)
            conn.execute(text(f"DROP INDEX IF EXISTS {vector_index_name(project_id, dimension)}"))
            conn.commit()

    def ensure_vector_index(self, project_id: str, dimension: int) -> None:
        name = vector_index_name(project_id, dimension)
        with self._engine.connect() as conn:
            if conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar():
                return
            self._with_project_lock(conn, project_id)
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

    def restore_vector_indexes(self) -> list[str]:
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
            if not self.has_vector_index(row.project_id, row.embedding_dimension):
                self.ensure_vector_index(row.project_id, row.embedding_dimension)
                restored.append(row.project_id)
        return restored

    def has_vector_index(self, project_id: str, dimension: int) -> bool:
        with self._engine.connect() as conn:
            name = vector_index_name(project_id, dimension)
            return conn.execute(text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None

    @staticmethod
    def _with_project_lock(conn: Connection, project_id: str) -> None:
        """Serialise index DDL per project (transaction-scoped: released at commit)."""
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": "hnsw:" + project_id})

    # --- a run ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def repository_lock(self, *, project_id: str, root_path: str) -> Iterator[None]:
        """Hold the run lock of one repository: runs of it, whoever starts them (a job's indexer,
        a watcher's sync), never interleave. A session lock on a connection of its own, so the
        run's transactions do not release it; a database restart does (and fails the run)."""
        key = {"c": _RUN_LOCK_CLASS, "k": f"{project_id}/{root_path}"}
        with self._engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:c, hashtext(:k))"), key)
            conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(Exception):  # a lost connection holds no lock any more
                    conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(:k))"), key)
                    conn.commit()

    def repositories(self, *, project_id: str | None = None) -> list[dict[str, object]]:
        """Every repository with a published generation: its counts, bytes and files per language
        (most files first), last sync and model."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.id, r.project_id, r.root_path, r.last_indexed_at, p.embedding_model, "
                    " (SELECT count(*) FROM files f WHERE f.repository_id = r.id "
                    "   AND f.gen_from <= r.active_generation AND f.gen_to > r.active_generation) AS files, "
                    " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id "
                    "   AND c.gen_from <= r.active_generation AND c.gen_to > r.active_generation) AS chunks "
                    "FROM repositories r JOIN projects p ON p.project_id = r.project_id "
                    "WHERE r.active_generation > 0 AND (CAST(:p AS text) IS NULL OR r.project_id = :p) "
                    "ORDER BY r.project_id, r.root_path"
                ),
                {"p": project_id},
            ).mappings()
            listed = [dict(row) for row in rows]
            per_repo: dict[object, list[Any]] = {}
            for row in conn.execute(
                text(
                    "SELECT f.repository_id, coalesce(f.language, 'text') AS language, count(*) AS n, "
                    " sum(f.size_bytes) AS bytes "
                    "FROM files f JOIN repositories r ON r.id = f.repository_id "
                    "WHERE f.gen_from <= r.active_generation AND r.active_generation < f.gen_to "
                    " AND (CAST(:p AS text) IS NULL OR r.project_id = :p) "
                    "GROUP BY f.repository_id, 2 ORDER BY 3 DESC"
                ),
                {"p": project_id},
            ).mappings():
                per_repo.setdefault(row["repository_id"], []).append(row)
        for repo in listed:
            langs = per_repo.get(repo["id"], [])
            repo["size_bytes"] = sum(int(lang["bytes"] or 0) for lang in langs)
            repo["languages"] = {str(lang["language"]): int(lang["n"]) for lang in langs}
        return listed

    def delete_repository(self, *, project_id: str, root_path: str) -> bool:
        """Remove a repository and all its rows (files and chunks go with it); False if unknown."""
        with self._engine.begin() as conn:
            deleted = conn.execute(
                text("DELETE FROM repositories WHERE project_id = :p AND root_path = :r"),
                {"p": project_id, "r": root_path},
            ).rowcount
        return bool(deleted)

    def delete_project(self, *, project_id: str) -> bool:
        """Remove a project: its repositories, their rows, its vector index; False if unknown."""
        with self._engine.begin() as conn:
            model = conn.execute(
                text("SELECT embedding_dimension FROM projects WHERE project_id = :p"), {"p": project_id}
            ).one_or_none()
            if model is None:
                return False
            conn.execute(text("DELETE FROM projects WHERE project_id = :p"), {"p": project_id})
        self.drop_vector_index(project_id, int(model.embedding_dimension))
        return True

    def disk_usage(self) -> list[dict[str, object]]:
        """Per project: repositories, files and chunks (all generations) and their bytes on disk."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.project_id, "
                    " (SELECT count(*) FROM repositories r "
                    "   WHERE r.project_id = p.project_id) AS repositories, "
                    " (SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id "
                    "   WHERE r.project_id = p.project_id) AS files, "
                    " (SELECT count(*) FROM chunks c WHERE c.project_id = p.project_id) AS chunks, "
                    " (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM chunks c "
                    "   WHERE c.project_id = p.project_id) AS chunk_bytes "
                    "FROM projects p ORDER BY p.project_id"
                )
            ).mappings()
            return [dict(row) for row in rows]

    def last_synced(self, *, project_id: str, root_paths: Sequence[str]) -> dict[str, object]:
        """root path -> when its active generation was published, for the given repositories."""
        if not root_paths:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT root_path, last_indexed_at FROM repositories "
                    "WHERE project_id = :p AND root_path = ANY(:roots)"
                ),
                {"p": project_id, "roots": list(root_paths)},
            )
            return {r.root_path: r.last_indexed_at for r in rows}

    def begin_run(self, *, project_id: str, root_path: str) -> RunState:
        with self._engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO repositories (project_id, root_path) VALUES (:p, :r) "
                    "ON CONFLICT (project_id, root_path) DO NOTHING"
                ),
                {"p": project_id, "r": root_path},
            )
            repo = conn.execute(
                text(
                    "SELECT id, active_generation, index_format FROM repositories "
                    "WHERE project_id = :p AND root_path = :r FOR UPDATE"
                ),
                {"p": project_id, "r": root_path},
            ).one()
            active = repo.active_generation
            generation = active + 1
            params = {"r": repo.id, "a": active, "live": LIVE}
            # Undo the "replaced" marks of a killed run; its new rows (gen_from = G) stay for reuse.
            conn.execute(
                text(
                    "UPDATE files SET gen_to = :live "
                    "WHERE repository_id = :r AND gen_to > :a AND gen_to <> :live"
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
                {"r": repo.id, "g": generation},
            )
            live: dict[str, KnownFile] = {}
            pending: dict[str, KnownFile] = {}
            rows = conn.execute(
                text(
                    "SELECT id, path, content_hash, gen_from FROM files "
                    "WHERE repository_id = :r AND gen_to > :a"
                ),
                {"r": repo.id, "a": active},
            )
            # Rows of an older format lack what this version writes per file (the symbol table):
            # an impossible hash makes every file "changed", so it is re-read and replaced.
            stale = repo.index_format < INDEX_FORMAT
            for row in rows:
                known = KnownFile(row.id, b"" if stale else bytes(row.content_hash))
                if row.gen_from <= active:
                    live[row.path] = known
                else:
                    pending[row.path] = known
        return RunState(repo.id, project_id, generation, live, pending)

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
                                    _lexical_body(c.content.replace("\x00", "")),
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
        self, state: RunState, *, job_id: uuid.UUID | None, replace_project_model: tuple[str, int] | None
    ) -> None:
        """Make generation G the searchable one, then collect what it replaced.

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
                    "last_job_id = :j, index_format = :f WHERE id = :r"
                ),
                {"g": state.generation, "j": job_id, "r": state.repository_id, "f": INDEX_FORMAT},
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
