"""Lines of indexed files, rebuilt from their chunks (the chunker drops only blank lines)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection


def span_text(conn: Connection, file_id: int, start: int, end: int, max_chars: int) -> tuple[str, bool]:
    """Lines start..end of an indexed file, rebuilt from its chunks (lines between chunks are
    blank: the chunker trims only blank lines); (text, was it cut at max_chars)."""
    rows = conn.execute(
        text(
            "SELECT start_line, content FROM chunks WHERE file_id = :f "
            "AND end_line >= :s AND start_line <= :e ORDER BY start_line"
        ),
        {"f": file_id, "s": start, "e": end},
    ).all()
    lines: dict[int, str] = {}
    for r in rows:
        for offset, line in enumerate(r.content.splitlines(keepends=True)):
            lines[r.start_line + offset] = line if line.endswith("\n") else line + "\n"
    out: list[str] = []
    size = 0
    for number in range(start, end + 1):
        line = lines.get(number, "\n")
        if size + len(line) > max_chars:
            return "".join(out), True
        out.append(line)
        size += len(line)
    return "".join(out), False


def lines_text(conn: Connection, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    """The text of single lines, (file id, line) -> line, from the chunks that hold them."""
    if not wanted:
        return {}
    file_ids = sorted({f for f, _ in wanted})
    lines = sorted({line for _, line in wanted})
    rows = conn.execute(
        text(
            "SELECT c.file_id, c.start_line, c.content FROM chunks c "
            "WHERE c.file_id = ANY(:fs) AND c.end_line >= :lo AND c.start_line <= :hi"
        ),
        {"fs": file_ids, "lo": lines[0], "hi": lines[-1]},
    ).all()
    want = set(wanted)
    out: dict[tuple[int, int], str] = {}
    for r in rows:
        for offset, line in enumerate(r.content.splitlines()):
            key = (r.file_id, r.start_line + offset)
            if key in want:
                out[key] = line
    return out
