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

import itertools
import logging
import math
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_server.indexing import languages
from mcp_server.indexing.types import Chunk

if TYPE_CHECKING:
    from tree_sitter import Node, Parser

_log = logging.getLogger(__name__)

# Above this size the syntax tree is not worth its cost (generated code); windows instead.
MAX_SYNTAX_CHARS = 2_000_000
# Statement levels looked through for definitions below module level or a container's body.
_SEARCH_DEPTH = 3

_NAME_NODE_TYPES = frozenset(
    {
        "identifier",
        "type_identifier",
        "simple_identifier",
        "field_identifier",
        "property_identifier",
        "constant",
        "name",
        "word",
        "qualified_identifier",
        "scoped_identifier",
        "scope_resolution",
        "operator_name",
        "destructor_name",
        "namespace_identifier",
    }
)
_FUNCTION_VALUE_TYPES = frozenset({"arrow_function", "function_expression", "function", "generator_function"})
_TYPE_ARGUMENTS = re.compile(r"<[^<>]*>")
_QUALIFIER_SEPARATORS = re.compile(r"::|\\|->|#")
_NOT_CONTAINERS = languages.FUNCTION_KINDS | {"module", "text", "section"}
# A line made only of brackets and separators, or a block-closing keyword.
_CLOSER_LINE = re.compile(
    r"[\s()\[\]{}>;,]*(?:end|fi|done|esac|endif|endfunction)?[\s()\[\]{}>;,.]*(?:(?://|#).*|/\*.*\*/\s*)?"
)


@dataclass(slots=True)
class _Region:
    """A definition (or section) found in the text: rows are 0-based and inclusive."""

    start: int
    end: int
    symbol: str | None
    kind: str
    children: list[_Region] = field(default_factory=list)


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    symbol: str | None
    kind: str


class _Lines:
    """The text's lines with their breaks, and prefix sums of their lengths for O(1) sizes."""

    __slots__ = ("blank", "lines", "offsets")

    def __init__(self, text: str) -> None:
        parts = text.split("\n")
        lines = [part + "\n" for part in parts[:-1]]
        if parts[-1]:
            lines.append(parts[-1])
        self.lines = lines
        self.blank = [line.isspace() for line in lines]  # every line is non-empty
        self.offsets = [0, *itertools.accumulate(map(len, lines))]

    def __len__(self) -> int:
        return len(self.lines)

    def chars(self, start: int, end: int) -> int:
        return self.offsets[end + 1] - self.offsets[start]

    def content(self, start: int, end: int) -> str:
        return "".join(self.lines[start : end + 1])


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
    if max_chunk_lines < 1 or max_chunk_chars < 1:
        raise ValueError("max_chunk_lines and max_chunk_chars must be positive")
    lines = _Lines(text)
    if not lines:
        return []
    last = len(lines) - 1
    regions: list[_Region] | None = None
    top_kind = "text"
    try:
        rules = languages.syntax_rules(language)
        if rules is not None and len(text) <= MAX_SYNTAX_CHARS:
            regions = _code_regions(text, rules)
            if regions is not None:
                top_kind = "module"
        elif language in languages.MARKUP_LANGUAGES:
            regions = _markdown_regions(lines, max_chunk_lines, max_chunk_chars)
        elif (
            language in languages.DATA_LANGUAGES
            and len(text) <= MAX_SYNTAX_CHARS
            and not (len(lines) <= max_chunk_lines and len(text) <= max_chunk_chars)
        ):
            regions = _data_regions(text, language, lines, max_chunk_lines, max_chunk_chars)
    except Exception:
        # Why so broad: repositories are untrusted input and one odd file must not stop an
        # index run; line windows are always a correct answer, only a less precise one.
        _log.warning("structural chunking failed for a %s file; using line windows", language, exc_info=True)
        regions, top_kind = None, "text"
    segments: list[_Segment] = []
    _lay_out(0, last, regions or [], None, top_kind, segments)
    return _finish(segments, lines, max_chunk_lines, max_chunk_chars, min(pack_lines, max_chunk_lines))


# ---------------------------------------------------------------------------------------------
# Laying regions out as contiguous segments, then cleaning and capping them
# ---------------------------------------------------------------------------------------------


def _lay_out(
    low: int, high: int, regions: list[_Region], symbol: str | None, kind: str, out: list[_Segment]
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
    segments: list[_Segment], lines: _Lines, max_lines: int, max_chars: int, pack_lines: int = 0
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


def _pack(segments: list[_Segment], lines: _Lines, pack_lines: int, max_chars: int) -> list[_Segment]:
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


def _join_headers(segments: list[_Segment], lines: _Lines, max_lines: int, max_chars: int) -> list[_Segment]:
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
            and segment.kind not in _NOT_CONTAINERS
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


def _is_closer(lines: _Lines, segment: _Segment) -> bool:
    if segment.end - segment.start > 3:
        return False
    return all(
        _CLOSER_LINE.fullmatch(lines.lines[row]) is not None for row in range(segment.start, segment.end + 1)
    )


def _windows(start: int, end: int, lines: _Lines, max_lines: int, max_chars: int) -> list[tuple[int, int]]:
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


# ---------------------------------------------------------------------------------------------
# Code: definitions from the tree-sitter tree
# ---------------------------------------------------------------------------------------------

_local = threading.local()


def _parser(grammar: str) -> Parser:
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = {}
        _local.parsers = parsers
    parser = parsers.get(grammar)
    if parser is None:
        from tree_sitter_language_pack import get_parser

        parser = get_parser(grammar)  # type: ignore[arg-type]  # our names are checked by tests
        parsers[grammar] = parser
    return parser


def _code_regions(text: str, rules: languages.SyntaxRules) -> list[_Region] | None:
    """The definitions in ``text``, nested; None when the grammar cannot be loaded."""
    try:
        parser = _parser(rules.grammar)
    except (LookupError, ImportError, OSError, ValueError):
        return None
    source = text.encode("utf-8", "surrogatepass")
    tree = parser.parse(source)
    finder = _DefinitionFinder(rules)
    regions: list[_Region] = []
    finder.search(tree.root_node, None, None, _SEARCH_DEPTH, regions)
    return regions


class _DefinitionFinder:
    """Walks statement-level nodes only: module level, container bodies, a few blocks deep."""

    def __init__(self, rules: languages.SyntaxRules) -> None:
        self.rules = rules

    def search(
        self, node: Node, container: str | None, container_kind: str | None, depth: int, out: list[_Region]
    ) -> None:
        rules = self.rules
        for child in node.named_children:
            definition = self.definition(child)
            if definition is None:
                if depth > 0 and (
                    child.end_point.row > child.start_point.row or child.type in rules.wrappers
                ):
                    self.search(child, container, container_kind, depth - 1, out)
                continue
            outer, inner, kind = definition
            name = _definition_name(inner)
            if kind in languages.FUNCTION_KINDS:
                if container_kind is not None and container_kind not in languages.NAMESPACE_KINDS:
                    kind = "method"
                elif kind == "method" and inner.child_by_field_name("receiver") is None:
                    kind = "function"  # JavaScript object-literal methods at module level
            symbol = _qualify(container, name)
            region = _Region(_leading_start(outer), _end_row(outer), symbol, kind)
            out.append(region)
            if kind not in languages.FUNCTION_KINDS:
                self.search(inner, symbol, kind, _SEARCH_DEPTH, region.children)

    def definition(self, node: Node) -> tuple[Node, Node, str] | None:
        """(outer node, definition node, kind) when ``node`` is a definition or wraps one."""
        rules = self.rules
        node_type = node.type
        field_name = rules.wrappers.get(node_type, "")
        if field_name != "":
            inner = node.child_by_field_name(field_name) if field_name else _last_named_child(node)
            if inner is None:
                return None
            found = self.definition(inner)
            if found is None:
                return None
            return node, found[1], found[2]
        kind = rules.definitions.get(node_type)
        if kind is None:
            return None
        if node_type in rules.requires_body and not _has_body(node):
            return None
        if node_type in rules.value_definitions and not _defines_function(node):
            return None
        refined = _refine_kind(node, kind)
        if refined is None:
            return None
        return node, node, refined


def _last_named_child(node: Node) -> Node | None:
    count = node.named_child_count
    return node.named_child(count - 1) if count else None


def _has_body(node: Node) -> bool:
    if node.child_by_field_name("body") is not None:
        return True
    return any(child.type == "function_body" for child in node.named_children)


def _defines_function(node: Node) -> bool:
    value = node.child_by_field_name("value")  # class fields: handle = (event) => {...}
    if value is not None:
        return value.type in _FUNCTION_VALUE_TYPES
    for declarator in node.named_children:
        if declarator.type == "variable_declarator":
            value = declarator.child_by_field_name("value")
            if value is not None and value.type in _FUNCTION_VALUE_TYPES:
                return True
    return False


def _refine_kind(node: Node, kind: str) -> str | None:
    """Kinds that the node type alone does not tell; None when it is no definition after all."""
    node_type = node.type
    if node_type == "type_declaration":  # Go: only struct and interface types are definitions
        spec = node.named_child(0)
        value = spec.child_by_field_name("type") if spec is not None else None
        if value is None:
            return None
        return {"struct_type": "struct", "interface_type": "interface"}.get(value.type)
    if node_type == "class_declaration":
        declaration_kind = node.child_by_field_name("declaration_kind")  # Swift
        if declaration_kind is not None:
            return declaration_kind.type
        for child in node.children:  # Kotlin: "interface I", "enum class E"
            if not child.is_named and child.type in ("interface", "enum"):
                return child.type
    return kind


def _definition_name(node: Node) -> str | None:
    name = node.child_by_field_name("name")
    if name is None:
        name = _declarator_name(node)
    if name is None:
        node_type = node.type
        if node_type == "impl_item":  # Rust: impl [Trait for] Type
            name = node.child_by_field_name("type")
        elif node_type in ("lexical_declaration", "variable_declaration"):
            for declarator in node.named_children:
                if declarator.type == "variable_declarator":
                    name = declarator.child_by_field_name("name")
                    break
        elif node_type == "type_declaration":  # Go
            spec = node.named_child(0)
            name = spec.child_by_field_name("name") if spec is not None else None
        else:
            for child in node.named_children:
                if child.type in _NAME_NODE_TYPES or child.type == "user_type":
                    name = child
                    break
    if name is None and node.type == "deinit_declaration":  # Swift
        return "deinit"
    if name is None:
        parent = node.parent
        if parent is not None and parent.type == "type_definition":  # typedef struct {...} Name;
            name = _declarator_name(parent)
    if name is None:
        return None
    text = _clean_name(name.text or b"")
    receiver = node.child_by_field_name("receiver")  # Go: func (s *Server) Start()
    if receiver is not None:
        receiver_type = _receiver_type(receiver)
        if receiver_type:
            text = f"{receiver_type}.{text}"
    return text or None


def _declarator_name(node: Node) -> Node | None:
    declarator = node.child_by_field_name("declarator")
    for _ in range(16):
        if declarator is None or declarator.type in _NAME_NODE_TYPES:
            return declarator
        nested = declarator.child_by_field_name("declarator")
        if nested is None and declarator.named_child_count:
            nested = declarator.named_child(0)  # parenthesized_declarator
        declarator = nested
    return None


def _receiver_type(receiver: Node) -> str | None:
    stack = [receiver]
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _clean_name(current.text or b"")
        stack.extend(reversed(current.named_children))
    return None


def _clean_name(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    for _ in range(4):
        stripped = _TYPE_ARGUMENTS.sub("", text)
        if stripped == text:
            break
        text = stripped
    text = _QUALIFIER_SEPARATORS.sub(".", "".join(text.split()))
    return text.strip(".\"'`")[:200]


def _qualify(container: str | None, name: str | None) -> str | None:
    if container is None:
        return name
    if name is None:
        return container
    return f"{container}.{name}"


def _end_row(node: Node) -> int:
    """The last row holding the node's text (a node ending at column 0 ends on the row before)."""
    end = node.end_point
    if end.column == 0 and end.row > node.start_point.row:
        return int(end.row) - 1
    return int(end.row)


def _leading_start(node: Node) -> int:
    """The first row of the comments and attributes directly above ``node`` (no blank line between)."""
    start = int(node.start_point.row)
    current = node
    while True:
        previous = current.prev_sibling
        if previous is None or previous.type not in languages.LEADING_NODE_TYPES:
            return start
        if _end_row(previous) < start - 1:
            return start  # a blank line between: a comment about something else
        before = previous.prev_sibling
        if before is not None and _end_row(before) >= previous.start_point.row:
            return start  # a trailing comment of the line before
        if previous.start_point.row == 0 and (previous.text or b"").startswith(b"#!"):
            return start
        start = int(previous.start_point.row)
        current = previous


# ---------------------------------------------------------------------------------------------
# Markdown: heading sections
# ---------------------------------------------------------------------------------------------

_ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t#]*\n?")
_SETEXT_UNDERLINE = re.compile(r" {0,3}(=+|-+)[ \t]*\n?")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
# Lines that cannot be the text of a setext heading: code, quotes, tables, list items.
_NOT_PARAGRAPH = re.compile(r"(?: {4}|\t| {0,3}(?:[>|]|[-*+][ \t]|\d{1,9}[.)][ \t]))")


@dataclass(slots=True)
class _Heading:
    row: int
    level: int
    title: str
    end: int = 0
    children: list[_Heading] = field(default_factory=list)


def _markdown_regions(lines: _Lines, max_lines: int, max_chars: int) -> list[_Region]:
    headings = _markdown_headings(lines)
    last = len(lines) - 1
    roots: list[_Heading] = []
    stack: list[_Heading] = []
    for heading in headings:
        while stack and stack[-1].level >= heading.level:
            stack.pop().end = heading.row - 1
        (stack[-1].children if stack else roots).append(heading)
        stack.append(heading)
    for heading in stack:
        heading.end = last

    regions: list[_Region] = []

    def emit(heading: _Heading, path: str | None) -> None:
        symbol = f"{path} > {heading.title}" if path else heading.title
        symbol = symbol[:300]
        fits = heading.end - heading.row < max_lines and lines.chars(heading.row, heading.end) <= max_chars
        if fits or not heading.children:
            regions.append(_Region(heading.row, heading.end, symbol, "section"))
            return
        regions.append(_Region(heading.row, heading.children[0].row - 1, symbol, "section"))
        for child in heading.children:
            emit(child, symbol)

    for root in roots:
        emit(root, None)
    return regions


def _markdown_headings(lines: _Lines) -> list[_Heading]:
    headings: list[_Heading] = []
    text_lines = lines.lines
    fence: str | None = None
    row = 0
    if text_lines and text_lines[0].rstrip() == "---":  # front matter
        for end in range(1, len(text_lines)):
            if text_lines[end].rstrip() in ("---", "..."):
                row = end + 1
                break
    previous_is_text = False
    while row < len(text_lines):
        line = text_lines[row]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match is not None
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
            row += 1
            continue
        if fence_match is not None:
            fence = fence_match.group(1)
            previous_is_text = False
            row += 1
            continue
        atx = _ATX_HEADING.fullmatch(line)
        if atx is not None:
            headings.append(_Heading(row, len(atx.group(1)), (atx.group(2) or "").strip()))
            previous_is_text = False
        elif previous_is_text and _SETEXT_UNDERLINE.fullmatch(line) is not None:
            level = 1 if line.lstrip()[0] == "=" else 2
            headings.append(_Heading(row - 1, level, text_lines[row - 1].strip()))
            previous_is_text = False
        else:
            previous_is_text = bool(line.strip()) and _NOT_PARAGRAPH.match(line) is None
        row += 1
    return headings


# ---------------------------------------------------------------------------------------------
# YAML, JSON, TOML: keys
# ---------------------------------------------------------------------------------------------

# Nodes that are one keyed entry, and nodes looked through to find entries.
_DATA_ENTRY_TYPES = frozenset({"pair", "block_mapping_pair", "table", "table_array_element"})
_DATA_TRANSPARENT_TYPES = frozenset(
    {"document", "object", "block_node", "block_mapping", "stream", "flow_node"}
)


def _data_regions(
    text: str, language: str, lines: _Lines, max_lines: int, max_chars: int
) -> list[_Region] | None:
    try:
        parser = _parser(language)
    except (LookupError, ImportError, OSError, ValueError):
        return None
    tree = parser.parse(text.encode("utf-8", "surrogatepass"))

    def fits(start: int, end: int) -> bool:
        return end - start < max_lines and lines.chars(start, end) <= max_chars

    def _comments_above(row: int) -> int:
        while row > 0 and lines.lines[row - 1].lstrip().startswith(("#", "//")):
            row -= 1
        return row

    def entries(node: Node) -> list[Node]:
        found: list[Node] = []
        for child in node.named_children:
            if child.type in _DATA_ENTRY_TYPES:
                found.append(child)
            elif child.type in _DATA_TRANSPARENT_TYPES:
                found.extend(entries(child))
        return found

    def key_of(entry: Node) -> str:
        key = entry.child_by_field_name("key")
        if key is None and entry.type in ("table", "table_array_element", "pair"):
            key = entry.named_child(0)
        if key is None:
            return "?"
        return (key.text or b"").decode("utf-8", "replace").strip().strip("\"'")[:100]

    def regions_for(nodes: list[Node], path: str | None) -> list[_Region]:
        regions: list[_Region] = []
        group: list[Node] = []

        def close_group() -> None:
            if not group:
                return
            start, end = _comments_above(int(group[0].start_point.row)), _end_row(group[-1])
            symbol = _qualify(path, key_of(group[0])) if len(group) == 1 else path
            regions.append(_Region(start, end, symbol, "section"))
            group.clear()

        for node in nodes:
            start, end = int(node.start_point.row), _end_row(node)
            if not fits(start, end):
                close_group()
                symbol = _qualify(path, key_of(node))
                nested = entries(node.child_by_field_name("value") or node)
                if nested:
                    regions.append(_Region(start, end, symbol, "section", regions_for(nested, symbol)))
                else:
                    regions.append(_Region(start, end, symbol, "section"))
                continue
            if group and not fits(int(group[0].start_point.row), end):
                close_group()
            group.append(node)
        close_group()
        return regions

    return regions_for(entries(tree.root_node), None)
