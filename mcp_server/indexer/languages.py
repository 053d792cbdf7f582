"""Which language a file is, and how the chunker finds definitions in its syntax tree.

Two tables live here, both plain data so that tests can check them and new languages are a
few lines:

* how a path maps to a language name (by file name, by extension, by a ``#!`` line);
* for the languages with tree-sitter chunking, which node types are definitions, what kind of
  definition each is, and which wrapper nodes (decorators, ``export``, ``template<>``) belong to
  the definition they wrap.

Language names are our own stable labels (stored in the index and used in search filters); the
tree-sitter grammar name is kept separately because the two differ for a few languages.

Why one module of this size: it is a table, one entry per language; it reads best whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# ---------------------------------------------------------------------------------------------
# Path -> language
# ---------------------------------------------------------------------------------------------

_EXTENSIONS: dict[str, str] = {
    # Languages with syntax chunking.
    ".py": "python",
    ".pyi": "python",
    ".pyw": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",  # the JavaScript grammar parses JSX
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".c": "c",
    ".h": "c",  # ambiguous; C++ headers still chunk (by lines where the C grammar gives up)
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".c++": "cpp",
    ".hpp": "cpp",
    ".hh": "cpp",
    ".hxx": "cpp",
    ".h++": "cpp",
    ".ipp": "cpp",
    ".inl": "cpp",
    ".tpp": "cpp",
    ".cs": "csharp",
    ".csx": "csharp",
    ".rb": "ruby",
    ".rake": "ruby",
    ".gemspec": "ruby",
    ".ru": "ruby",
    ".php": "php",
    ".phtml": "php",
    ".kt": "kotlin",
    ".kts": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
    ".sc": "scala",
    ".sh": "bash",
    ".bash": "bash",
    ".zsh": "bash",
    ".ksh": "bash",
    # Documents and data with structural chunking.
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonc": "json",
    ".json5": "json",
    ".toml": "toml",
    # Known languages chunked by line windows.
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".vue": "vue",
    ".svelte": "svelte",
    ".css": "css",
    ".scss": "scss",
    ".sass": "sass",
    ".less": "less",
    ".sql": "sql",
    ".mk": "makefile",
    ".mak": "makefile",
    ".dockerfile": "dockerfile",
    ".cmake": "cmake",
    ".lua": "lua",
    ".pl": "perl",
    ".pm": "perl",
    ".r": "r",
    ".dart": "dart",
    ".ex": "elixir",
    ".exs": "elixir",
    ".erl": "erlang",
    ".hrl": "erlang",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".mli": "ocaml",
    ".clj": "clojure",
    ".cljs": "clojure",
    ".edn": "clojure",
    ".zig": "zig",
    ".nim": "nim",
    ".jl": "julia",
    ".groovy": "groovy",
    ".gradle": "groovy",
    ".m": "objc",
    ".mm": "objc",
    ".ps1": "powershell",
    ".psm1": "powershell",
    ".fish": "fish",
    ".vim": "vim",
    ".proto": "proto",
    ".graphql": "graphql",
    ".gql": "graphql",
    ".tf": "hcl",
    ".tfvars": "hcl",
    ".hcl": "hcl",
    ".bzl": "starlark",
    ".star": "starlark",
    ".xml": "xml",
    ".xsd": "xml",
    ".plist": "xml",
    ".ini": "ini",
    ".cfg": "ini",
    ".conf": "ini",
    ".properties": "properties",
    ".rst": "rst",
    ".tex": "latex",
    ".txt": "text",
    ".text": "text",
    ".adoc": "text",
    ".org": "text",
}

_FILENAMES: dict[str, str] = {
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Makefile": "makefile",
    "makefile": "makefile",
    "GNUmakefile": "makefile",
    "CMakeLists.txt": "cmake",
    "Gemfile": "ruby",
    "Rakefile": "ruby",
    "Guardfile": "ruby",
    "Podfile": "ruby",
    "Vagrantfile": "ruby",
    "Brewfile": "ruby",
    "Fastfile": "ruby",
    "Jenkinsfile": "groovy",
    "BUILD": "starlark",
    "BUILD.bazel": "starlark",
    "WORKSPACE": "starlark",
    "Tiltfile": "starlark",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".profile": "bash",
    ".zshrc": "bash",
    ".envrc": "bash",
    "PKGBUILD": "bash",
    "go.mod": "gomod",
    "README": "text",
    "LICENSE": "text",
    "COPYING": "text",
    "NOTICE": "text",
    "AUTHORS": "text",
    "CHANGELOG": "text",
}

# The interpreter named on a "#!" line (after "env" and options), for files without an extension.
_INTERPRETERS: dict[str, str] = {
    "python": "python",
    "python2": "python",
    "python3": "python",
    "pypy": "python",
    "pypy3": "python",
    "node": "javascript",
    "nodejs": "javascript",
    "deno": "typescript",
    "bun": "typescript",
    "ts-node": "typescript",
    "sh": "bash",
    "bash": "bash",
    "dash": "bash",
    "zsh": "bash",
    "ksh": "bash",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
}


_KNOWN_LANGUAGES = frozenset(_EXTENSIONS.values()) | frozenset(_FILENAMES.values())


def language_for_path(relative_path: str, first_line: bytes | None = None) -> str | None:
    """The language of a file from its name, or from its ``#!`` line when the name says nothing.

    Returns None for files whose language is unknown (they are indexed as plain text).
    """
    name = relative_path.rpartition("/")[2]
    by_name = _FILENAMES.get(name)
    if by_name is not None:
        return by_name
    if name.startswith(("Dockerfile.", "Containerfile.")):
        return "dockerfile"
    dot = name.rfind(".")
    if dot > 0:  # ".bashrc"-style names without a stem are handled by _FILENAMES above
        by_extension = _EXTENSIONS.get(name[dot:].lower())
        if by_extension is not None:
            return by_extension
    if first_line is not None:
        return language_from_shebang(first_line)
    return None


# Names people type for a language that are neither our label, an extension nor an interpreter.
_LANGUAGE_ALIASES: dict[str, str] = {
    "golang": "go",
    "c++": "cpp",
    "cplusplus": "cpp",
    "c#": "csharp",
    "c-sharp": "csharp",
    "c_sharp": "csharp",
    "shell": "bash",
    "objective-c": "objc",
    "objectivec": "objc",
    "docker": "dockerfile",
    "make": "makefile",
    "protobuf": "proto",
    "terraform": "hcl",
    "node": "javascript",
}


def canonical_language(name: str) -> str:
    """The label stored in the index for a language as a person writes it: case-insensitive, with
    common names and extensions ("Python", "py", "ts", "golang", "c++", "yml") mapped to it.
    Unknown names come back lowercased, so a filter on them finds nothing rather than failing."""
    lowered = name.strip().lower()
    if lowered in _KNOWN_LANGUAGES:
        return lowered
    return (
        _LANGUAGE_ALIASES.get(lowered)
        or _EXTENSIONS.get("." + lowered.lstrip("."))
        or _INTERPRETERS.get(lowered)
        or lowered
    )


def language_from_shebang(first_line: bytes) -> str | None:
    """``#!/usr/bin/env python3 -u`` -> "python"; None when the line is not a known ``#!``."""
    if not first_line.startswith(b"#!"):
        return None
    words = first_line[2:].split(b"\n", 1)[0].decode("utf-8", "replace").split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        if not rest:
            return None
        program = rest[0].rsplit("/", 1)[-1]
    interpreter = _INTERPRETERS.get(program)
    if interpreter is None:
        # "python3.12" -> "python3" -> found; "perl5.36" -> "perl".
        interpreter = _INTERPRETERS.get(program.rstrip("0123456789.").rstrip("."))
    return interpreter


# ---------------------------------------------------------------------------------------------
# Syntax rules for tree-sitter chunking
# ---------------------------------------------------------------------------------------------

# Kinds whose bodies are never split: what is nested in a function stays in the function's chunk.
FUNCTION_KINDS = frozenset({"function", "method", "macro"})
# Containers whose functions are plain functions in a namespace, not methods of a type.
NAMESPACE_KINDS = frozenset({"namespace"})

# Sibling node types directly above a definition (no blank line between) that belong to it.
LEADING_NODE_TYPES = frozenset(
    {
        "comment",
        "line_comment",
        "block_comment",
        "multiline_comment",
        "doc_comment",
        "decorator",  # TypeScript class members: decorators are siblings, not children
        "attribute_item",  # Rust #[derive(...)]
    }
)


@dataclass(frozen=True, slots=True)
class SyntaxRules:
    """How to find definitions in one language's tree-sitter tree.

    ``definitions`` maps a node type to the kind of definition it is. A few node types need a
    closer look, done by the chunker and switched on here:

    * ``requires_body``: the node is a definition only with a body (C ``struct foo`` in a
      declaration is a type reference; interface methods without bodies stay in the interface).
    * ``value_definitions``: declarations that define a function through their value
      (``const f = () => ...``).
    * ``wrappers``: nodes that wrap one definition and belong to it (Python decorators,
      ``export``, C++ ``template <...>``, C ``typedef struct {...} Name;``), mapped to the field
      that holds the wrapped node (None: its last named child).
    """

    grammar: str
    definitions: Mapping[str, str]
    requires_body: frozenset[str] = frozenset()
    value_definitions: frozenset[str] = frozenset()
    wrappers: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))


def _rules(
    grammar: str,
    definitions: dict[str, str],
    *,
    requires_body: tuple[str, ...] = (),
    value_definitions: tuple[str, ...] = (),
    wrappers: dict[str, str | None] | None = None,
) -> SyntaxRules:
    return SyntaxRules(
        grammar=grammar,
        definitions=MappingProxyType(definitions),
        requires_body=frozenset(requires_body),
        value_definitions=frozenset(value_definitions),
        wrappers=MappingProxyType(wrappers or {}),
    )


_JS_DEFINITIONS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "class_declaration": "class",
    "method_definition": "method",
    "lexical_declaration": "function",  # only with a function value, see value_definitions
    "variable_declaration": "function",
    "field_definition": "method",  # only with a function value: handle = (event) => {...}
}
_TS_DEFINITIONS = {
    **_JS_DEFINITIONS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
    "internal_module": "namespace",
    "module": "namespace",
    "public_field_definition": "method",
    "function_signature": "function",  # an overload (with its JSDoc), or `declare function`
}
_JS_VALUE_DEFINITIONS = (
    "lexical_declaration",
    "variable_declaration",
    "field_definition",
    "public_field_definition",
)
_JS_WRAPPERS: dict[str, str | None] = {"export_statement": "declaration"}

_C_DEFINITIONS = {
    "function_definition": "function",
    "struct_specifier": "struct",
    "union_specifier": "union",
    "enum_specifier": "enum",
}
_C_REQUIRES_BODY = ("struct_specifier", "union_specifier", "enum_specifier", "class_specifier")

SYNTAX_RULES: Mapping[str, SyntaxRules] = MappingProxyType(
    {
        "python": _rules(
            "python",
            {"function_definition": "function", "class_definition": "class"},
            wrappers={"decorated_definition": "definition"},
        ),
        "javascript": _rules(
            "javascript",
            _JS_DEFINITIONS,
            value_definitions=_JS_VALUE_DEFINITIONS,
            wrappers=_JS_WRAPPERS,
        ),
        "typescript": _rules(
            "typescript",
            _TS_DEFINITIONS,
            value_definitions=_JS_VALUE_DEFINITIONS,
            wrappers={**_JS_WRAPPERS, "ambient_declaration": None},
        ),
        "tsx": _rules(
            "tsx",
            _TS_DEFINITIONS,
            value_definitions=_JS_VALUE_DEFINITIONS,
            wrappers={**_JS_WRAPPERS, "ambient_declaration": None},
        ),
        "go": _rules(
            "go",
            {
                "function_declaration": "function",
                "method_declaration": "method",
                "type_declaration": "type",  # kind refined to struct/interface; other types stay module code
            },
        ),
        "rust": _rules(
            "rust",
            {
                "function_item": "function",
                "struct_item": "struct",
                "enum_item": "enum",
                "union_item": "union",
                "trait_item": "trait",
                "impl_item": "impl",
                "mod_item": "namespace",
                "macro_definition": "macro",
            },
            requires_body=("mod_item",),
        ),
        "java": _rules(
            "java",
            {
                "class_declaration": "class",
                "interface_declaration": "interface",
                "enum_declaration": "enum",
                "record_declaration": "record",
                "annotation_type_declaration": "interface",
                "method_declaration": "method",
                "constructor_declaration": "method",
            },
            requires_body=("method_declaration",),
        ),
        "c": _rules(
            "c",
            _C_DEFINITIONS,
            requires_body=_C_REQUIRES_BODY,
            wrappers={"type_definition": "type"},
        ),
        "cpp": _rules(
            "cpp",
            {**_C_DEFINITIONS, "class_specifier": "class", "namespace_definition": "namespace"},
            requires_body=_C_REQUIRES_BODY,
            wrappers={"template_declaration": None, "type_definition": "type"},
        ),
        "csharp": _rules(
            "csharp",
            {
                "class_declaration": "class",
                "struct_declaration": "struct",
                "interface_declaration": "interface",
                "enum_declaration": "enum",
                "record_declaration": "record",
                "namespace_declaration": "namespace",
                "method_declaration": "method",
                "constructor_declaration": "method",
                "destructor_declaration": "method",
                "operator_declaration": "method",
                "local_function_statement": "function",
            },
            requires_body=("method_declaration",),
        ),
        "ruby": _rules(
            "ruby",
            {
                "method": "function",
                "singleton_method": "function",
                "class": "class",
                "module": "namespace",
            },
        ),
        "php": _rules(
            "php",
            {
                "function_definition": "function",
                "method_declaration": "method",
                "class_declaration": "class",
                "interface_declaration": "interface",
                "trait_declaration": "trait",
                "enum_declaration": "enum",
                "namespace_definition": "namespace",
            },
            requires_body=("method_declaration", "namespace_definition"),
        ),
        "kotlin": _rules(
            "kotlin",
            {
                "function_declaration": "function",
                "class_declaration": "class",  # kind refined: interface, enum
                "object_declaration": "object",
            },
            requires_body=("function_declaration",),
        ),
        "swift": _rules(
            "swift",
            {
                "function_declaration": "function",
                "init_declaration": "method",
                "deinit_declaration": "method",
                "class_declaration": "class",  # kind refined from declaration_kind: struct, enum, ...
                "protocol_declaration": "protocol",
            },
        ),
        "scala": _rules(
            "scala",
            {
                "function_definition": "function",
                "class_definition": "class",
                "object_definition": "object",
                "trait_definition": "trait",
                "enum_definition": "enum",
            },
        ),
        "bash": _rules("bash", {"function_definition": "function"}),
    }
)

# Languages chunked by their structure without a definitions table.
MARKUP_LANGUAGES = frozenset({"markdown"})
DATA_LANGUAGES = frozenset({"yaml", "json", "toml"})


def syntax_rules(language: str | None) -> SyntaxRules | None:
    """The tree-sitter rules for a language, or None when it is chunked another way."""
    if language is None:
        return None
    return SYNTAX_RULES.get(language)
