"""Ranked chunk ids -> results: one per region of a file, with context lines, under a size cap."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

CONCISE_LINES = 3


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
    # From a first index still running (repositories.readable): the file itself is indexed whole,
    # but better matches may not be indexed yet.
    partial: bool = False

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
    note: str | None = None  # why the results are empty, or that they come from a partial index
    # Read (in part) from a first index still running: what it has written so far, and its percent.
    partial: bool = False
    index_percent: float | None = None
    # The reranker that ordered the best candidates (CODEBASE_RERANKER), and what it cost.
    reranker: str | None = None
    rerank_ms: float | None = None


def assemble(
    conn: Connection,
    fused: list[tuple[int, float]],
    *,
    limit: int,
    roots: dict[int, str],
    partial_ids: set[int] | frozenset[int] = frozenset(),
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
                partial=row.repository_id in partial_ids,
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


def finish(response: SearchResponse, started: float) -> SearchResponse:
    latency = round((time.perf_counter() - started) * 1000, 2)
    return replace(response, latency_ms=latency)
