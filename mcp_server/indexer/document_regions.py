"""Document regions: Markdown heading sections; YAML, JSON and TOML keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mcp_server.indexer.regions import Lines, Region
from mcp_server.indexer.syntax_regions import end_row, parser_for, qualify

if TYPE_CHECKING:
    from tree_sitter import Node

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


def markdown_regions(lines: Lines, max_lines: int, max_chars: int) -> list[Region]:
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

    regions: list[Region] = []

    def emit(heading: _Heading, path: str | None) -> None:
        symbol = f"{path} > {heading.title}" if path else heading.title
        symbol = symbol[:300]
        fits = heading.end - heading.row < max_lines and lines.chars(heading.row, heading.end) <= max_chars
        if fits or not heading.children:
            regions.append(Region(heading.row, heading.end, symbol, "section"))
            return
        regions.append(Region(heading.row, heading.children[0].row - 1, symbol, "section"))
        for child in heading.children:
            emit(child, symbol)

    for root in roots:
        emit(root, None)
    return regions


def _markdown_headings(lines: Lines) -> list[_Heading]:
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


# Nodes that are one keyed entry, and nodes looked through to find entries.
_DATA_ENTRY_TYPES = frozenset({"pair", "block_mapping_pair", "table", "table_array_element"})
_DATA_TRANSPARENT_TYPES = frozenset(
    {"document", "object", "block_node", "block_mapping", "stream", "flow_node"}
)


def data_regions(
    text: str, language: str, lines: Lines, max_lines: int, max_chars: int
) -> list[Region] | None:
    try:
        parser = parser_for(language)
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

    def regions_for(nodes: list[Node], path: str | None) -> list[Region]:
        regions: list[Region] = []
        group: list[Node] = []

        def close_group() -> None:
            if not group:
                return
            start, end = _comments_above(int(group[0].start_point.row)), end_row(group[-1])
            symbol = qualify(path, key_of(group[0])) if len(group) == 1 else path
            regions.append(Region(start, end, symbol, "section"))
            group.clear()

        for node in nodes:
            start, end = int(node.start_point.row), end_row(node)
            if not fits(start, end):
                close_group()
                symbol = qualify(path, key_of(node))
                nested = entries(node.child_by_field_name("value") or node)
                if nested:
                    regions.append(Region(start, end, symbol, "section", regions_for(nested, symbol)))
                else:
                    regions.append(Region(start, end, symbol, "section"))
                continue
            if group and not fits(int(group[0].start_point.row), end):
                close_group()
            group.append(node)
        close_group()
        return regions

    return regions_for(entries(tree.root_node), None)
