"""Code regions: definitions found in the tree-sitter tree (functions, methods, classes...).

The walk looks at statement-level nodes only: module level, container bodies, and a few levels of
blocks (``if TYPE_CHECKING:``, ``#ifdef``, ``export``), never inside a function. Parsers are made
on first use and cached per thread, so worker processes need nothing passed to them.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from mcp_server.indexer import languages
from mcp_server.indexer.regions import Region

if TYPE_CHECKING:
    from tree_sitter import Node, Parser, Tree

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
NOT_CONTAINERS = languages.FUNCTION_KINDS | {"module", "text", "section", "constant"}
# Definitions whose bodies are not searched for more definitions.
LEAF_KINDS = languages.FUNCTION_KINDS | {"constant"}
_SIGNATURE_CHARS = 300

_local = threading.local()


def parser_for(grammar: str) -> Parser:
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


def code_regions(text: str, rules: languages.SyntaxRules) -> list[Region] | None:
    """The definitions in ``text``, nested; None when the grammar cannot be loaded."""
    parsed = parse_code(text, rules)
    return parsed[0] if parsed is not None else None


def parse_code(text: str, rules: languages.SyntaxRules) -> tuple[list[Region], Tree] | None:
    """The definitions in ``text`` and the syntax tree they came from; None without a grammar."""
    try:
        parser = parser_for(rules.grammar)
    except (LookupError, ImportError, OSError, ValueError):
        return None
    source = text.encode("utf-8", "surrogatepass")
    tree = parser.parse(source)
    finder = _DefinitionFinder(rules)
    regions: list[Region] = []
    finder.search(tree.root_node, None, None, _SEARCH_DEPTH, regions)
    return regions, tree


class _DefinitionFinder:
    """Walks statement-level nodes only: module level, container bodies, a few blocks deep."""

    def __init__(self, rules: languages.SyntaxRules) -> None:
        self.rules = rules

    def search(
        self, node: Node, container: str | None, container_kind: str | None, depth: int, out: list[Region]
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
            symbol = qualify(container, name)
            region = Region(_leading_start(outer), end_row(outer), symbol, kind)
            region.line, region.name, region.signature = int(inner.start_point.row), name, signature(inner)
            out.append(region)
            if kind not in LEAF_KINDS:
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
                if node_type == "export_statement" and inner.type in rules.value_definitions:
                    # TypeScript/JavaScript `export const X = ...`: a named value of the module's API.
                    return node, inner, "constant"
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


def signature(node: Node) -> str:
    """The definition's head: its text up to its body (or its first line), whitespace collapsed."""
    body = node.child_by_field_name("body")
    raw = node.text or b""
    if body is not None and body.start_byte > node.start_byte:
        raw = raw[: body.start_byte - node.start_byte]
    else:
        raw = raw.split(b"\n", 1)[0]
    kept: list[str] = []
    for line in raw[: _SIGNATURE_CHARS * 4].decode("utf-8", "replace").split("\n"):
        if kept and line.lstrip().startswith(("#", "//", "/*")):
            break  # a comment between the head and its body (Python puts it before the block)
        kept.append(line)
    head = " ".join(" ".join(kept).split())
    return head.rstrip("{:= ")[:_SIGNATURE_CHARS]


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
        # `type ()` is a declaration with no spec at all: named_child(0) raises there.
        spec = node.named_child(0) if node.named_child_count else None
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


def qualify(container: str | None, name: str | None) -> str | None:
    if container is None:
        return name
    if name is None:
        return container
    return f"{container}.{name}"


def end_row(node: Node) -> int:
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
        if end_row(previous) < start - 1:
            return start  # a blank line between: a comment about something else
        before = previous.prev_sibling
        if before is not None and end_row(before) >= previous.start_point.row:
            return start  # a trailing comment of the line before
        if previous.start_point.row == 0 and (previous.text or b"").startswith(b"#!"):
            return start
        start = int(previous.start_point.row)
        current = previous
