"""The two retrievers: pgvector nearest neighbours and IDF-weighted PostgreSQL full text.

Lexical ranking is BM25-like rather than plain `ts_rank` over an OR of every query word, for
quality and for speed (design.md section 4: `ts_rank` over an unselective OR query had a p95 of
203 ms at 100,000 rows):
  * each query word is weighted by its inverse document frequency in the project (index/term_stats.py,
    cached; the planner's statistics of the whole table for an index older than those), so
    "median" counts for more than "list", and a project ranks the same whatever else is indexed;
  * only rows holding at least one *selective* word (in at most `SELECTIVE_FRACTION` of the rows)
    are candidates; common words only add to the score of those rows. With no selective word at
    all, every word must match;
  * a word found in the path or symbol (weight A) counts more than one in the body (weight B);
  * at most `LEXICAL_SCAN_CAP` candidates are ranked by one plain `ts_rank`, and only the best
    `LEXICAL_RESCORE_ROWS` get the full per-word score (p95 32 ms for all modes at 105,000
    chunks, bench/search_quality.py --latency).
The indexed text splits identifiers at snake_case, camelCase and letter-digit boundaries and at
punctuation (see `index.lexical_text`); the query goes through the same function.

Filters (language, path glob or prefix, file type) are resolved to the ids of the matching files
of the active generations first (`Scope`). When they leave few chunks, the vector side ranks those
chunks exactly instead of walking the HNSW graph, so a selective filter still fills `limit`
results; a broad filter is applied to the chunk rows and uses pgvector's iterative index scan.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import text
from sqlalchemy.engine import Connection

from mcp_server.index import term_stats
from mcp_server.index.embedding_text import embedding_text
from mcp_server.index.lexical_text import PUNCTUATION_TO_SPACE, lexical_text
from mcp_server.index.repositories import Repository
from mcp_server.index.search import categories
from mcp_server.index.search.identifiers import DefinitionMatch, Identifier, query_identifiers
from mcp_server.index.search.query import SearchFilters, glob_to_regex
from mcp_server.index.search.ranking import Ranking
from mcp_server.index.store import TEXT_SEARCH_CONFIG
from mcp_server.index.term_stats import TermStats
from mcp_server.index.vector_indexes import vector_expression, vector_index_predicate, vector_query_cast

# Lexical ranking.
SELECTIVE_FRACTION = 0.05  # a word in more rows than this does not select candidates by itself
LEXICAL_SCAN_CAP = 4000  # matching rows ranked at most per query: bounds the cost of a vague query
LEXICAL_RESCORE_ROWS = 300  # of those, rows given the full IDF-weighted score
MAX_QUERY_TERMS = 12
# A project with at least this share of all chunks is not narrowed by the scope index (_lexical_scope).
DOMINANT_PROJECT_SHARE = 0.5
_LABEL_WEIGHTS = "{0.0, 0.0, 0.7, 1.0}"  # D, C, B (content), A (path and symbol)
_RANK_NORMALIZATION = 1  # ts_rank: divide by 1 + log(length), so long chunks do not win by size
_STATS_TTL_SECONDS = 300.0
MAX_DEFINITION_ROWS = 500  # definitions of the query's names looked at, at most

# Vector search: rank exactly when filters leave at most this many chunks.
EXACT_SCAN_MAX_ROWS = 5000
# A filter matching more files than this is broad: it is applied to the chunk rows directly (a
# long id list costs more to plan and probe than it saves), and the vector side keeps its index.
MAX_FILTER_FILES = 500


class Retriever:
    """Runs the retrievers inside a caller's connection; caches the lexical statistics."""

    def __init__(self) -> None:
        self._stats: dict[str, tuple[float, TermStats]] = {}  # project -> (loaded at, statistics)
        self._stats_lock = threading.Lock()

    def semantic(
        self, conn: Connection, vector: npt.NDArray[np.float32], dimension: int, scope: Scope, k: int
    ) -> Ranking:
        """The k nearest chunks to the query's vector by cosine distance: [(chunk id, cosine
        similarity)], best first. The caller embeds the query with the project's model."""
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
            return self.semantic(conn, vector, dimension, scope.as_exact(), k)
        return [(r.id, 1.0 - float(r.distance)) for r in rows]

    @staticmethod
    def texts(conn: Connection, chunk_ids: list[int]) -> dict[int, str]:
        """The candidates' text as the indexer embedded it, for a reranker to read."""
        if not chunk_ids:
            return {}
        rows = conn.execute(
            text("SELECT id, path, symbol, content FROM chunks WHERE id = ANY(:ids)"), {"ids": chunk_ids}
        )
        return {r.id: embedding_text(r.path, r.symbol, r.content) for r in rows}

    def definitions(
        self, conn: Connection, identifiers: list[Identifier], scope: Scope
    ) -> list[DefinitionMatch]:
        """The chunks in scope that hold a definition named like one of `identifiers` (by the
        last part; `DefinitionMatch.tier` tells how well the rest matches)."""
        by_name: dict[str, list[Identifier]] = {}
        for identifier in identifiers:
            by_name.setdefault(identifier.name, []).append(identifier)
        rows = conn.execute(
            text(
                "SELECT c.id, s.name, s.qualified_name, c.path FROM symbols s JOIN chunks c "
                "ON c.file_id = s.file_id AND c.start_line <= s.start_line AND s.start_line <= c.end_line "
                f"WHERE {scope.where} AND s.project_id = :project_id AND s.name = ANY(:names) "
                f"ORDER BY c.id LIMIT {MAX_DEFINITION_ROWS}"
            ),
            {**scope.params, "names": list(by_name)},
        )
        return [
            DefinitionMatch(r.id, identifier, r.qualified_name, r.path)
            for r in rows
            for identifier in by_name.get(r.name, [])
        ]

    def lexical(
        self, conn: Connection, query: str, scope: Scope, k: int, *, partial: bool = False
    ) -> tuple[Ranking, float]:
        """The k best chunks by weighted word matches, [(chunk id, score)] best first, and the
        coverage of the best one: the share of the query's word weight it contains (0 to 1).
        `partial`: the scope holds a first index still being written (see `_term_stats`)."""
        ranking, terms = self._lexical_ranking(conn, query, scope, k, partial)
        if not ranking:
            return ranking, 0.0
        matched = conn.execute(
            text(
                "SELECT "
                + ", ".join(f"c.search_tsv @@ CAST(:t{i} AS tsquery)" for i in range(len(terms)))
                + " FROM chunks c WHERE c.id = :id"
            ),
            {"id": ranking[0][0], **{f"t{i}": t for i, (t, _, _) in enumerate(terms)}},
        ).one_or_none()
        if matched is None:
            # Each statement reads the latest commit: a run that published meanwhile has deleted
            # the rows it replaced. The ranking stays (presentation skips vanished rows).
            return ranking, 0.0
        total = sum(weight for _, weight, _ in terms)
        found = sum(weight for (_, weight, _), hit in zip(terms, matched, strict=True) if hit)
        return ranking, found / total if total > 0 else 0.0

    def _lexical_ranking(
        self, conn: Connection, query: str, scope: Scope, k: int, partial: bool
    ) -> tuple[Ranking, list[tuple[str, float, bool]]]:
        lexemes = conn.execute(
            text(f"SELECT tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', :q))"),
            {"q": lexical_text(query)},
        ).scalar_one()
        if not lexemes:
            return [], []
        stats = self._term_stats(conn, scope.params["project_id"], partial)
        terms = _weigh_terms(list(lexemes), stats)[:MAX_QUERY_TERMS]
        terms += _identifier_phrases(conn, query, stats)
        selective = [t for t, _, is_selective in terms if is_selective]
        params: dict[str, Any] = {**scope.params, "k": k, "cap": LEXICAL_SCAN_CAP}
        score = []
        for i, (term, weight, _) in enumerate(terms):
            params[f"t{i}"] = term
            params[f"w{i}"] = weight
            score.append(
                f":w{i} * ts_rank('{_LABEL_WEIGHTS}'::float4[], c.search_tsv, CAST(:t{i} AS tsquery), "
                f"{_RANK_NORMALIZATION})"
            )
        # Three steps, each on fewer rows: at most `cap` matching rows; the best `rescore` of them by
        # one plain ts_rank over all the query's words; those by the IDF-weighted sum of per-word
        # ranks (a ts_rank call per word and row is what makes scoring thousands of rows slow).
        params["any"] = " | ".join(t for t, _, _ in terms)
        params["rescore"] = max(k, LEXICAL_RESCORE_ROWS)
        where = _lexical_scope(conn, scope, stats)
        sql = (
            f"SELECT id, ({' + '.join(score)}) AS score FROM ("
            " SELECT id, search_tsv FROM ("
            f"  SELECT c.id, c.search_tsv FROM chunks c"
            f"  WHERE {where} AND c.search_tsv @@ CAST(:match AS tsquery) LIMIT :cap"
            f" ) m ORDER BY ts_rank('{_LABEL_WEIGHTS}'::float4[], search_tsv, CAST(:any AS tsquery), "
            f"{_RANK_NORMALIZATION}) DESC LIMIT :rescore"
            ") c ORDER BY score DESC, id LIMIT :k"
        )
        # LIMIT :cap invites a sequential scan that stops after `cap` matches, which the planner
        # costs as if matches were spread evenly; they are not (another project's rows, or one
        # repository's, fill whole stretches of the table), and at 1,000,000 chunks such a scan
        # read 200,000 pages for a query the word index answers from 6,000 (bench/million_chunks.py).
        # (A failed statement ends the transaction, and the setting with it.)
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        ranked = self._lexical_candidates(conn, sql, params, terms, selective, k)
        conn.execute(text("SET LOCAL enable_seqscan = on"))
        return ranked

    @staticmethod
    def _lexical_candidates(
        conn: Connection,
        sql: str,
        params: dict[str, Any],
        terms: list[tuple[str, float, bool]],
        selective: list[str],
        k: int,
    ) -> tuple[Ranking, list[tuple[str, float, bool]]]:
        if selective:
            # Rows holding a rare word, and rows holding the two rarest common words together: a
            # rare word the answer lacks ("holds", in "subject that holds a current value") must
            # not hide the rows that hold the rest of the query.
            common = [t for t, _, is_selective in terms if not is_selective][:2]
            pair = [f"({common[0]} & {common[1]})"] if len(common) == 2 else []
            params["match"] = " | ".join(selective + pair)
            return [(r.id, float(r.score)) for r in conn.execute(text(sql), params)], terms
        # Only common words: rows with all of them, else rows with any.
        params["match"] = " & ".join(t for t, _, _ in terms)
        ranked = [(r.id, float(r.score)) for r in conn.execute(text(sql), params)]
        if len(ranked) < k and len(terms) > 1:
            params["match"] = " | ".join(t for t, _, _ in terms)
            seen = {chunk_id for chunk_id, _ in ranked}
            ranked += [(r.id, float(r.score)) for r in conn.execute(text(sql), params) if r.id not in seen]
        return ranked[:k], terms

    def _term_stats(self, conn: Connection, project_id: str, partial: bool = False) -> TermStats:
        if partial:
            # A first index still running: the project's statistics are not computed yet (they are
            # after publishing) or describe only its other repositories, and the fallback describes
            # the table as it was a moment ago. Read them each time and keep none, so nothing
            # computed for an incomplete generation outlives it in the cache.
            return term_stats.load(conn, project_id) or _table_stats(conn)
        now = time.monotonic()
        cached = self._stats.get(project_id)
        if cached is not None and now - cached[0] < _STATS_TTL_SECONDS:
            return cached[1]
        with self._stats_lock:
            stats = term_stats.load(conn, project_id) or _table_stats(conn)
            self._stats[project_id] = (now, stats)
            return stats


def _lexical_scope(conn: Connection, scope: Scope, stats: TermStats) -> str:
    """The scope's WHERE clause for the word index's candidates.

    When the project holds most of the table, the planner still ANDs the word index's bitmap
    with one of `ix_chunks_project_repo_gen` over all the project's rows: at 1,000,000 chunks
    that index scan alone took 45 to 50 ms of a 90 ms search, to rule out almost nothing. Then
    the clause is written so that no index can serve it (`IS TRUE`), and the rows the word index
    finds are checked against it as they are read. A project that is a small part of the table,
    or a filter on a few files (`ix_chunks_file`), keeps the plain clause.
    """
    if "file_ids" in scope.params or stats.rows <= 0:
        return scope.where
    table_rows = _chunk_table_rows(conn)
    if table_rows is None or stats.rows < DOMINANT_PROJECT_SHARE * table_rows:
        return scope.where
    return f"({scope.where}) IS TRUE"


def _chunk_table_rows(conn: Connection) -> float | None:
    """The planner's row count of `chunks`; None while unknown (reltuples is -1 for a table never
    analyzed or vacuumed)."""
    rows = conn.execute(text("SELECT reltuples FROM pg_class WHERE oid = 'chunks'::regclass")).scalar()
    return float(rows) if rows and rows > 0 else None


def _table_stats(conn: Connection) -> TermStats:
    """The whole table's statistics from the planner: for a project indexed before per-project
    statistics existed, until its next index run computes them."""
    rows = _chunk_table_rows(conn)
    stats_row = conn.execute(
        text(
            "SELECT most_common_elems::text::text[] AS elems, most_common_elem_freqs AS freqs "
            "FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'chunks' "
            "AND attname = 'search_tsv'"
        )
    ).one_or_none()
    stats = TermStats()
    if rows is not None and stats_row is not None and stats_row.elems:
        elems, freqs = list(stats_row.elems), list(stats_row.freqs)
        stats.rows = rows
        stats.frequency = dict(zip(elems, freqs[: len(elems)], strict=True))
        # Lexemes below the cut-off of the list are rarer than its least frequent entry.
        stats.floor = min(freqs[: len(elems)]) / 2
    return stats


def _weigh_terms(lexemes: list[str], stats: TermStats) -> list[tuple[str, float, bool]]:
    """(tsquery, weight, selective) per query word, rarest first: BM25's inverse document frequency."""
    weighed = []
    for lexeme in dict.fromkeys(lexemes):
        df = stats.document_frequency(lexeme)
        if df is None:
            weighed.append((_tsquery_literal(lexeme), 1.0, True))
            continue
        idf = math.log(1 + (stats.rows - df + 0.5) / (df + 0.5))
        weighed.append((_tsquery_literal(lexeme), max(idf, 0.01), df <= SELECTIVE_FRACTION * stats.rows))
    return sorted(weighed, key=lambda item: -item[1])


def _identifier_phrases(conn: Connection, query: str, stats: TermStats) -> list[tuple[str, float, bool]]:
    """(tsquery, weight, selective) per identifier of the query that the index holds as several
    words in a row: `RUST_LIB_BACKTRACE`, `make_password`, `os.path.join`, `URLResolver.resolve`.

    Its words alone also match every chunk that uses them apart (`make_token` and a `password`
    elsewhere); the phrase counts only the name itself, with the weight of all its words. It also
    selects candidates, even when each of its words is common (`RUST_LIB_BACKTRACE` in a crate
    about backtraces): the rows it adds hold all its words in a row, a narrow set.
    """
    phrases: list[tuple[str, float, bool]] = []
    for identifier in query_identifiers(query):
        spaced = identifier.text.translate(PUNCTUATION_TO_SPACE)
        row = conn.execute(
            text(
                f"SELECT phraseto_tsquery('{TEXT_SEARCH_CONFIG}', :t)::text AS phrase, "
                f"tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', :t)) AS lexemes"
            ),
            {"t": spaced},
        ).one()
        if not row.phrase or "<->" not in row.phrase:
            continue
        weight = sum(weight for _, weight, _ in _weigh_terms(list(row.lexemes), stats))
        phrases.append((f"({row.phrase})", weight, True))
    return phrases


def _tsquery_literal(lexeme: str) -> str:
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class Scope:
    """The WHERE clause every retriever shares: project, the generation read of each repository
    (`Repository.generation`), filters."""

    where: str
    params: dict[str, Any]
    filtered: bool
    exact: bool  # few enough rows pass the filters to rank them all by vector distance

    def as_exact(self) -> Scope:
        return Scope(self.where, self.params, self.filtered, True)

    @staticmethod
    def build(
        conn: Connection, project_id: str, repos: Sequence[Repository], filters: SearchFilters
    ) -> Scope | None:
        """None when the filters match no file."""
        params: dict[str, Any] = {"project_id": project_id}
        generations = []
        for i, repo in enumerate(repos):
            params[f"r{i}"] = repo.id
            params[f"g{i}"] = repo.generation
            generations.append(f"(c.repository_id = :r{i} AND c.gen_from <= :g{i} AND c.gen_to > :g{i})")
        clauses = ["c.project_id = :project_id", "(" + " OR ".join(generations) + ")"]
        if not filters.on_files:
            return Scope(" AND ".join(clauses), params, False, False)

        file_clauses = []
        if filters.language is not None:
            file_clauses.append("c.language = :language")
            params["language"] = filters.language
        if filters.path is not None:
            file_clauses.append("c.path ~ :path_re")
            params["path_re"] = glob_to_regex(filters.path)
        if filters.file_type:
            # Extensions and categories (code, docs, tests, config): a file matching any of them.
            kinds = [categories.category_clause(t) for t in filters.file_type if t in categories.CATEGORIES]
            extensions = [t for t in filters.file_type if t not in categories.CATEGORIES]
            if extensions:
                kinds.append("c.path ~* :type_re")
                params["type_re"] = r"\.(" + "|".join(re.escape(t) for t in extensions) + ")$"
            file_clauses.append("(" + " OR ".join(kinds) + ")")
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
            return Scope(" AND ".join(clauses + file_clauses), params, True, False)
        params["file_ids"] = file_ids
        clauses.append("c.file_id = ANY(:file_ids)")
        rows = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM chunks WHERE file_id = ANY(:file_ids) "
                f"LIMIT {EXACT_SCAN_MAX_ROWS + 1}) s"
            ),
            {"file_ids": file_ids},
        ).scalar_one()
        return Scope(" AND ".join(clauses), params, True, rows <= EXACT_SCAN_MAX_ROWS)
