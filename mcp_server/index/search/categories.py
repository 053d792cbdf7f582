"""What kind of file a chunk comes from: code, docs, tests or config.

Two uses: `file_type` accepts these four words besides extensions (a filter on the files of
the active generations), and ranking puts prose after code unless the query asks for it, the
same way it treats test code (ranking.py). Paths and languages decide; the rules are regexes
that Python and PostgreSQL read alike.
"""

from __future__ import annotations

import re

CATEGORIES = ("code", "docs", "tests", "config")

_DOC_EXTENSIONS = r"\.(md|markdown|mdx|rst|txt|adoc|asciidoc|rdoc|org|tex)$"
_CONFIG_EXTENSIONS = r"\.(ya?ml|json|jsonc|json5|toml|ini|cfg|conf|properties|xml|env)$"
DOC_LANGUAGES = ("markdown",)
CONFIG_LANGUAGES = ("yaml", "json", "toml")
_DOC_PATH = re.compile(_DOC_EXTENSIONS, re.IGNORECASE)
_CONFIG_PATH = re.compile(_CONFIG_EXTENSIONS, re.IGNORECASE)
# Test code: a directory named like a test suite, or a file named like a test in the usual
# conventions (pytest, Go, Jest/Vitest/Jasmine, JUnit, RSpec, minitest, XCTest).
TEST_DIRECTORY_RE = r"(^|/)(tests?|__tests__|spec|specs|testdata|test_?utils)/"  # case-insensitive
TEST_FILE_RE = (
    r"(^|/)(test_[^/]*|[^/]*_test\.[a-z]+|[^/]*\.(test|spec)\.[a-z]+|conftest\.py|"
    r"[^/]*(Test|Tests|Spec)\.(java|kt|scala|cs|swift|php)|[^/]*_spec\.rb)$"
)
_QUERY_ABOUT_DOCS = re.compile(
    r"\b(docs?|documentation|documented|readme|guide|tutorial|changelog|manual|howto|faq)\b", re.IGNORECASE
)


def is_docs(path: str, language: str | None) -> bool:
    return language in DOC_LANGUAGES or bool(_DOC_PATH.search(path))


def query_about_docs(query: str) -> bool:
    return bool(_QUERY_ABOUT_DOCS.search(query))


def category_clause(category: str, alias: str = "c") -> str:
    """A SQL predicate on `alias.path` and `alias.language` for one category (no parameters)."""
    tests = f"({alias}.path ~* '{TEST_DIRECTORY_RE}' OR {alias}.path ~ '{TEST_FILE_RE}')"
    docs = f"({alias}.language IN ('markdown') OR {alias}.path ~* '{_DOC_EXTENSIONS}')"
    config = f"({alias}.language IN ('yaml', 'json', 'toml') OR {alias}.path ~* '{_CONFIG_EXTENSIONS}')"
    if category == "tests":
        return tests
    if category == "docs":
        return docs
    if category == "config":
        return config
    if category == "code":
        return f"({alias}.language IS NOT NULL AND NOT {docs} AND NOT {config} AND NOT {tests})"
    raise ValueError(category)
