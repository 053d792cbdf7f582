"""Hybrid code search: pgvector (HNSW, cosine) and PostgreSQL full text, fused by reciprocal rank.

Every query is scoped to one project and to each repository's active generation, so neither
another project's rows nor a half-written run can ever be returned. Filters (language, path glob
or prefix) are applied inside both retrievers; the vector side uses pgvector's iterative index
scan so a selective filter still fills `limit` results.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.embeddings.base import Embedder
from mcp_server.errors import EmbeddingModelMismatch, InvalidInput
from mcp_server.index_store import (
    TEXT_SEARCH_CONFIG,
    split_identifiers,
    vector_expression,
    vector_index_predicate,
    vector_query_cast,
)

SearchMode = Literal["hybrid", "semantic", "lexical"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "semantic", "lexical")
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 100
RRF_K = 60
LANGUAGE_RE = re.compile(r"^[a-z0-9_+#-]{1,32}$")
_WORD_RE = re.compile(r"[A-Za-z0-9]+")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True, slots=True)
class SearchResult:
    file_path: str
    repository: str
    start_line: int
    end_line: int
    language: str | None
    symbol: str | None
    kind: str
    content: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SearchResponse:
    results: list[SearchResult]
    total_count: int
    project_id: str
    mode: str
    latency_ms: float


def glob_to_regex(pattern: str) -> str:
    """A gitignore-like glob as a PostgreSQL regex anchored at both ends.

    `*` matches within one path segment, `**` across segments, `?` one character; a pattern with
    no glob character is a prefix ("src/api" matches "src/api/x.py").
    """
    if not any(ch in _GLOB_CHARS for ch in pattern):
        return "^" + re.escape(pattern.rstrip("/")) + "(/|$)"
    out = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def lexical_query(query: str) -> str | None:
    """An OR query of the words of `query` and of its split identifiers, for to_tsquery."""
    words = _WORD_RE.findall(query) + _WORD_RE.findall(split_identifiers(query))
    unique = list(dict.fromkeys(w.lower() for w in words if len(w) > 1 or w.isdigit()))
    if not unique:
        return None
    return " | ".join(unique[:64])


def validate_search_args(query: str, limit: int, mode: str, language: str | None, path: str | None) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string describing the code you are looking for")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is longer than {MAX_QUERY_CHARS} characters")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    if language is not None and not LANGUAGE_RE.fullmatch(language):
        raise InvalidInput(f"language {language[:40]!r} is not a language name such as 'python' or 'go'")
    if path is not None and (not path or len(path) > 1000 or "\x00" in path or path.startswith("/")):
        raise InvalidInput("path must be a repository-relative glob or prefix such as 'src/**/*.py'")


class Searcher:
    def __init__(self, engine: Engine, embedder: Embedder) -> None:
        self._engine = engine
        self._embedder = embedder

    def search(
        self,
        query: str,
        *,
        project_id: str,
        limit: int = 10,
        mode: str = "hybrid",
        language: str | None = None,
        path: str | None = None,
    ) -> SearchResponse:
        started = time.perf_counter()
        validate_search_args(query, limit, mode, language, path)
        with self._engine.connect() as conn:
            model = conn.execute(
                text("SELECT embedding_model, embedding_dimension FROM projects WHERE project_id = :p"),
                {"p": project_id},
            ).one_or_none()
            repos = conn.execute(
                text(
                    "SELECT id, root_path, active_generation FROM repositories "
                    "WHERE project_id = :p AND active_generation > 0"
                ),
                {"p": project_id},
            ).all()
            if model is None or not repos:
                return SearchResponse([], 0, project_id, mode, _ms(started))
            dimension = int(model.embedding_dimension)
            if mode != "lexical" and (model.embedding_model, dimension) != (
                self._embedder.model_id,
                self._embedder.dimension,
            ):
                raise EmbeddingModelMismatch(
                    f"project {project_id!r} was indexed with {model.embedding_model!r} but "
                    f"{self._embedder.model_id!r} is configured; re-index with force_reindex=true, or "
                    "search with mode='lexical'"
                )
            where, params = _scope(project_id, repos, language, path)
            candidates = max(limit * 4, 40)
            ranked: list[list[int]] = []
            if mode in ("hybrid", "semantic"):
                ranked.append(self._semantic(conn, query, dimension, where, params, candidates))
            if mode in ("hybrid", "lexical"):
                ranked.append(self._lexical(conn, query, where, params, candidates))
            fused = _rrf(ranked)
            rows = _fetch(conn, [chunk_id for chunk_id, _ in fused[: limit * 2]])
        roots = {r.id: r.root_path for r in repos}
        results: list[SearchResult] = []
        taken: dict[tuple[int, str], list[tuple[int, int]]] = {}
        scores = dict(fused)
        for chunk_id, _ in fused:
            row = rows.get(chunk_id)
            if row is None:
                continue
            spans = taken.setdefault((row.repository_id, row.path), [])
            if any(row.start_line <= e and s <= row.end_line for s, e in spans):
                continue  # at most one result per overlapping region
            spans.append((row.start_line, row.end_line))
            results.append(
                SearchResult(
                    file_path=row.path,
                    repository=roots[row.repository_id],
                    start_line=row.start_line,
                    end_line=row.end_line,
                    language=row.language,
                    symbol=row.symbol,
                    kind=row.kind,
                    content=row.content,
                    score=round(scores[chunk_id], 6),
                )
            )
            if len(results) >= limit:
                break
        return SearchResponse(results, len(results), project_id, mode, _ms(started))

    def _semantic(
        self, conn: Any, query: str, dimension: int, where: str, params: dict[str, Any], k: int
    ) -> list[int]:
        project_id = params["project_id"]
        vector = self._embedder.embed_query(query)
        expr = vector_expression(dimension)
        conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, k * 2))}"))
        rows = conn.execute(
            text(
                # The literal predicate lets the planner use the project's partial HNSW index.
                f"SELECT id FROM chunks c WHERE {where} AND {vector_index_predicate(project_id, dimension)} "
                f"ORDER BY {expr.replace('embedding', 'c.embedding')} "
                f"<=> CAST(:qv AS {vector_query_cast(dimension)}) "
                "LIMIT :k"
            ),
            {
                **params,
                "dim": dimension,
                "qv": "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]",
                "k": k,
            },
        )
        return [r.id for r in rows]

    def _lexical(self, conn: Any, query: str, where: str, params: dict[str, Any], k: int) -> list[int]:
        tsquery = lexical_query(query)
        if tsquery is None:
            return []
        rows = conn.execute(
            text(
                f"SELECT id FROM chunks c, to_tsquery('{TEXT_SEARCH_CONFIG}', :tq) q "
                f"WHERE {where} AND c.search_tsv @@ q "
                "ORDER BY ts_rank_cd(c.search_tsv, q) DESC LIMIT :k"
            ),
            {**params, "tq": tsquery, "k": k},
        )
        return [r.id for r in rows]


def _scope(
    project_id: str, repos: Sequence[Any], language: str | None, path: str | None
) -> tuple[str, dict[str, Any]]:
    """The WHERE clause every retriever shares: project, active generations, filters."""
    params: dict[str, Any] = {"project_id": project_id}
    generations = []
    for i, repo in enumerate(repos):
        params[f"r{i}"] = repo.id
        params[f"g{i}"] = repo.active_generation
        generations.append(f"(c.repository_id = :r{i} AND c.gen_from <= :g{i} AND c.gen_to > :g{i})")
    clauses = ["c.project_id = :project_id", "(" + " OR ".join(generations) + ")"]
    if language is not None:
        clauses.append("c.language = :language")
        params["language"] = language
    if path is not None:
        clauses.append("c.path ~ :path_re")
        params["path_re"] = glob_to_regex(path)
    return " AND ".join(clauses), params


def _rrf(rankings: list[list[int]]) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, chunk_id in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _fetch(conn: Any, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT id, repository_id, path, language, start_line, end_line, symbol, kind, content "
            "FROM chunks WHERE id = ANY(:ids)"
        ),
        {"ids": ids},
    )
    return {r.id: r for r in rows}


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
