"""What a worker process does with one changed file: decode, refuse (binary, minified, a secret),
redact, guard the grammar, and chunk it with its symbols.

The pipeline (indexer/pipeline.py) sends a FileTask with the bytes it has already read and hashed,
and gets a FileResult back; both cross a process boundary, so they are plain picklable data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mcp_server.index.store import SymbolRow
from mcp_server.indexer import parse_guard, secrets
from mcp_server.indexer.chunker import analyse_source
from mcp_server.indexer.file_reading import decode_source


@dataclass(frozen=True, slots=True)
class FileTask:
    """A changed file to parse in a worker; its bytes travel with it (already read and hashed)."""

    relative_path: str
    language: str | None
    data: bytes
    content_hash: bytes
    pack_lines: int
    scan_secrets: bool = True
    with_symbols: bool = True


@dataclass(frozen=True, slots=True)
class FileResult:
    relative_path: str
    language: str | None
    outcome: str  # "unchanged" | "reuse" | "copied" | "changed" | "skipped"
    content_hash: bytes
    size: int
    chunks: list[tuple[int, int, str | None, str, str]]
    reason: str | None = None
    redacted: int = 0  # secret tokens replaced in the chunks
    note: str | None = None  # for the summary, e.g. chunked by lines because it nests too deeply
    symbols: list[SymbolRow] = field(default_factory=list)
    occurrences: list[tuple[str, list[int]]] = field(default_factory=list)


# Text mostly in lines longer than this is minified code or one-line data (bundles, generated JSON,
# inlined assets): a line is never cut into chunks, so it would become one chunk of up to
# CODEBASE_MAX_FILE_BYTES that neither reads as code nor fits in an answer.
LONG_LINE_CHARS = 1000
MINIFIED = "minified"


def is_minified(text: str) -> bool:
    if len(text) <= 2 * LONG_LINE_CHARS:
        return False
    long_line_chars = sum(len(line) for line in text.split("\n") if len(line) > LONG_LINE_CHARS)
    return 2 * long_line_chars > len(text)


def process_file(task: FileTask) -> FileResult:
    """Runs in a worker process: decode and chunk one changed file."""
    size = len(task.data)
    text = decode_source(task.data)
    if text is None:
        return FileResult(task.relative_path, task.language, "skipped", task.content_hash, size, [], "binary")
    if is_minified(text):
        return FileResult(task.relative_path, task.language, "skipped", task.content_hash, size, [], MINIFIED)
    redacted = 0
    if task.scan_secrets:
        if secrets.secret_by_content(task.relative_path, text):
            reason = secrets.SECRET_CONTENT
            return FileResult(
                task.relative_path, task.language, "skipped", task.content_hash, size, [], reason
            )
        text, redacted = secrets.redact(text)
    # A grammar must never see a file nested deeply enough to crash it (the YAML grammar segfaults
    # the process at about 255 levels): such a file is cut into line windows instead.
    syntax_language, note = task.language, None
    if task.language is not None:
        too_deep = parse_guard.too_deep(text)
        if too_deep is not None:
            syntax_language, note = None, f"{task.relative_path} chunked by lines ({too_deep})"
    analysis = analyse_source(
        text, syntax_language, pack_lines=task.pack_lines, with_symbols=task.with_symbols
    )
    rows = [
        (c.start_line, c.end_line, c.symbol, c.kind, c.content) for c in analysis.chunks if c.content.strip()
    ]
    definitions = [
        SymbolRow(d.name, d.qualified_name, d.parent, d.kind, d.start_line, d.end_line, d.signature)
        for d in analysis.definitions
    ]
    return FileResult(
        task.relative_path,
        task.language,
        "changed",
        task.content_hash,
        size,
        rows,
        redacted=redacted,
        note=note,
        symbols=definitions,
        occurrences=analysis.occurrences,
    )


def process_batch(tasks: list[FileTask]) -> list[FileResult]:
    return [process_file(task) for task in tasks]
