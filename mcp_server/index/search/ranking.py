"""How the retrievers' lists become one order: weighted reciprocal rank fusion and test-code demotion."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from mcp_server.embeddings import StaticEmbedder
from mcp_server.embeddings.base import Embedder
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


def fusion_for(embedder: Embedder) -> Fusion:
    return STATIC_FUSION if isinstance(embedder, StaticEmbedder) else MODEL_FUSION


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


def demote_test_code(conn: Connection, fused: list[tuple[int, float]], query: str) -> list[tuple[int, float]]:
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


def rrf(rankings: list[tuple[Ranking, float]], k: float) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking, weight in rankings:
        for rank, (chunk_id, _) in enumerate(ranking):
            scores[chunk_id] = scores.get(chunk_id, 0.0) + weight / (k + rank + 1)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def demoted_definitions(matches: list[DefinitionMatch], query: str) -> set[int]:
    """Definition chunks that lead only after the others of their tier: test code (unless the
    query is about tests)."""
    if _QUERY_ABOUT_TESTS.search(query):
        return set()
    return {m.chunk_id for m in matches if is_test_path(m.path)}
