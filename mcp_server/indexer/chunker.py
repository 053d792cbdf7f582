"""Split a file's text into chunks: functions, methods, classes, module code, sections, windows.

Guarantees, whatever the input (checked by property tests):

* chunks are contiguous line ranges, in order, and no line is in two chunks;
* every non-blank line is in a chunk; a chunk starts and ends with a non-blank line;
* a chunk's ``content`` is exactly its lines (split on ``"\\n"`` only, as tree-sitter counts
  rows), each keeping its line break;
* no chunk is longer than ``max_chunk_lines``, nor longer than ``max_chunk_chars`` unless it is
  a single line that is longer by itself (minified code: a line is never cut).

How code is cut (the languages in ``languages.SYNTAX_RULES``): tree-sitter finds the definitions
at module level and inside containers (classes, impls, namespaces...), looking through a few
levels of statements (``if TYPE_CHECKING:``, ``#ifdef``, ``export``) but never into a function.
Each line belongs to the innermost definition around it; a function keeps everything nested in
it, a container keeps its header and the lines between its members (so a class body split by
its methods gives several class pieces), and module code between definitions is its own chunk.
Comments, decorators and attributes directly above a definition belong to it.

Tiny pieces are merged where that keeps the meaning: a piece holding only brackets or ``end``
(with perhaps a comment) joins the chunk before it, so classes leave no ``}``-only chunks; a
container piece of one or two lines (``class Foo:``, ``namespace ns {``, a lone field between
two methods) joins the member that follows it, whose symbol names the container anyway; pieces
with the same label that end up adjacent are merged while they fit. Anything over the size caps
is cut into consecutive windows of even size that keep the symbol, preferring blank lines as
cut points.

Markdown is cut by heading sections (a section with its subsections when it fits), YAML, JSON
and TOML by their keys (small neighbouring keys packed together, big ones split by their own
keys), anything else into line windows.

Parsers are created on first use and cached per thread, so ``chunk_source`` can be called from
worker processes without passing anything unpicklable.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_server.indexer import languages
from mcp_server.indexer import symbols as symbol_table
from mcp_server.indexer.document_regions import data_regions, markdown_regions
from mcp_server.indexer.regions import Lines, Region
from mcp_server.indexer.syntax_regions import NOT_CONTAINERS, parse_code
from mcp_server.indexer.types import Chunk

if TYPE_CHECKING:
    pass

_log = logging.getLogger(__name__)

# Above this size the syntax tree is not worth its cost (generated code); windows instead.
MAX_SYNTAX_CHARS = 2_000_000
# A line made only of brackets and separators, or a block-closing keyword.
_CLOSER_LINE = re.compile(
    r"[\s()\[\]{}>;,]*(?:end|fi|done|esac|endif|endfunction)?[\s()\[\]{}>;,.]*(?:(?://|#).*|/\*.*\*/\s*)?"
)


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    symbol: str | None
    kind: str


@dataclass(frozen=True, slots=True)
class Analysis:
    """What indexing keeps of one file: its chunks and its symbol table."""

    chunks: list[Chunk]
    definitions: list[symbol_table.Definition]
    occurrences: list[tuple[str, list[int]]]


def chunk_source(
    text: str,
    language: str | None,
    *,
    max_chunk_lines: int = 80,
    max_chunk_chars: int = 4000,
    pack_lines: int = 0,
) -> list[Chunk]:
    """Cut ``text`` (a file in ``language``, None when unknown) into chunks; see the module doc.

    With ``pack_lines`` > 0, neighbouring chunks are packed together while the result spans at most
    that many lines (see ``_pack``): fewer, fuller chunks for the index.
    """
    return analyse_source(
        text,
        language,
        max_chunk_lines=max_chunk_lines,
        max_chunk_chars=max_chunk_chars,
        pack_lines=pack_lines,
    ).chunks


def analyse_source(
    text: str,
    language: str | None,
    *,
    max_chunk_lines: int = 80,
    max_chunk_chars: int = 4000,
    pack_lines: int = 0,
    with_symbols: bool = True,
) -> Analysis:
    """``chunk_source``'s chunks, and the file's definitions and identifier occurrences (code only)."""
    if max_chunk_lines < 1 or max_chunk_chars < 1:
        raise ValueError("max_chunk_lines and max_chunk_chars must be positive")
    lines = Lines(text)
    if not lines:
        return Analysis([], [], [])
    last = len(lines) - 1
    regions: list[Region] | None = None
    top_kind = "text"
    definitions: list[symbol_table.Definition] = []
    occurrences: list[tuple[str, list[int]]] = []
    try:
        rules = languages.syntax_rules(language)
        if rules is not None and len(text) <= MAX_SYNTAX_CHARS:
            parsed = parse_code(text, rules)
            if parsed is not None:
                regions, tree = parsed
                top_kind = "module"
                if with_symbols:
                    definitions = symbol_table.definitions(regions)
                    occurrences = symbol_table.occurrences(tree, rules.grammar)
        elif language in languages.MARKUP_LANGUAGES:
            regions = markdown_regions(lines, max_chunk_lines, max_chunk_chars)
        elif (
            language in languages.DATA_LANGUAGES
            and len(text) <= MAX_SYNTAX_CHARS
            and not (len(lines) <= max_chunk_lines and len(text) <= max_chunk_chars)
        ):
            regions = data_regions(text, language, lines, max_chunk_lines, max_chunk_chars)
    except Exception:
        # Why so broad: repositories are untrusted input and one odd file must not stop an
        # index run; line windows are always a correct answer, only a less precise one.
        _log.warning("structural chunking failed for a %s file; using line windows", language, exc_info=True)
        regions, top_kind, definitions, occurrences = None, "text", [], []
    segments: list[_Segment] = []
    _lay_out(0, last, regions or [], None, top_kind, segments)
    chunks = _finish(segments, lines, max_chunk_lines, max_chunk_chars, min(pack_lines, max_chunk_lines))
    return Analysis(chunks, definitions, occurrences)


# ---------------------------------------------------------------------------------------------
# Laying regions out as contiguous segments, then cleaning and capping them
# ---------------------------------------------------------------------------------------------


def _lay_out(
    low: int, high: int, regions: list[Region], symbol: str | None, kind: str, out: list[_Segment]
) -> None:
    """Give every row in low..high to exactly one segment: a region's, or the enclosing label's."""
    position = low
    for region in sorted(regions, key=lambda r: (r.start, -r.end)):
        start = max(region.start, position)
        end = min(region.end, high)
        if start > end:
            continue  # shares its rows with an earlier region (two definitions on one line)
        if start > position:
            out.append(_Segment(position, start - 1, symbol, kind))
        if region.children:
            _lay_out(start, end, region.children, region.symbol, region.kind, out)
        else:
            out.append(_Segment(start, end, region.symbol, region.kind))
        position = end + 1
    if position <= high:
        out.append(_Segment(position, high, symbol, kind))


def _finish(
    segments: list[_Segment], lines: Lines, max_lines: int, max_chars: int, pack_lines: int = 0
) -> list[Chunk]:
    blank = lines.blank
    trimmed: list[_Segment] = []
    for segment in segments:
        start, end = segment.start, segment.end
        while start <= end and blank[start]:
            start += 1
        while end >= start and blank[end]:
            end -= 1
        if start <= end:
            trimmed.append(_Segment(start, end, segment.symbol, segment.kind))

    # Closing-bracket-only pieces join the chunk before them (or after, at the very start).
    merged: list[_Segment] = []
    pending_start: int | None = None
    for segment in trimmed:
        if _is_closer(lines, segment) and (merged or len(trimmed) > 1):
            if merged:
                merged[-1].end = segment.end
            elif pending_start is None:
                pending_start = segment.start
            continue
        if pending_start is not None:
            segment.start = pending_start
            pending_start = None
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous.symbol == segment.symbol
            and previous.kind == segment.kind
            and segment.end - previous.start < max_lines
            and lines.chars(previous.start, segment.end) <= max_chars
        ):
            previous.end = segment.end
        else:
            merged.append(segment)
    if pending_start is not None:  # only closers: keep them as they are
        merged = trimmed
    merged = _join_headers(merged, lines, max_lines, max_chars)
    if pack_lines > 0:
        merged = _pack(merged, lines, pack_lines, max_chars)

    chunks: list[Chunk] = []
    for segment in merged:
        for start, end in _windows(segment.start, segment.end, lines, max_lines, max_chars):
            chunks.append(
                Chunk(
                    start_line=start + 1,
                    end_line=end + 1,
                    content=lines.content(start, end),
                    symbol=segment.symbol,
                    kind=segment.kind,
                )
            )
    return chunks


MAX_PACKED_SYMBOLS = 4


def _pack(segments: list[_Segment], lines: Lines, pack_lines: int, max_chars: int) -> list[_Segment]:
    """Pack neighbouring segments (small methods, getters, constants) while the pack spans at most
    ``pack_lines`` lines and ``max_chars`` characters.

    Why: code is full of three-line definitions, and every chunk costs an embedding, a row and a
    vector-graph node; packed, the index is several times smaller and faster to build, and a hit
    shows its neighbours. The pack keeps the first segment's kind and names up to four symbols.
    """
    packed: list[_Segment] = []
    names: list[list[str]] = []
    for segment in segments:
        previous = packed[-1] if packed else None
        if (
            previous is not None
            and segment.end - previous.start < pack_lines
            and lines.chars(previous.start, segment.end) <= max_chars
        ):
            previous.end = segment.end
            if segment.symbol and segment.symbol not in names[-1]:
                names[-1].append(segment.symbol)
            continue
        packed.append(_Segment(segment.start, segment.end, segment.symbol, segment.kind))
        names.append([segment.symbol] if segment.symbol else [])
    for segment, symbols in zip(packed, names, strict=True):
        if len(symbols) > 1:
            shown = symbols[:MAX_PACKED_SYMBOLS]
            segment.symbol = ", ".join(shown) + (", ..." if len(symbols) > len(shown) else "")
        elif symbols:
            segment.symbol = symbols[0]
    return packed


def _join_headers(segments: list[_Segment], lines: Lines, max_lines: int, max_chars: int) -> list[_Segment]:
    """A container header of one or two lines joins its first member: ``class Foo:`` + ``__init__``.

    The member keeps its symbol (which names the container) and kind; alone, such a header is a
    chunk too small to be worth an embedding.
    """
    joined: list[_Segment] = []
    index = 0
    while index < len(segments):
        segment = segments[index]
        following = segments[index + 1] if index + 1 < len(segments) else None
        if (
            following is not None
            and segment.symbol is not None
            and segment.kind not in NOT_CONTAINERS
            and segment.end - segment.start < 2
            and following.symbol is not None
            and following.symbol.startswith(segment.symbol + ".")
            and following.end - segment.start < max_lines
            and lines.chars(segment.start, following.end) <= max_chars
        ):
            following.start = segment.start
        else:
            joined.append(segment)
        index += 1
    return joined


def _is_closer(lines: Lines, segment: _Segment) -> bool:
    if segment.end - segment.start > 3:
        return False
    return all(
        _CLOSER_LINE.fullmatch(lines.lines[row]) is not None for row in range(segment.start, segment.end + 1)
    )


def _windows(start: int, end: int, lines: Lines, max_lines: int, max_chars: int) -> list[tuple[int, int]]:
    """Cut start..end into windows under the caps, of even length, preferring blank lines as cuts."""
    total_lines = end - start + 1
    if total_lines <= max_lines and lines.chars(start, end) <= max_chars:
        return [(start, end)]
    blank = lines.blank
    target = math.ceil(total_lines / math.ceil(total_lines / max_lines))
    windows: list[tuple[int, int]] = []
    row = start
    while row <= end:
        stop = row  # exclusive end of this window
        limit = min(end + 1, row + target)
        while stop < limit and (stop == row or lines.chars(row, stop) <= max_chars):
            stop += 1
        if stop <= end:
            # Cut at the last blank line in the window's last third, if there is one.
            floor = row + (stop - row) * 2 // 3
            for candidate in range(stop - 1, floor, -1):
                if blank[candidate]:
                    stop = candidate
                    break
        window_end = stop - 1
        while window_end > row and blank[window_end]:
            window_end -= 1
        windows.append((row, window_end))
        row = stop
        while row <= end and blank[row]:
            row += 1
    return windows
