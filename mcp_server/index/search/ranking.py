"""How the retrievers' lists become one order: weighted reciprocal rank fusion and test-code demotion."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mcp_server.embeddings.base import Embedder
from mcp_server.index.search import categories
from mcp_server.index.search.identifiers import DefinitionMatch

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


FUSION_PROFILES = {"keywords": STATIC_FUSION, "meaning": MODEL_FUSION}


def fusion_for(embedder: Embedder) -> Fusion:
    """The embedder says which profile suits it (`fusion_profile`: "keywords" for bag-of-token
    vectors); one that does not say is taken to understand meaning."""
    return FUSION_PROFILES.get(getattr(embedder, "fusion_profile", "meaning"), MODEL_FUSION)


_TEST_DIRECTORY = re.compile(categories.TEST_DIRECTORY_RE, re.IGNORECASE)
_TEST_FILE = re.compile(categories.TEST_FILE_RE)
_QUERY_ABOUT_TESTS = re.compile(
    r"\b(tests?|testing|tested|specs?|unittests?|pytest|fixtures?|mocks?)\b", re.IGNORECASE
)
# Fused scores of chunks in test code are multiplied by this unless the query asks about tests:
# an assistant asking where something happens wants the code that does it, and a test that names
# the same things (it calls them, after all) would otherwise often rank first. Tests stay in the
# results, a few places lower; `path='tests/**'` or a query that says "test" finds them first.
TEST_CODE_WEIGHT = 0.6
# Prose (Markdown, reStructuredText, plain text) likewise, unless the query asks for documentation:
# it explains the code in the words a query uses, so it would often outrank the code itself.
DOCS_WEIGHT = 0.6


def is_test_path(path: str) -> bool:
    return bool(_TEST_DIRECTORY.search(path) or _TEST_FILE.search(path))


def demote_test_code(conn: Connection, fused: list[tuple[int, float]], query: str) -> list[tuple[int, float]]:
    """Test code and prose a few places lower, unless the query asks for them."""
    about_tests = bool(_QUERY_ABOUT_TESTS.search(query)) or TEST_CODE_WEIGHT == 1.0
    about_docs = categories.query_about_docs(query) or DOCS_WEIGHT == 1.0
    if not fused or (about_tests and about_docs):
        return fused
    rows = conn.execute(
        text("SELECT id, path, language FROM chunks WHERE id = ANY(:ids)"), {"ids": [i for i, _ in fused]}
    )
    weights: dict[int, float] = {}
    for r in rows:
        if not about_tests and is_test_path(r.path):
            weights[r.id] = TEST_CODE_WEIGHT
        elif not about_docs and categories.is_docs(r.path, r.language):
            weights[r.id] = DOCS_WEIGHT
    if not weights:
        return fused
    weighed = [(i, score * weights.get(i, 1.0)) for i, score in fused]
    return sorted(weighed, key=lambda item: (-item[1], item[0]))


def rrf(rankings: list[tuple[Ranking, float]], k: float) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def demoted_definitions(matches: list[DefinitionMatch], query: str) -> set[int]:
    """Definition chunks that lead only after the others of their tier: test code (unless the
    query is about tests) and documents."""
    about_tests = bool(_QUERY_ABOUT_TESTS.search(query))
    return {
        m.chunk_id
        for m in matches
        if (not about_tests and is_test_path(m.path)) or categories.is_docs(m.path, None)
    }


RERANK_K = 10.0  # reciprocal-rank constant of the rerank fusion (tuned with the reranker weights)


def rerank(
    fused: list[tuple[int, float]], scores: dict[int, float], *, weight: float, k: float = RERANK_K
) -> list[tuple[int, float]]:
    """The reranked candidates (`scores`, chunk id -> reranker score) in a new order, then the rest.

    Each candidate's place is fused from its first-stage rank and its reranker rank, weighted
    1 : `weight`: a reranker that disagrees with strong lexical evidence does not simply overrule
    it, and a bi-encoder's near-ties do not reshuffle the list. Candidates keep scores above every
    chunk the reranker did not see, so the list stays sorted by score.
    """
    if not scores:
        return fused
    first = {chunk_id: rank for rank, (chunk_id, _) in enumerate(fused) if chunk_id in scores}
    by_reranker = sorted(first, key=lambda chunk_id: (-scores[chunk_id], first[chunk_id]))
    combined = {chunk_id: 1.0 / (k + first[chunk_id] + 1) for chunk_id in first}
    for rank, chunk_id in enumerate(by_reranker):
        combined[chunk_id] += weight / (k + rank + 1)
    rest = [(chunk_id, score) for chunk_id, score in fused if chunk_id not in first]
    floor = max((score for _, score in rest), default=0.0)
    head = sorted(first, key=lambda chunk_id: (-combined[chunk_id], first[chunk_id]))
    return [(chunk_id, floor + combined[chunk_id]) for chunk_id in head] + rest
