"""The shapes the chunker's stages share: regions found in a file, and the file's lines."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field


@dataclass(slots=True)
class Region:
    """A definition (or section) found in the text: rows are 0-based and inclusive."""

    start: int
    end: int
    symbol: str | None
    kind: str
    children: list[Region] = field(default_factory=list)
    # Code definitions only: the row of the definition itself (after leading comments, -1 when
    # unknown), its own name and its signature, for the symbol table.
    line: int = -1
    name: str | None = None
    signature: str = ""


class Lines:
    """The text's lines with their breaks, and prefix sums of their lengths for O(1) sizes."""

    __slots__ = ("blank", "lines", "offsets")

    def __init__(self, text: str) -> None:
        parts = text.split("\n")
        lines = [part + "\n" for part in parts[:-1]]
        if parts[-1]:
            lines.append(parts[-1])
        self.lines = lines
        self.blank = [line.isspace() for line in lines]  # every line is non-empty
        self.offsets = [0, *itertools.accumulate(map(len, lines))]

    def __len__(self) -> int:
        return len(self.lines)

    def chars(self, start: int, end: int) -> int:
        return self.offsets[end + 1] - self.offsets[start]

    def content(self, start: int, end: int) -> str:
        return "".join(self.lines[start : end + 1])
