"""Navigation over the symbol table: definitions, references, file outlines and spans of code.

Everything is read from the index (each repository at the generation `repositories.readable`
chooses: the published one, or a first index still running, flagged partial), never from the
file system, so an answer matches what search returns and a path can never reach outside an indexed
repository; file paths are still checked, so a caller learns why `../x` or `/etc/passwd` is
refused. Repositories indexed before the symbol table existed (`index_format` below
`INDEX_FORMAT`) have no definitions: the tools say so and ask for a re-index.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mcp_server.core.errors import InvalidInput
from mcp_server.index import repositories, spans
from mcp_server.index.repositories import Repository
from mcp_server.index.search.identifiers import DefinitionMatch, query_identifiers
from mcp_server.index.search.query import LANGUAGE_RE
from mcp_server.index.search.ranking import is_test_path
from mcp_server.index.store import INDEX_FORMAT

MAX_SYMBOL_CHARS = 300
MAX_DEFINITIONS = 50
DEFINITION_TEXT_CHARS = 6_000
MAX_REFERENCE_FILES = 200
MAX_REFERENCES = 1_000
MAX_READ_LINES = 1_000
MAX_READ_CHARS = 100_000
MAX_FILE_PATH_CHARS = 4096


@dataclass(frozen=True, slots=True)
class _Scope:
    repos: list[Repository]
    where: str  # on files f: visible in an active generation of the chosen repositories
    params: dict[str, Any]
    note: str | None

    @property
    def partial(self) -> bool:
        return any(r.partial for r in self.repos)


class Navigator:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # --- the tools ------------------------------------------------------------------------------

    def find_definition(
        self,
        symbol: str,
        *,
        project_id: str,
        repository: str | None = None,
        language: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        identifier = _identifier(symbol)
        _check_limit(limit, MAX_DEFINITIONS)
        with self._engine.connect() as conn:
            scope = _scope(conn, project_id, repository, language, symbols=True)
            rows = conn.execute(
                text(
                    "SELECT s.qualified_name, s.parent, s.kind, s.start_line, s.end_line, s.signature, "
                    "f.id AS file_id, f.path, f.language, f.repository_id FROM symbols s "
                    f"JOIN files f ON f.id = s.file_id WHERE {scope.where} AND s.project_id = :project_id "
                    "AND s.name = :name LIMIT 2000"
                ),
                {**scope.params, "name": identifier.name},
            ).all()
            ranked = []
            for r in rows:
                tier = DefinitionMatch(0, identifier, r.qualified_name, r.path).tier
                if (
                    identifier.qualified
                    and tier >= 2
                    and any(DefinitionMatch(0, identifier, o.qualified_name, o.path).tier < 2 for o in rows)
                ):
                    continue  # `A.b` asked, and some `b` is A's: other classes' `b` are noise
                ranked.append(((tier, is_test_path(r.path), len(r.path), r.path, r.start_line), r))
            ranked.sort(key=lambda item: item[0])
            roots = {repo.id: repo.root_path for repo in scope.repos}
            found = []
            for _, r in ranked[:limit]:
                content, cut = spans.span_text(
                    conn, r.file_id, r.start_line, r.end_line, DEFINITION_TEXT_CHARS
                )
                found.append(
                    {
                        "qualified_name": r.qualified_name,
                        "kind": r.kind,
                        "parent": r.parent,
                        "signature": r.signature,
                        "file_path": r.path,
                        "repository": roots[r.repository_id],
                        "language": r.language,
                        "start_line": r.start_line,
                        "end_line": r.end_line,
                        "content": content,
                        "content_truncated": cut,
                    }
                )
        note = scope.note
        if not found and (note is None or scope.partial):
            note = _joined(f"no definition named {identifier.name!r} in the indexed code", note)
        return {
            "symbol": symbol,
            "definitions": found,
            "total_count": len(ranked),
            "note": note,
            **_partial_flags(scope.repos),
        }

    def find_references(
        self,
        symbol: str,
        *,
        project_id: str,
        repository: str | None = None,
        language: str | None = None,
        limit: int = 200,
    ) -> dict[str, Any]:
        identifier = _identifier(symbol)
        _check_limit(limit, MAX_REFERENCES)
        with self._engine.connect() as conn:
            scope = _scope(conn, project_id, repository, language, symbols=True)
            rows = conn.execute(
                text(
                    "SELECT o.file_id, o.lines, f.path, f.repository_id FROM symbol_occurrences o "
                    f"JOIN files f ON f.id = o.file_id WHERE {scope.where} AND o.project_id = :project_id "
                    f"AND o.name = :name ORDER BY f.path LIMIT {MAX_REFERENCE_FILES + 1}"
                ),
                {**scope.params, "name": identifier.name},
            ).all()
            more_files = len(rows) > MAX_REFERENCE_FILES
            rows = sorted(rows[:MAX_REFERENCE_FILES], key=lambda r: (is_test_path(r.path), r.path))
            outlines = _outlines(conn, [r.file_id for r in rows])
            roots = {repo.id: repo.root_path for repo in scope.repos}
            wanted = [(r, line) for r in rows for line in r.lines]
            truncated = more_files or len(wanted) > limit
            wanted = wanted[:limit]
            texts = spans.lines_text(conn, [(r.file_id, line) for r, line in wanted])
            files: dict[int, dict[str, Any]] = {}
            for r, line in wanted:
                enclosing, is_definition = outlines.get(r.file_id, _Outline([])).around(line, identifier.name)
                entry = files.setdefault(
                    r.file_id, {"file_path": r.path, "repository": roots[r.repository_id], "references": []}
                )
                entry["references"].append(
                    {
                        "line": line,
                        "enclosing_symbol": enclosing,
                        "is_definition": is_definition,
                        "text": texts.get((r.file_id, line), "").rstrip("\n")[:500],
                    }
                )
        note = scope.note
        if not files and (note is None or scope.partial):
            note = _joined(f"{identifier.name!r} does not occur as an identifier in the indexed code", note)
        return {
            "symbol": symbol,
            "matched_by": "name",  # occurrences are found by the identifier's text, not by type
            "files": list(files.values()),
            "total_count": len(wanted),
            "truncated": truncated,
            "note": note,
            **_partial_flags(scope.repos),
        }

    def get_file_outline(
        self, file_path: str, *, project_id: str, repository: str | None = None
    ) -> dict[str, Any]:
        with self._engine.connect() as conn:
            repo, file_id, path, language = _one_file(conn, project_id, repository, file_path)
            if repo.index_format < INDEX_FORMAT:
                raise InvalidInput(_reindex_message([repo]))
            rows = conn.execute(
                text(
                    "SELECT qualified_name, name, parent, kind, start_line, end_line, signature FROM symbols "
                    "WHERE file_id = :f ORDER BY start_line, end_line DESC"
                ),
                {"f": file_id},
            ).all()
        nodes: dict[str, dict[str, Any]] = {}
        roots: list[dict[str, Any]] = []
        for r in rows:
            node = {
                "name": r.name,
                "qualified_name": r.qualified_name,
                "kind": r.kind,
                "start_line": r.start_line,
                "end_line": r.end_line,
                "signature": r.signature,
                "children": [],
            }
            parent = nodes.get(r.parent) if r.parent else None
            (parent["children"] if parent is not None else roots).append(node)
            nodes.setdefault(r.qualified_name, node)
        return {
            "file_path": path,
            "repository": repo.root_path,
            "language": language,
            "outline": roots,
            **_partial_flags([repo], with_note=True),
        }

    def read_code(
        self,
        file_path: str,
        start_line: int,
        end_line: int,
        *,
        project_id: str,
        repository: str | None = None,
    ) -> dict[str, Any]:
        for name, value in (("start_line", start_line), ("end_line", end_line)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive integer (lines count from 1)")
        if end_line < start_line:
            raise InvalidInput("end_line must not be before start_line")
        if end_line - start_line + 1 > MAX_READ_LINES:
            raise InvalidInput(f"read at most {MAX_READ_LINES} lines at once")
        with self._engine.connect() as conn:
            repo, file_id, path, language = _one_file(conn, project_id, repository, file_path)
            meta = conn.execute(
                text(
                    "SELECT encode(f.content_hash, 'hex') AS hash, "
                    "(SELECT max(end_line) FROM chunks c WHERE c.file_id = f.id) AS lines "
                    "FROM files f WHERE f.id = :f"
                ),
                {"f": file_id},
            ).one()
            total = int(meta.lines or 0)
            content, cut = spans.span_text(
                conn, file_id, start_line, min(end_line, max(total, start_line)), MAX_READ_CHARS
            )
        return {
            "file_path": path,
            "repository": repo.root_path,
            "language": language,
            "start_line": start_line,
            "end_line": min(end_line, total) if total else start_line - 1,
            "total_lines": total,  # the last non-blank line
            "content": content,
            "content_truncated": cut,
            "content_hash": meta.hash,  # blake2b-128 of the file as indexed
            **_partial_flags([repo], with_note=True),
        }


# --- helpers ------------------------------------------------------------------------------------


def _identifier(symbol: str) -> Any:
    if not isinstance(symbol, str) or not symbol.strip() or len(symbol) > MAX_SYMBOL_CHARS:
        raise InvalidInput(
            f"symbol must be a name such as 'parse' or 'Parser.parse' (at most {MAX_SYMBOL_CHARS} characters)"
        )
    found = query_identifiers(symbol.strip())
    if len(found) != 1:
        raise InvalidInput(
            f"symbol {symbol[:100]!r} is not one identifier such as 'parse', 'Parser.parse' or 'pkg::item'"
        )
    return found[0]


def _check_limit(limit: int, most: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= most:
        raise InvalidInput(f"limit must be an integer from 1 to {most}")


def _scope(
    conn: Connection, project_id: str, repository: str | None, language: str | None, *, symbols: bool
) -> _Scope:
    if language is not None and (not isinstance(language, str) or not LANGUAGE_RE.fullmatch(language)):
        raise InvalidInput(f"language {str(language)[:40]!r} is not a language name such as 'python' or 'go'")
    known = repositories.project_repositories(conn, project_id)
    if not known:
        return _Scope([], "false", {"project_id": project_id}, f"project {project_id!r} has no index")
    chosen = repositories.readable(conn, project_id, repositories.choose(known, repository))
    note = repositories.partial_note(chosen)
    if not chosen:
        note = "no repository of this project has finished indexing yet"
    if symbols:
        current = [r for r in chosen if r.index_format >= INDEX_FORMAT]
        if chosen and not current:
            raise InvalidInput(_reindex_message(chosen))
        if len(current) < len(chosen):
            stale = _reindex_message([r for r in chosen if r.index_format < INDEX_FORMAT])
            note = f"{stale}; {note}" if note else stale
        chosen = current
    params: dict[str, Any] = {"project_id": project_id}
    clauses = []
    for i, repo in enumerate(chosen):
        params[f"r{i}"], params[f"g{i}"] = repo.id, repo.generation
        clauses.append(f"(f.repository_id = :r{i} AND f.gen_from <= :g{i} AND f.gen_to > :g{i})")
    where = "(" + " OR ".join(clauses) + ")" if clauses else "false"
    if language is not None:
        where += " AND f.language = :language"
        params["language"] = language
    return _Scope(chosen, where, params, note)


def _partial_flags(repos: list[Repository], *, with_note: bool = False) -> dict[str, Any]:
    """`partial` and `index_percent` (and a `note`) when a first index still running was read."""
    note = repositories.partial_note(repos)
    if note is None:
        return {}
    flags: dict[str, Any] = {"partial": True, "index_percent": repositories.partial_percent(repos)}
    if with_note:
        flags["note"] = note
    return flags


def _joined(first: str, second: str | None) -> str:
    return f"{first}; {second}" if second else first


def _reindex_message(repos: Iterable[Repository]) -> str:
    names = ", ".join(r.root_path for r in repos)
    return (
        f"{names} was indexed by an older version without a symbol table: re-index it "
        "(start_indexing_background; unchanged files are re-read once)"
    )


def _relative_path(file_path: str, repos: list[Repository]) -> tuple[str, list[Repository]]:
    """A repository-relative POSIX path, and the repositories it can belong to."""
    if not isinstance(file_path, str) or not file_path or len(file_path) > MAX_FILE_PATH_CHARS:
        raise InvalidInput("file_path must be a file's path relative to its repository, as search returns it")
    if "\x00" in file_path or "\n" in file_path or "\\" in file_path:
        raise InvalidInput("file_path contains a NUL byte, a line break or a backslash")
    candidates = repos
    path = file_path
    if path.startswith("/"):
        inside = [r for r in repos if path.startswith(r.root_path.rstrip("/") + "/")]
        if not inside:
            raise InvalidInput(f"{file_path[:200]!r} is not inside an indexed repository of this project")
        candidates = inside
        path = path[len(inside[0].root_path.rstrip("/")) + 1 :]
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or path.startswith("~"):
        raise InvalidInput(f"file_path {file_path[:200]!r} leaves its repository ('..', '~' or empty)")
    return "/".join(parts), candidates


def _one_file(
    conn: Connection, project_id: str, repository: str | None, file_path: str
) -> tuple[Repository, int, str, str | None]:
    known = repositories.project_repositories(conn, project_id)
    chosen = repositories.readable(conn, project_id, repositories.choose(known, repository))
    if not chosen:
        raise InvalidInput(f"project {project_id!r} has no indexed repository")
    path, candidates = _relative_path(file_path, chosen)
    found = []
    for repo in candidates:
        row = conn.execute(
            text(
                "SELECT id, language FROM files WHERE repository_id = :r AND path = :p "
                "AND gen_from <= :g AND gen_to > :g"
            ),
            {"r": repo.id, "p": path, "g": repo.generation},
        ).one_or_none()
        if row is not None:
            found.append((repo, int(row.id), path, row.language))
    if not found:
        raise InvalidInput(f"{path[:200]!r} is not an indexed file of this project's repositories")
    if len(found) > 1:
        names = ", ".join(repo.root_path for repo, *_ in found)
        raise InvalidInput(f"{path[:200]!r} is in several repositories ({names}): pass repository")
    return found[0]


class _Outline:
    """A file's definitions, to find the innermost one around a line."""

    def __init__(self, rows: list[Any]) -> None:
        self.rows = sorted(rows, key=lambda r: (r.start_line, -r.end_line))
        self.starts = [r.start_line for r in self.rows]

    def around(self, line: int, name: str) -> tuple[str | None, bool]:
        """(qualified name of the innermost definition holding `line`, is `line` the definition of
        `name` itself)."""
        best = None
        for row in self.rows[: bisect.bisect_right(self.starts, line)]:
            if row.start_line <= line <= row.end_line:
                best = row
        if best is None:
            return None, False
        if best.start_line == line and best.name == name:
            parent = best.parent
            return parent, True
        return best.qualified_name, False


def _outlines(conn: Connection, file_ids: list[int]) -> dict[int, _Outline]:
    if not file_ids:
        return {}
    rows = conn.execute(
        text(
            "SELECT file_id, name, qualified_name, parent, start_line, end_line FROM symbols "
            "WHERE file_id = ANY(:ids)"
        ),
        {"ids": file_ids},
    ).all()
    grouped: dict[int, list[Any]] = {}
    for r in rows:
        grouped.setdefault(r.file_id, []).append(r)
    return {file_id: _Outline(items) for file_id, items in grouped.items()}
