"""A cheap look at a file before a grammar sees it: how deeply does it nest?

Why: tree-sitter grammars are C code with their own limits. The YAML grammar's scanner crashes the
whole process (SIGSEGV) on a document nested about 255 levels deep, which took the indexer, and so
the job, down with it: one hostile file made a repository impossible to index. No real source file
nests anywhere near MAX_DEPTH levels, so a file that does is chunked by line windows instead (a
correct answer, only a less precise one) and the job summary names it.
"""

from __future__ import annotations

MAX_DEPTH = 128
_OPEN = "([{"
_CLOSE = ")]}"
_BRACKETS = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "()[]{}"))


def too_deep(text: str, limit: int = MAX_DEPTH) -> str | None:
    """Why `text` nests deeper than `limit` levels (of indentation or of brackets), or None."""
    widths = [0]
    for line in text.split("\n"):
        stripped = line.lstrip(" \t")
        if not stripped:
            continue
        indent = len(line) - len(stripped)
        while indent < widths[-1]:
            widths.pop()
        if indent > widths[-1]:
            widths.append(indent)
            if len(widths) - 1 > limit:
                return f"indentation nested more than {limit} levels deep"
    depth = 0
    # Brackets only (strings and comments included: an overestimate is harmless here).
    for char in text.translate(_BRACKETS):
        if char in _OPEN:
            depth += 1
            if depth > limit:
                return f"brackets nested more than {limit} levels deep"
        elif char in _CLOSE and depth > 0:
            depth -= 1
    return None
