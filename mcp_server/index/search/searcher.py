"""Hybrid code search: pgvector (HNSW, cosine) and PostgreSQL full text, fused by reciprocal rank.

Every query is scoped to one project and to the generation `repositories.readable` chooses for
each repository: the published one, so a later run's half-written generation is never returned;
for a repository whose first index is still running, what that run has written so far, flagged
`partial` (better an incomplete answer than none for the minutes a first index takes).

The retrievers (retrieval.py) are BM25-like full text and pgvector HNSW cosine search.
The two lists are fused by weighted reciprocal rank (`Fusion`), the lexical weight following how
much of the query the best lexical hit covers; bench/quality/NOTES.md has the measurements.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, OperationalError

from mcp_server.core.errors import EmbeddingModelMismatch, InvalidInput, SearchTimeout
from mcp_server.embeddings import embedder_for_project
from mcp_server.embeddings.base import Embedder
from mcp_server.embeddings.rerankers import Reranker, RerankError
from mcp_server.index import repositories
from mcp_server.index.search.identifiers import definitions_first, query_identifiers
from mcp_server.index.search.presentation import SearchResponse, assemble, finish
from mcp_server.index.search.query import (
    DEFAULT_CONTEXT_LINES,
    DEFAULT_MAX_CHARS,
    SearchFilters,
    parse_file_types,
    validate_search_args,
)
from mcp_server.index.search.ranking import (
    MIN_CANDIDATES,
    Ranking,
    demote_test_code,
    demoted_definitions,
    fusion_for,
    rerank,
    rrf,
)
from mcp_server.index.search.retrieval import Retriever, Scope

log = logging.getLogger(__name__)

# Candidates a reranker reads per query (CODEBASE_RERANK_CANDIDATES): 40 found more paraphrases but
# cost the numpy transformer twice as long per search (bench/quality/NOTES.md).
DEFAULT_RERANK_CANDIDATES = 20


class Searcher:
    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        *,
        exact_identifiers: bool = True,
        statement_timeout_ms: int = 5000,
        reranker: Reranker | None = None,
        rerank_candidates: int = DEFAULT_RERANK_CANDIDATES,
    ) -> None:
        self._engine = engine
        # Every statement of a search is stopped past this (CODEBASE_SEARCH_TIMEOUT_MS).
        self.statement_timeout_ms = statement_timeout_ms
        self.exact_identifiers = exact_identifiers  # False: the baseline the benchmarks compare with
        self._embedder = embedder
        # Per recorded model id: what embeds queries for a project indexed with it (a project
        # indexed with a static model the package shipped before keeps being read with that one).
        self._project_embedders: dict[str, Embedder] = {}
        self.fusion = fusion_for(embedder)
        self._retriever = Retriever()
        # Opt-in second stage (CODEBASE_RERANKER): re-orders the best `rerank_candidates`.
        self.reranker = reranker
        self.rerank_candidates = max(2, rerank_candidates)

    def search(
        self,
        query: str,
        *,
        project_id: str,
        limit: int = 10,
        mode: str = "hybrid",
        language: str | None = None,
        path: str | None = None,
        file_type: str | Sequence[str] | None = None,
        repository: str | None = None,
        concise: bool = False,
        context_lines: int = DEFAULT_CONTEXT_LINES,
        max_chars: int = DEFAULT_MAX_CHARS,
        rerank: bool | None = None,
    ) -> SearchResponse:
        """`rerank`: None uses the configured reranker in hybrid and semantic mode (lexical mode
        asks for keywords alone); True also in lexical mode, and is refused when none is
        configured; False never."""
        started = time.perf_counter()
        validate_search_args(
            query,
            limit,
            mode,
            language,
            path,
            context_lines=context_lines,
            max_chars=max_chars,
            concise=concise,
        )
        if rerank and self.reranker is None:
            raise InvalidInput(
                "rerank=true needs a reranker, and none is configured (set CODEBASE_RERANKER; see the "
                "README's settings)"
            )
        use_reranker = self.reranker is not None and (rerank or (rerank is None and mode != "lexical"))
        rerank_note: str | None = None  # why the reranker did not (fully) order the results
        reranked = False
        rerank_ms: float | None = None
        filters = SearchFilters(language, path, parse_file_types(file_type))
        empty = SearchResponse([], 0, project_id, mode, 0.0)
        with self._engine.connect() as conn, _bounded(self.statement_timeout_ms):
            conn.execute(text(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}"))
            # A plan costed high enough for JIT compilation would spend more time compiling than running.
            conn.execute(text("SET LOCAL jit = off"))
            model = conn.execute(
                text("SELECT embedding_model, embedding_dimension FROM projects WHERE project_id = :p"),
                {"p": project_id},
            ).one_or_none()
            known = repositories.project_repositories(conn, project_id)
            if model is None or not known:
                return finish(replace(empty, note=f"project {project_id!r} has no index"), started)
            repos = repositories.readable(conn, project_id, repositories.choose(known, repository))
            if not repos:
                note = "no repository of this project has finished indexing yet"
                if repository is not None:
                    note = f"repository {repository!r} has not finished indexing yet"
                return finish(replace(empty, note=note), started)
            dimension = int(model.embedding_dimension)
            embedder = self._embedder_for(model.embedding_model)
            if mode != "lexical" and (model.embedding_model, dimension) != (
                embedder.model_id,
                embedder.dimension,
            ):
                raise EmbeddingModelMismatch(
                    f"project {project_id!r} was indexed with {model.embedding_model!r} but "
                    f"{embedder.model_id!r} is configured; re-index with force_reindex=true, or "
                    "search with mode='lexical'"
                )
            scope = Scope.build(conn, project_id, repos, filters)
            if scope is None:
                empty = replace(empty, note="the filters (language, path, file_type) match no file")
                return finish(_flag_partial(empty, repos), started)
            candidates = max(limit * 3, MIN_CANDIDATES)
            fusion = self.fusion
            ranked: list[tuple[Ranking, float]] = []
            if mode in ("hybrid", "semantic"):
                semantic = self._retriever.semantic(
                    conn, embedder.embed_query(query), dimension, scope, candidates
                )
                ranked.append((semantic, fusion.semantic))
            partial = any(r.partial for r in repos)
            if mode in ("hybrid", "lexical"):
                lexical, coverage = self._retriever.lexical(conn, query, scope, candidates, partial=partial)
                ranked.append((lexical, fusion.lexical_weight(coverage)))
            fused = demote_test_code(conn, rrf(ranked, fusion.k), query)
            if use_reranker:
                rerank_started = time.perf_counter()
                fused, reranked, rerank_note = self._rerank(conn, query, fused)
                rerank_ms = round((time.perf_counter() - rerank_started) * 1000, 2)
            if mode != "semantic" and self.exact_identifiers:
                names = query_identifiers(query)
                if names:
                    matches = self._retriever.definitions(conn, names, scope)
                    fused = definitions_first(fused, matches, demoted=demoted_definitions(matches, query))
            results, truncated = assemble(
                conn,
                fused,
                limit=limit,
                roots={r.id: r.root_path for r in repos},
                partial_ids={r.id for r in repos if r.partial},
                concise=concise,
                context_lines=context_lines,
                max_chars=max_chars,
            )
        why: str | None = None
        if not results and mode == "lexical":
            why = "no indexed chunk in scope holds the query's words; try mode='hybrid' or other words"
        response = SearchResponse(results, len(results), project_id, mode, 0.0, truncated, why)
        if use_reranker and self.reranker is not None:
            if reranked:
                response = replace(response, reranker=self.reranker.name, rerank_ms=rerank_ms)
            if rerank_note is not None:
                note = rerank_note if response.note is None else f"{response.note}; {rerank_note}"
                response = replace(response, note=note)
        return finish(_flag_partial(response, repos), started)

    def _embedder_for(self, recorded_model_id: str) -> Embedder:
        embedder = self._project_embedders.get(recorded_model_id)
        if embedder is None:
            embedder = embedder_for_project(self._embedder, recorded_model_id)
            self._project_embedders[recorded_model_id] = embedder
        return embedder

    def _rerank(
        self, conn: Connection, query: str, fused: list[tuple[int, float]]
    ) -> tuple[list[tuple[int, float]], bool, str | None]:
        """`fused` with its head re-ordered by the reranker, whether it was, and a note: unchanged,
        with the reason, when the reranker fails (the first stage's order is a good answer, an
        error is not); the share reranked when a local reranker ran out of time."""
        assert self.reranker is not None
        head = [chunk_id for chunk_id, _ in fused[: self.rerank_candidates]]
        texts = Retriever.texts(conn, head)
        head = [chunk_id for chunk_id in head if chunk_id in texts]
        if len(head) < 2:
            return fused, False, None
        try:
            scores = self.reranker.scores(query, [texts[chunk_id] for chunk_id in head])
            if len(scores) > len(head):
                raise RerankError(
                    f"the {self.reranker.name} reranker gave {len(scores)} scores for {len(head)} texts"
                )
        except RerankError as exc:
            log.warning("search kept the first stage's order: %s", exc)
            return fused, False, f"reranking skipped: {exc}"
        if len(scores) < 2:
            return (
                fused,
                False,
                "reranking skipped: the reranker reached no candidate within CODEBASE_RERANK_TIMEOUT_MS",
            )
        note = None
        if len(scores) < len(head):
            note = (
                f"reranked the best {len(scores)} of {len(head)} candidates within CODEBASE_RERANK_TIMEOUT_MS"
            )
        scored = dict(zip(head, scores, strict=False))
        return rerank(fused, scored, weight=self.reranker.weight), True, note


def _flag_partial(response: SearchResponse, repos: list[repositories.Repository]) -> SearchResponse:
    """A response read (in part) from a first index still running says so, and how far it got."""
    note = repositories.partial_note(repos)
    if note is None:
        return response
    return replace(
        response,
        partial=True,
        index_percent=repositories.partial_percent(repos),
        note=f"{response.note}; {note}" if response.note else note,
    )


@contextlib.contextmanager
def _bounded(timeout_ms: int) -> Iterator[None]:
    """The database's refusals of a search, as the caller's errors."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled: the statement timeout
            raise SearchTimeout(
                f"the search took longer than {timeout_ms} ms and was stopped; narrow it with a more "
                "specific query, a path, language or file_type filter"
            ) from None
        raise
    except DataError as exc:  # e.g. a regular expression PostgreSQL refuses
        raise InvalidInput(f"invalid search filter: {str(exc.orig).strip().splitlines()[0]}") from None
