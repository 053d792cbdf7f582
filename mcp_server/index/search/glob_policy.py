"""Bounds on the `path` glob of a search, so that no input turns into an expensive or invalid query.

Why: the glob becomes a PostgreSQL regular expression matched against every candidate chunk's
path. `**/` repeated 333 times became 333 nested optional groups and cost seconds of database
time; a bracket such as `[z-a]` made PostgreSQL reject the regular expression, which surfaced as an
internal error. Both are now input errors with a message that says what is allowed.
"""

from __future__ import annotations

from mcp_server.core.errors import InvalidInput

MAX_DOUBLE_STARS = 8
MAX_WILDCARDS = 24
MAX_BRACKETS = 8


def check_glob(pattern: str) -> None:
    """Raise InvalidInput when `pattern` is too complex to match cheaply."""
    double = pattern.count("**")
    wildcards = pattern.count("*") - 2 * double + pattern.count("?")
    if double > MAX_DOUBLE_STARS or wildcards > MAX_WILDCARDS or pattern.count("[") > MAX_BRACKETS:
        raise InvalidInput(
            f"path glob is too complex: at most {MAX_DOUBLE_STARS} '**', {MAX_WILDCARDS} other "
            f"wildcards ('*', '?') and {MAX_BRACKETS} bracket expressions"
        )


def bracket_to_regex(content: str, pattern: str) -> str:
    """The inside of a glob bracket (`[a-z_]`, `[!0-9]`) as a safe regular-expression bracket."""
    if not content or content in ("!", "^"):
        raise InvalidInput(f"path glob {pattern[:80]!r} has an empty bracket expression '[]'")
    out = []
    i = 0
    if content[0] in "!^":
        out.append("^")
        i = 1
    while i < len(content):
        char = content[i]
        if i + 2 < len(content) and content[i + 1] == "-":
            end = content[i + 2]
            if ord(end) < ord(char):
                raise InvalidInput(
                    f"path glob {pattern[:80]!r} has an invalid range '{char}-{end}' in a bracket expression"
                )
            out.append(f"\\{char}-\\{end}" if not char.isalnum() or not end.isalnum() else f"{char}-{end}")
            i += 3
            continue
        out.append(char if char.isalnum() else "\\" + char)
        i += 1
    return "[" + "".join(out) + "]"
