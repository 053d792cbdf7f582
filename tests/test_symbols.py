"""The symbol table of one file, per language: definitions with qualified name, kind, parent and
line, and identifier occurrences outside comments and strings (no database)."""

from __future__ import annotations

import textwrap

import pytest

from mcp_server.indexer.chunker import analyse_source, chunk_source

CASES = [
    (
        "python",
        """
        class Store:
            @property
            def size(self):
                return 1
        """,
        [("Store", "class", None, 1), ("Store.size", "method", "Store", 3)],
    ),
    (
        "typescript",
        """
        /** Parse one. */
        export function parse(a: string): number;
        export function parse(a: string, b: number): number;
        export function parse(a: string, b?: number): number { return 1; }
        export const LIMIT = 10;
        export class Parser {
          run(): void {}
        }
        """,
        [
            ("parse", "function", None, 2),
            ("parse", "function", None, 3),
            ("parse", "function", None, 4),
            ("LIMIT", "constant", None, 5),
            ("Parser", "class", None, 6),
            ("Parser.run", "method", "Parser", 7),
        ],
    ),
    (
        "go",
        """
        package s

        type Server struct{ addr string }

        func (s *Server) Start() error { return nil }
        """,
        [("Server", "struct", None, 3), ("Server.Start", "method", "Server", 5)],
    ),
    (
        "rust",
        """
        pub struct Store;
        impl Store {
            pub fn open() -> Store { Store }
        }
        """,
        [("Store", "struct", None, 1), ("Store", "impl", None, 2), ("Store.open", "method", "Store", 3)],
    ),
    (
        "java",
        """
        class Reader {
            int read() { return 0; }
        }
        """,
        [("Reader", "class", None, 1), ("Reader.read", "method", "Reader", 2)],
    ),
]


@pytest.mark.parametrize(("language", "source", "expected"), CASES, ids=[c[0] for c in CASES])
def test_definitions_carry_qualified_name_kind_parent_and_line(
    language: str, source: str, expected: list[tuple[str, str, str | None, int]]
) -> None:
    analysis = analyse_source(textwrap.dedent(source).lstrip("\n"), language)
    assert [(d.qualified_name, d.kind, d.parent, d.start_line) for d in analysis.definitions] == expected
    assert all(d.name == d.qualified_name.rsplit(".", 1)[-1] and d.signature for d in analysis.definitions)


def test_typescript_overloads_and_their_jsdoc_are_one_named_chunk() -> None:
    source = textwrap.dedent(CASES[1][1]).lstrip("\n")
    chunks = chunk_source(source, "typescript")
    assert [(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks][:2] == [
        ("parse", "function", 1, 4),
        ("LIMIT", "constant", 5, 5),
    ]


@pytest.mark.parametrize(
    ("language", "source"),
    [
        ("python", "# make_password in a comment\nx = 'make_password'\ny = make_password(1)\n"),
        ("javascript", "// make_password\nconst s = 'make_password';\nconst y = make_password(1);\n"),
        ("go", 'package p\n// make_password\nvar s = "make_password"\nvar y = make_password(1)\n'),
    ],
)
def test_occurrences_skip_comments_and_strings(language: str, source: str) -> None:
    occurrences = dict(analyse_source(source, language).occurrences)
    assert occurrences["make_password"] == [source.count("\n")]  # only the last line's call


def test_files_without_a_grammar_have_no_symbol_table() -> None:
    analysis = analyse_source("# Title\n\nmake_password\n", "markdown")
    assert analysis.definitions == [] and analysis.occurrences == [] and analysis.chunks
