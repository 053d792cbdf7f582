"""Hybrid code search: pgvector (HNSW, cosine) and PostgreSQL full text, fused by reciprocal rank.

Every query is scoped to one project and to each repository's active generation, so neither
another project's rows nor a half-written run can ever be returned.

Lexical ranking is BM25-like rather than plain `ts_rank` over an OR of every query word, for
quality and for speed (design.md section 4: `ts_rank` over an unselective OR query had a p95 of
203 ms at 100,000 rows):
  * each query word is weighted by its inverse document frequency, read from the planner's
    statistics of `search_tsv` (`pg_stats.most_common_elems`, cached), so "median" counts for more
    than "list";
  * only rows holding at least one *selective* word (in at most `SELECTIVE_FRACTION` of the rows)
    are candidates; common words only add to the score of those rows. With no selective word at
    all, every word must match;
  * a word found in the path or symbol (weight A) counts more than one in the body (weight B);
  * at most `LEXICAL_SCAN_CAP` candidates are ranked by one plain `ts_rank`, and only the best
    `LEXICAL_RESCORE_ROWS` get the full per-word score (p95 32 ms for all modes at 105,000
    chunks, bench/search_quality.py --latency).
The indexed text splits identifiers at snake_case, camelCase and letter-digit boundaries and at
punctuation (see `index_store.lexical_text`); the query goes through the same function.

The two lists are fused by weighted reciprocal rank (`Fusion`), the lexical weight following how
much of the query the best lexical hit covers; bench/quality/NOTES.md has the measurements.

Filters (language, path glob or prefix, file type) are resolved to the ids of the matching files
of the active generations first. When they leave few chunks, the vector side ranks those chunks
exactly instead of walking the HNSW graph, so a selective filter still fills `limit` results; a
broad filter is applied to the chunk rows and uses pgvector's iterative index scan.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DataError, OperationalError

from mcp_server import glob_policy
from mcp_server.embeddings import StaticEmbedder
from mcp_server.embeddings.base import Embedder
from mcp_server.errors import EmbeddingModelMismatch, InvalidInput, SearchTimeout
from mcp_server.index_store import (
    TEXT_SEARCH_CONFIG,
    lexical_text,
    vector_expression,
    vector_index_predicate,
    vector_query_cast,
)

SearchMode = Literal["hybrid", "semantic", "lexical"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "semantic", "lexical")
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 100
MAX_CONTEXT_LINES = 20
DEFAULT_CONTEXT_LINES = 3
DEFAULT_MAX_CHARS = 20_000
MIN_MAX_CHARS = 500
MAX_MAX_CHARS = 1_000_000
CONCISE_LINES = 3
LANGUAGE_RE = re.compile(r"^[a-z0-9_+#-]{1,32}$")
_EXTENSION_RE = re.compile(r"^\.?[A-Za-z0-9_+-]{1,16}$")
_GLOB_CHARS = set("*?[")
Ranking = list[tuple[int, float]]  # (chunk id, retriever score), best first

MIN_CANDIDATES = 50  # per retriever, before fusion


@dataclass(frozen=True, slots=True)
class Fusion:
    """Weighted reciprocal rank fusion whose lexical weight follows the lexical evidence.

    score(chunk) = w_lex / (k + lexical rank) + w_sem / (k + semantic rank). `w_lex` goes from
    `lexical_low` to `lexical_high` as the best lexical hit's coverage (the share of the query's
    word weight it contains) goes from `coverage_low` to `coverage_high`: a query whose rare words
    all occur in one chunk is trusted to the keywords, a paraphrase that only shares common words
    with the code is left to the vectors. Tuned on the dev half of bench/quality (NOTES.md there).
    """

    k: float
    lexical_low: float
    lexical_high: float
    coverage_low: float
    coverage_high: float
    semantic: float = 1.0

    def lexical_weight(self, coverage: float) -> float:
        span = self.coverage_high - self.coverage_low
        t = min(1.0, max(0.0, (coverage - self.coverage_low) / span))
        return self.lexical_low + (self.lexical_high - self.lexical_low) * t


# Static (bag-of-token) vectors rank below full-text search on code words, so keywords lead; a
# transformer or an embedding server understands paraphrases, so it leads unless the keywords
# clearly match.
STATIC_FUSION = Fusion(k=10, lexical_low=1.0, lexical_high=4.0, coverage_low=0.4, coverage_high=0.8)
MODEL_FUSION = Fusion(k=30, lexical_low=0.5, lexical_high=3.0, coverage_low=0.5, coverage_high=0.9)


def fusion_for(embedder: Embedder) -> Fusion:
    return STATIC_FUSION if isinstance(embedder, StaticEmbedder) else MODEL_FUSION


# Lexical ranking.
SELECTIVE_FRACTION = 0.05  # a word in more rows than this does not select candidates by itself
LEXICAL_SCAN_CAP = 4000  # matching rows ranked at most per query: bounds the cost of a vague query
LEXICAL_RESCORE_ROWS = 300  # of those, rows given the full IDF-weighted score
MAX_QUERY_TERMS = 12
_LABEL_WEIGHTS = "{0.0, 0.0, 0.7, 1.0}"  # D, C, B (content), A (path and symbol)
_RANK_NORMALIZATION = 1  # ts_rank: divide by 1 + log(length), so long chunks do not win by size
_STATS_TTL_SECONDS = 300.0

# Vector search: rank exactly when filters leave at most this many chunks.
EXACT_SCAN_MAX_ROWS = 5000
# A filter matching more files than this is broad: it is applied to the chunk rows directly (a
# long id list costs more to plan and probe than it saves), and the vector side keeps its index.
MAX_FILTER_FILES = 500


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
    # The lines right before and after the chunk (up to `context_lines` each); `content_truncated`
    # says that `content` holds only its first lines (concise mode or the response-size cap).
    context_before: str = ""
    context_after: str = ""
    content_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class SearchResponse:
    results: list[SearchResult]
    total_count: int
    project_id: str
    mode: str
    latency_ms: float
    truncated: bool = False  # the response-size cap shortened or dropped results


@dataclass(frozen=True, slots=True)
class SearchFilters:
    language: str | None = None
    path: str | None = None
    file_type: tuple[str, ...] = ()

    @property
    def on_files(self) -> bool:
        return self.language is not None or self.path is not None or bool(self.file_type)


def glob_to_regex(pattern: str) -> str:
    """A gitignore-like glob as a PostgreSQL regex anchored at both ends.

    `*` matches within one path segment, `**` across segments, `?` one character; a pattern with
    no glob character is a prefix ("src/api" matches "src/api/x.py").
    """
    if not any(ch in _GLOB_CHARS for ch in pattern):
        return "^" + re.escape(pattern.rstrip("/")) + "(/|$)"
    glob_policy.check_glob(pattern)
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
                out.append(glob_policy.bracket_to_regex(pattern[i + 1 : end], pattern))
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def parse_file_types(file_type: str | Sequence[str] | None) -> tuple[str, ...]:
    """'py', '.py', 'py,pyi' or ['py', 'pyi'] -> ('py', 'pyi'); anything else is refused."""
    if file_type is None:
        return ()
    items = file_type.split(",") if isinstance(file_type, str) else list(file_type)
    cleaned = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if not cleaned or len(cleaned) > 20 or not all(_EXTENSION_RE.fullmatch(item) for item in cleaned):
        raise InvalidInput("file_type must be file extensions such as 'py' or 'ts,tsx'")
    return tuple(dict.fromkeys(item.lstrip(".").lower() for item in cleaned))


def validate_search_args(
    query: str,
    limit: int,
    mode: str,
    language: str | None,
    path: str | None,
    *,
    context_lines: int = DEFAULT_CONTEXT_LINES,
    max_chars: int = DEFAULT_MAX_CHARS,
    concise: bool = False,
) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string describing the code you are looking for")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is longer than {MAX_QUERY_CHARS} characters")
    if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    if language is not None and (not isinstance(language, str) or not LANGUAGE_RE.fullmatch(language)):
        raise InvalidInput(f"language {str(language)[:40]!r} is not a language name such as 'python' or 'go'")
    if path is not None and (
        not isinstance(path, str) or not path or len(path) > 1000 or "\x00" in path or path.startswith("/")
    ):
        raise InvalidInput("path must be a repository-relative glob or prefix such as 'src/**/*.py'")
    if path is not None:
        glob_to_regex(path)  # raises InvalidInput for a glob too complex or malformed
    if not _is_int(context_lines) or not 0 <= context_lines <= MAX_CONTEXT_LINES:
        raise InvalidInput(f"context_lines must be an integer from 0 to {MAX_CONTEXT_LINES}")
    if not _is_int(max_chars) or not MIN_MAX_CHARS <= max_chars <= MAX_MAX_CHARS:
        raise InvalidInput(f"max_chars must be an integer from {MIN_MAX_CHARS} to {MAX_MAX_CHARS}")
    if not isinstance(concise, bool):
        raise InvalidInput("concise must be true or false")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(slots=True)
class _TermStats:
    """Document frequencies of lexemes, from the planner's statistics of chunks.search_tsv."""

    rows: float = 0.0  # rows of the table when it was last analysed; 0: no statistics yet
    frequency: dict[str, float] = field(default_factory=dict)
    floor: float = 0.0  # frequency assumed for a lexeme missing from the list (a rare one)
    loaded_at: float = -math.inf

    def document_frequency(self, lexeme: str) -> float | None:
        """Estimated rows holding `lexeme`; None without statistics."""
        if self.rows <= 0:
            return None
        return self.frequency.get(lexeme, self.floor) * self.rows


class Searcher:
    def __init__(self, engine: Engine, embedder: Embedder, *, statement_timeout_ms: int = 5000) -> None:
        self._engine = engine
        self._embedder = embedder
        # Every statement of a search is stopped past this (CODEBASE_SEARCH_TIMEOUT_MS).
        self.statement_timeout_ms = statement_timeout_ms
        self.fusion = fusion_for(embedder)
        self._stats = _TermStats()
        self._stats_lock = threading.Lock()

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
        concise: bool = False,
        context_lines: int = DEFAULT_CONTEXT_LINES,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> SearchResponse:
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
        filters = SearchFilters(language, path, parse_file_types(file_type))
        try:
            return self._search_within_timeout(
                query, project_id, limit, mode, filters, concise, context_lines, max_chars, started
            )
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) == "57014":  # query_canceled: the statement timeout
                raise SearchTimeout(
                    f"the search took longer than {self.statement_timeout_ms} ms and was stopped; narrow it "
                    "with a more specific query, a path, language or file_type filter"
                ) from None
            raise
        except DataError as exc:  # e.g. a regular expression PostgreSQL refuses
            raise InvalidInput(f"invalid search filter: {str(exc.orig).strip().splitlines()[0]}") from None

    def _search_within_timeout(
        self,
        query: str,
        project_id: str,
        limit: int,
        mode: str,
        filters: SearchFilters,
        concise: bool,
        context_lines: int,
        max_chars: int,
        started: float,
    ) -> SearchResponse:
        empty = SearchResponse([], 0, project_id, mode, 0.0)
        with self._engine.connect() as conn:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}"))
            # A plan costed high enough for JIT compilation would spend more time compiling than running.
            conn.execute(text("SET LOCAL jit = off"))
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
                return _finish(empty, started)
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
            scope = _Scope.build(conn, project_id, repos, filters)
            if scope is None:
                return _finish(empty, started)
            candidates = max(limit * 3, MIN_CANDIDATES)
            fusion = self.fusion
            ranked: list[tuple[Ranking, float]] = []
            if mode in ("hybrid", "semantic"):
                ranked.append((self._semantic(conn, query, dimension, scope, candidates), fusion.semantic))
            if mode in ("hybrid", "lexical"):
                lexical, coverage = self._lexical(conn, query, scope, candidates)
                ranked.append((lexical, fusion.lexical_weight(coverage)))
            fused = _demote_test_code(conn, _rrf(ranked, fusion.k), query)
            results, truncated = _assemble(
                conn,
                fused,
                limit=limit,
                roots={r.id: r.root_path for r in repos},
                concise=concise,
                context_lines=context_lines,
                max_chars=max_chars,
            )
        return _finish(SearchResponse(results, len(results), project_id, mode, 0.0, truncated), started)

    # --- retrievers -----------------------------------------------------------------------------

    def _semantic(self, conn: Connection, query: str, dimension: int, scope: _Scope, k: int) -> Ranking:
        """The k nearest chunks by cosine distance: [(chunk id, cosine similarity)], best first."""
        vector = self._embedder.embed_query(query)
        params = {
            **scope.params,
            "dim": dimension,
            "qv": "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]",
            "k": k,
        }
        if scope.exact:
            # Few rows pass the filters: rank them all. The distance is written without the
            # dimension cast so that the planner cannot pick the HNSW index (which would stop
            # after hnsw.ef_search neighbours and then filter them away).
            sql = (
                "SELECT c.id, c.embedding <=> CAST(:qv AS vector) AS distance FROM chunks c "
                f"WHERE {scope.where} AND c.embedding_dim = :dim ORDER BY distance, c.id LIMIT :k"
            )
        else:
            conn.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            conn.execute(text(f"SET LOCAL hnsw.ef_search = {max(40, min(1000, k * 2))}"))
            if scope.filtered:
                conn.execute(text("SET LOCAL hnsw.max_scan_tuples = 100000"))
            distance = (
                vector_expression(dimension).replace("embedding", "c.embedding")
                + f" <=> CAST(:qv AS {vector_query_cast(dimension)})"
            )
            sql = (
                # The literal predicate lets the planner use the project's partial HNSW index.
                f"SELECT c.id, {distance} AS distance FROM chunks c WHERE {scope.where} "
                f"AND {vector_index_predicate(scope.params['project_id'], dimension)} "
                f"ORDER BY {distance} LIMIT :k"
            )
        rows = conn.execute(text(sql), params).all()
        if len(rows) < k and scope.filtered and not scope.exact:
            # The iterative scan gave up before finding k rows; rank the filtered rows exactly.
            return self._semantic(conn, query, dimension, scope.as_exact(), k)
        return [(r.id, 1.0 - float(r.distance)) for r in rows]

    def _lexical(self, conn: Connection, query: str, scope: _Scope, k: int) -> tuple[Ranking, float]:
        """The k best chunks by weighted word matches, [(chunk id, score)] best first, and the
        coverage of the best one: the share of the query's word weight it contains (0 to 1)."""
        ranking, terms = self._lexical_ranking(conn, query, scope, k)
        if not ranking:
            return ranking, 0.0
        matched = conn.execute(
            text(
                "SELECT "
                + ", ".join(f"c.search_tsv @@ CAST(:t{i} AS tsquery)" for i in range(len(terms)))
                + " FROM chunks c WHERE c.id = :id"
            ),
            {"id": ranking[0][0], **{f"t{i}": _tsquery_literal(t) for i, (t, _, _) in enumerate(terms)}},
        ).one()
        total = sum(weight for _, weight, _ in terms)
        found = sum(weight for (_, weight, _), hit in zip(terms, matched, strict=True) if hit)
        return ranking, found / total if total > 0 else 0.0

    def _lexical_ranking(
        self, conn: Connection, query: str, scope: _Scope, k: int
    ) -> tuple[Ranking, list[tuple[str, float, bool]]]:
        lexemes = conn.execute(
            text(f"SELECT tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', :q))"),
            {"q": lexical_text(query)},
        ).scalar_one()
        if not lexemes:
            return [], []
        stats = self._term_stats(conn)
        terms = _weigh_terms(list(lexemes), stats)[:MAX_QUERY_TERMS]
        selective = [t for t, _, is_selective in terms if is_selective]
        params: dict[str, Any] = {**scope.params, "k": k, "cap": LEXICAL_SCAN_CAP}
        score = []
        for i, (lexeme, weight, _) in enumerate(terms):
            params[f"t{i}"] = _tsquery_literal(lexeme)
            params[f"w{i}"] = weight
            score.append(
                f":w{i} * ts_rank('{_LABEL_WEIGHTS}'::float4[], c.search_tsv, CAST(:t{i} AS tsquery), "
                f"{_RANK_NORMALIZATION})"
            )
        # Three steps, each on fewer rows: at most `cap` matching rows; the best `rescore` of them by
        # one plain ts_rank over all the query's words; those by the IDF-weighted sum of per-word
        # ranks (a ts_rank call per word and row is what makes scoring thousands of rows slow).
        params["any"] = " | ".join(_tsquery_literal(t) for t, _, _ in terms)
        params["rescore"] = max(k, LEXICAL_RESCORE_ROWS)
        sql = (
            f"SELECT id, ({' + '.join(score)}) AS score FROM ("
            " SELECT id, search_tsv FROM ("
            f"  SELECT c.id, c.search_tsv FROM chunks c"
            f"  WHERE {scope.where} AND c.search_tsv @@ CAST(:match AS tsquery) LIMIT :cap"
            f" ) m ORDER BY ts_rank('{_LABEL_WEIGHTS}'::float4[], search_tsv, CAST(:any AS tsquery), "
            f"{_RANK_NORMALIZATION}) DESC LIMIT :rescore"
            ") c ORDER BY score DESC, id LIMIT :k"
        )
        if selective:
            params["match"] = " | ".join(_tsquery_literal(t) for t in selective)
            return [(r.id, float(r.score)) for r in conn.execute(text(sql), params)], terms
        # Only common words: rows with all of them, else rows with any.
        params["match"] = " & ".join(_tsquery_literal(t) for t, _, _ in terms)
        ranked = [(r.id, float(r.score)) for r in conn.execute(text(sql), params)]
        if len(ranked) < k and len(terms) > 1:
            params["match"] = " | ".join(_tsquery_literal(t) for t, _, _ in terms)
            seen = {chunk_id for chunk_id, _ in ranked}
            ranked += [(r.id, float(r.score)) for r in conn.execute(text(sql), params) if r.id not in seen]
        return ranked[:k], terms

    def _term_stats(self, conn: Connection) -> _TermStats:
        now = time.monotonic()
        if now - self._stats.loaded_at < _STATS_TTL_SECONDS:
            return self._stats
        with self._stats_lock:
            if now - self._stats.loaded_at < _STATS_TTL_SECONDS:
                return self._stats
            rows = conn.execute(
                text("SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass")
            ).scalar()
            stats_row = conn.execute(
                text(
                    "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs "
                    "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'chunks' "
                    "AND attname = 'search_tsv'"
                )
            ).one_or_none()
            stats = _TermStats(loaded_at=now)
            if rows and rows > 0 and stats_row is not None and stats_row.elems:
                elems, freqs = list(stats_row.elems), list(stats_row.freqs)
                stats.rows = float(rows)
                stats.frequency = dict(zip(elems, freqs[: len(elems)], strict=True))
                # Lexemes below the cut-off of the list are rarer than its least frequent entry.
                stats.floor = min(freqs[: len(elems)]) / 2
            self._stats = stats
            return stats


def _weigh_terms(lexemes: list[str], stats: _TermStats) -> list[tuple[str, float, bool]]:
    """(lexeme, weight, selective) per query word, rarest first: BM25's inverse document frequency."""
    weighed = []
    for lexeme in dict.fromkeys(lexemes):
        df = stats.document_frequency(lexeme)
        if df is None:
            weighed.append((lexeme, 1.0, True))
            continue
        idf = math.log(1 + (stats.rows - df + 0.5) / (df + 0.5))
        weighed.append((lexeme, max(idf, 0.01), df <= SELECTIVE_FRACTION * stats.rows))
    return sorted(weighed, key=lambda item: -item[1])


def _tsquery_literal(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class _Scope:
    """The WHERE clause every retriever shares: project, active generations, filters."""

    where: str
    params: dict[str, Any]
    filtered: bool
    exact: bool  # few enough rows pass the filters to rank them all by vector distance

    def as_exact(self) -> _Scope:
        return _Scope(self.where, self.params, self.filtered, True)

    @staticmethod
    def build(
        conn: Connection, project_id: str, repos: Sequence[Any], filters: SearchFilters
    ) -> _Scope | None:
        """None when the filters match no file."""
        params: dict[str, Any] = {"project_id": project_id}
        generations = []
        for i, repo in enumerate(repos):
            params[f"r{i}"] = repo.id
            params[f"g{i}"] = repo.active_generation
            generations.append(f"(c.repository_id = :r{i} AND c.gen_from <= :g{i} AND c.gen_to > :g{i})")
        clauses = ["c.project_id = :project_id", "(" + " OR ".join(generations) + ")"]
        if not filters.on_files:
            return _Scope(" AND ".join(clauses), params, False, False)

        file_clauses = []
        if filters.language is not None:
            file_clauses.append("c.language = :language")
            params["language"] = filters.language
        if filters.path is not None:
            file_clauses.append("c.path ~ :path_re")
            params["path_re"] = glob_to_regex(filters.path)
        if filters.file_type:
            file_clauses.append("c.path ~* :type_re")
            params["type_re"] = r"\.(" + "|".join(re.escape(t) for t in filters.file_type) + ")$"
        # The files table has one row per file, not per chunk: filter there first, then select the
        # chunks of the matching files through their index.
        file_ids = [
            r.id
            for r in conn.execute(
                text(
                    "SELECT c.id FROM files c WHERE ("
                    + " OR ".join(generations)
                    + ") AND "
                    + " AND ".join(file_clauses)
                    + f" LIMIT {MAX_FILTER_FILES + 1}"
                ),
                params,
            )
        ]
        if not file_ids:
            return None
        if len(file_ids) > MAX_FILTER_FILES:
            return _Scope(" AND ".join(clauses + file_clauses), params, True, False)
        params["file_ids"] = file_ids
        clauses.append("c.file_id = ANY(:file_ids)")
        rows = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM chunks WHERE file_id = ANY(:file_ids) "
                f"LIMIT {EXACT_SCAN_MAX_ROWS + 1}) s"
            ),
            {"file_ids": file_ids},
        ).scalar_one()
        return _Scope(" AND ".join(clauses), params, True, rows <= EXACT_SCAN_MAX_ROWS)


# Test code: a directory named like a test suite, or a file named like a test in the usual
# conventions (pytest, Go, Jest/Vitest/Jasmine, JUnit, RSpec, minitest, XCTest).
_TEST_DIRECTORY = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testdata|test_?utils)/", re.IGNORECASE)
_TEST_FILE = re.compile(
    r"(^|/)(test_[^/]*|[^/]*_test\.[a-z]+|[^/]*\.(test|spec)\.[a-z]+|conftest\.py|"
    r"[^/]*(Test|Tests|Spec)\.(java|kt|scala|cs|swift|php)|[^/]*_spec\.rb)$"
)
_QUERY_ABOUT_TESTS = re.compile(
    r"\b(tests?|testing|tested|specs?|unittests?|pytest|fixtures?|mocks?)\b", re.IGNORECASE
)
# Fused scores of chunks in test code are multiplied by this unless the query asks about tests:
# an assistant asking where something happens wants the code that does it, and a test that names
# the same things (it calls them, after all) would otherwise often rank first. Tests stay in the
# results, a few places lower; `path='tests/**'` or a query that says "test" finds them first.
TEST_CODE_WEIGHT = 0.6


def is_test_path(path: str) -> bool:
    return bool(_TEST_DIRECTORY.search(path) or _TEST_FILE.search(path))


def _demote_test_code(
    conn: Connection, fused: list[tuple[int, float]], query: str
) -> list[tuple[int, float]]:
    if not fused or TEST_CODE_WEIGHT == 1.0 or _QUERY_ABOUT_TESTS.search(query):
        return fused
    rows = conn.execute(
        text("SELECT id, path FROM chunks WHERE id = ANY(:ids)"), {"ids": [i for i, _ in fused]}
    )
    tests = {r.id for r in rows if is_test_path(r.path)}
    if not tests:
        return fused
    weighed = [(i, score * TEST_CODE_WEIGHT if i in tests else score) for i, score in fused]
    return sorted(weighed, key=lambda item: (-item[1], item[0]))


def _rrf(rankings: list[tuple[Ranking, float]], k: float) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


# --- turning ranked ids into results --------------------------------------------------------------


def _assemble(
    conn: Connection,
    fused: list[tuple[int, float]],
    *,
    limit: int,
    roots: dict[int, str],
    concise: bool,
    context_lines: int,
    max_chars: int,
) -> tuple[list[SearchResult], bool]:
    """The top `limit` results, one per region of a file, with context, under the size cap."""
    chosen: list[tuple[Any, float]] = []
    taken: dict[int, list[tuple[int, int, str | None]]] = {}
    position = 0
    while len(chosen) < limit and position < len(fused):
        batch = fused[position : position + limit * 2]
        position += len(batch)
        rows = _fetch(conn, [chunk_id for chunk_id, _ in batch])
        for chunk_id, score in batch:
            row = rows.get(chunk_id)
            if row is None:
                continue
            regions = taken.setdefault(row.file_id, [])
            if any(_same_region(row, region) for region in regions):
                continue
            regions.append((row.start_line, row.end_line, row.symbol))
            chosen.append((row, score))
            if len(chosen) >= limit:
                break
    context = _context(conn, [row.id for row, _ in chosen], context_lines) if not concise else {}
    results: list[SearchResult] = []
    budget = max_chars
    truncated = False
    for row, score in chosen:
        overhead = 120 + len(row.path) + len(row.symbol or "")
        if budget < overhead:
            truncated = True
            break
        budget -= overhead
        before, after = context.get(row.id, ("", ""))
        content = row.content
        cut = False
        if concise:
            content, cut = _first_lines(content, CONCISE_LINES, budget)
        elif len(content) + len(before) + len(after) > budget:
            before = after = ""
            content, cut = _first_lines(content, content.count("\n") + 1, budget)
            truncated = True
        budget -= len(content) + len(before) + len(after)
        results.append(
            SearchResult(
                file_path=row.path,
                repository=roots[row.repository_id],
                start_line=row.start_line,
                end_line=row.end_line,
                language=row.language,
                symbol=row.symbol,
                kind=row.kind,
                content=content,
                score=round(score, 6),
                context_before=before,
                context_after=after,
                content_truncated=cut,
            )
        )
    return results, truncated


def _same_region(row: Any, region: tuple[int, int, str | None]) -> bool:
    """Overlapping line ranges, or adjacent windows of one long definition."""
    start, end, symbol = region
    if row.start_line <= end and start <= row.end_line:
        return True
    return (
        symbol is not None
        and row.symbol == symbol
        and (row.start_line - end <= 2 or start - row.end_line <= 2)
    )


def _first_lines(content: str, lines: int, budget: int) -> tuple[str, bool]:
    """At most `lines` whole lines of `content` and at most `budget` characters; (text, was it cut)."""
    kept = content.splitlines(keepends=True)[:lines]
    out = "".join(kept)
    while kept and len(out) > budget:
        kept.pop()
        out = "".join(kept)
    return out, out != content


def _fetch(conn: Connection, ids: list[int]) -> dict[int, Any]:
    if not ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT id, file_id, repository_id, path, language, start_line, end_line, symbol, kind, content "
            "FROM chunks WHERE id = ANY(:ids)"
        ),
        {"ids": ids},
    )
    return {r.id: r for r in rows}


def _context(conn: Connection, ids: list[int], lines: int) -> dict[int, tuple[str, str]]:
    """The `lines` lines right before and after each chunk, from its neighbours in the same file row
    (so the same generation). Lines between chunks are blank: the chunker trims them."""
    if not ids or lines <= 0:
        return {}
    rows = conn.execute(
        text(
            "SELECT c.id, c.start_line, c.end_line, p.end_line AS p_end, p.content AS p_content, "
            "n.start_line AS n_start, n.content AS n_content FROM chunks c "
            "LEFT JOIN LATERAL (SELECT end_line, content FROM chunks p WHERE p.file_id = c.file_id "
            "  AND p.end_line < c.start_line ORDER BY p.end_line DESC LIMIT 1) p ON true "
            "LEFT JOIN LATERAL (SELECT start_line, content FROM chunks n WHERE n.file_id = c.file_id "
            "  AND n.start_line > c.end_line ORDER BY n.start_line LIMIT 1) n ON true "
            "WHERE c.id = ANY(:ids)"
        ),
        {"ids": ids},
    )
    out: dict[int, tuple[str, str]] = {}
    for r in rows:
        before: list[str] = []
        if r.p_content is not None:
            before = r.p_content.splitlines() + [""] * (r.start_line - r.p_end - 1)
        after: list[str] = []
        if r.n_content is not None:
            after = [""] * (r.n_start - r.end_line - 1) + r.n_content.splitlines()
        before, after = before[-lines:], after[:lines]
        out[r.id] = (
            "\n".join(before) + "\n" if any(line.strip() for line in before) else "",
            "\n".join(after) + "\n" if any(line.strip() for line in after) else "",
        )
    return out


def _finish(response: SearchResponse, started: float) -> SearchResponse:
    latency = round((time.perf_counter() - started) * 1000, 2)
    return SearchResponse(
        response.results,
        response.total_count,
        response.project_id,
        response.mode,
        latency,
        response.truncated,
    )
