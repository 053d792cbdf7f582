"""A search request checked at the edge: limits, modes, filters and the path glob language.

Everything here is pure: the tools, the CLI and `Searcher` share one set of rules and messages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from mcp_server.core.errors import InvalidInput
from mcp_server.index.search import glob_policy

SearchMode = Literal["hybrid", "semantic", "lexical"]
SEARCH_MODES: tuple[str, ...] = ("hybrid", "semantic", "lexical")
MAX_QUERY_CHARS = 2000
MAX_LIMIT = 100
MAX_CONTEXT_LINES = 20
DEFAULT_CONTEXT_LINES = 3
DEFAULT_MAX_CHARS = 20_000
MIN_MAX_CHARS = 500
MAX_MAX_CHARS = 1_000_000
CONCISE_LINES = 3
LANGUAGE_RE = re.compile(r"^[a-z0-9_+#-]{1,32}$")
_EXTENSION_RE = re.compile(r"^\.?[A-Za-z0-9_+-]{1,16}$")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True, slots=True)
class SearchFilters:
    language: str | None = None
    path: str | None = None
    file_type: tuple[str, ...] = ()

    @property
    def on_files(self) -> bool:
        return self.language is not None or self.path is not None or bool(self.file_type)


def glob_to_regex(pattern: str) -> str:
    """A gitignore-like glob as a PostgreSQL regex anchored at both ends.

    `*` matches within one path segment, `**` across segments, `?` one character; a pattern with
    no glob character is a prefix ("src/api" matches "src/api/x.py"). As in .gitignore, a glob
    without "/" matches a file name at any depth (`*.py`), one with "/" is anchored at the root
    (`src/*.py` only directly under `src/`). An unclosed or invalid `[...]` is an InvalidInput.
    """
    if not any(ch in _GLOB_CHARS for ch in pattern):
        return "^" + re.escape(pattern.rstrip("/")) + "(/|$)"
    glob_policy.check_glob(pattern)
    out = ["^"] if "/" in pattern.rstrip("/") else ["^(.*/)?"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 2)
            if end == -1:
                raise InvalidInput(f"path glob {pattern[:100]!r} has a '[' without its ']'")
            out.append(glob_policy.bracket_to_regex(pattern[i + 1 : end], pattern))
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    regex = "".join(out)
    try:
        re.compile(regex)
    except re.error as exc:
        raise InvalidInput(f"path glob {pattern[:100]!r} is not a valid glob: {exc}") from None
    return regex


def parse_file_types(file_type: str | Sequence[str] | None) -> tuple[str, ...]:
    """'py', '.py', 'py,pyi' or ['py', 'pyi'] -> ('py', 'pyi'); anything else is refused. The words
    code, docs, tests and config name categories of files (search/categories.py)."""
    if file_type is None:
        return ()
    items = file_type.split(",") if isinstance(file_type, str) else list(file_type)
    cleaned = [item.strip() for item in items if isinstance(item, str) and item.strip()]
    if not cleaned or len(cleaned) > 20 or not all(_EXTENSION_RE.fullmatch(item) for item in cleaned):
        raise InvalidInput(
            "file_type must be file extensions such as 'py' or 'ts,tsx', or code, docs, tests, config"
        )
    return tuple(dict.fromkeys(item.lstrip(".").lower() for item in cleaned))


def validate_search_args(
    query: str,
    limit: int,
    mode: str,
    language: str | None,
    path: str | None,
    *,
    context_lines: int = DEFAULT_CONTEXT_LINES,
    max_chars: int = DEFAULT_MAX_CHARS,
    concise: bool = False,
) -> None:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("query must be a non-empty string describing the code you are looking for")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"query is longer than {MAX_QUERY_CHARS} characters")
    if not _is_int(limit) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}")
    if language is not None and (not isinstance(language, str) or not LANGUAGE_RE.fullmatch(language)):
        raise InvalidInput(f"language {str(language)[:40]!r} is not a language name such as 'python' or 'go'")
    if path is not None and (
        not isinstance(path, str) or not path or len(path) > 1000 or "\x00" in path or path.startswith("/")
    ):
        raise InvalidInput("path must be a repository-relative glob or prefix such as 'src/**/*.py'")
    if path is not None:
        glob_to_regex(path)  # raises InvalidInput for a glob too complex or malformed
    if not _is_int(context_lines) or not 0 <= context_lines <= MAX_CONTEXT_LINES:
        raise InvalidInput(f"context_lines must be an integer from 0 to {MAX_CONTEXT_LINES}")
    if not _is_int(max_chars) or not MIN_MAX_CHARS <= max_chars <= MAX_MAX_CHARS:
        raise InvalidInput(f"max_chars must be an integer from {MIN_MAX_CHARS} to {MAX_MAX_CHARS}")
    if not isinstance(concise, bool):
        raise InvalidInput("concise must be true or false")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
