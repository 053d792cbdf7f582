"""Plain data passed between the walker, the chunker and the writer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file the walker decided to index (text, inside the repository, under the size limit)."""

    path: str  # absolute path on disk (a str: building 30,000 Path objects cost a third of a re-index)
    relative_path: str  # POSIX path relative to the repository root
    size: int
    language: str | None  # e.g. "python"; None for plain text without a known language
    # The bytes, read through the checked descriptor (walk_repository(read_contents=True)).
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A contiguous region of one file: a function, a class, a block of module-level code, or a window."""

    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    content: str
    symbol: str | None  # e.g. "MyClass.method"; None for module-level code and text windows
    kind: str  # "function", "method", "class", "module", "text", ...
