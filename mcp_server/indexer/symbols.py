"""The symbol table of one file: its definitions and the lines each identifier occurs on.

Both come from the parse the chunker already does. Definitions are the chunker's code regions
(qualified name, kind, container, line range, signature). Occurrences are the identifier nodes
of the syntax tree, found by a tree-sitter query (in C, not a Python walk over every node); an
identifier inside a comment or a string literal is no identifier node, so it is not counted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp_server.indexer.regions import Region

if TYPE_CHECKING:
    from tree_sitter import Language, Query, Tree

# Node types that name something, in the grammars we chunk (each grammar has a subset).
IDENTIFIER_NODE_TYPES = (
    "identifier",
    "type_identifier",
    "field_identifier",
    "property_identifier",
    "shorthand_property_identifier",
    "simple_identifier",
    "constant",
    "name",
    "namespace_identifier",
    "package_identifier",
)
# Receivers named on almost every line of a method: their occurrences are noise, not references.
_SKIPPED_NAMES = frozenset({"self", "cls", "this", "super"})
MAX_NAME_CHARS = 200
MAX_LINES_PER_NAME = 10_000

_local = threading.local()


@dataclass(frozen=True, slots=True)
class Definition:
    name: str  # the last part of the qualified name
    qualified_name: str  # with its containers, parts joined by "."
    parent: str | None
    kind: str
    start_line: int  # 1-based, the definition itself (without the comments above it)
    end_line: int
    signature: str


def definitions(regions: list[Region]) -> list[Definition]:
    """Every named code region, outermost first, with its container's qualified name."""
    out: list[Definition] = []

    def visit(items: list[Region], parent: str | None) -> None:
        for region in items:
            if region.line < 0 or not region.symbol:
                continue
            name = region.symbol.rsplit(".", 1)[-1] if region.name is None else region.name.rsplit(".", 1)[-1]
            out.append(
                Definition(
                    name=name,
                    qualified_name=region.symbol,
                    # Go methods are defined outside their type: `Server.Start` belongs to Server.
                    parent=parent
                    if parent is not None or "." not in region.symbol
                    else region.symbol.rsplit(".", 1)[0],
                    kind=region.kind,
                    start_line=region.line + 1,
                    end_line=region.end + 1,
                    signature=region.signature,
                )
            )
            visit(region.children, region.symbol)

    visit(regions, None)
    return out


def occurrences(tree: Tree, grammar: str) -> list[tuple[str, list[int]]]:
    """(identifier, sorted 1-based lines it occurs on) for every identifier in the tree."""
    query = _identifier_query(grammar, tree.language)
    if query is None:
        return []
    from tree_sitter import QueryCursor

    lines: dict[str, set[int]] = {}
    for nodes in QueryCursor(query).captures(tree.root_node).values():
        for node in nodes:
            raw = node.text
            if not raw or len(raw) > MAX_NAME_CHARS:
                continue
            name = raw.decode("utf-8", "replace")
            if name in _SKIPPED_NAMES:
                continue
            lines.setdefault(name, set()).add(node.start_point.row + 1)
    return [(name, sorted(rows)[:MAX_LINES_PER_NAME]) for name, rows in sorted(lines.items())]


def _identifier_query(grammar: str, language: Language) -> Query | None:
    cache: dict[str, Query | None] | None = getattr(_local, "queries", None)
    if cache is None:
        cache = {}
        _local.queries = cache
    key = grammar
    if key not in cache:
        from tree_sitter import Query

        kinds = [t for t in IDENTIFIER_NODE_TYPES if language.id_for_node_kind(t, True)]
        cache[key] = Query(language, "[" + " ".join(f"({t})" for t in kinds) + "] @name") if kinds else None
    return cache[key]
