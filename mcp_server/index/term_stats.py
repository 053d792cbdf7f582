"""Word statistics per project: how many of a project's live chunks hold each common lexeme.

Lexical ranking weighs each query word by its rarity. PostgreSQL's own statistics
(`pg_stats.most_common_elems`) describe the whole chunks table, every project together, so a
project ranked differently depending on what else the database held. These are per project:
computed with `ts_stat` over the project's live chunks (a random sample of at most
`SAMPLE_ROWS` rows) after an index run that changed the project's size by more than
`REFRESH_CHANGE`, and kept for the `MAX_LEXEMES` most frequent lexemes; a lexeme not listed is
rarer than the least frequent one listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from mcp_server.index.vector_indexes import PROJECT_LITERAL_RE

SAMPLE_ROWS = 30_000
MAX_LEXEMES = 10_000
REFRESH_CHANGE = 0.1  # recompute when the live chunk count moved by more than this share


@dataclass(slots=True)
class TermStats:
    rows: float = 0.0  # live chunks the frequencies describe; 0: none computed yet
    frequency: dict[str, float] = field(default_factory=dict)
    floor: float = 0.0  # frequency assumed for a lexeme missing from the list

    def document_frequency(self, lexeme: str) -> float | None:
        """Estimated chunks holding `lexeme`; None without statistics."""
        if self.rows <= 0:
            return None
        return self.frequency.get(lexeme, self.floor) * self.rows


def _live_chunks_sql(project_id: str) -> str:
    if not PROJECT_LITERAL_RE.fullmatch(project_id):
        raise ValueError(f"unsafe project id {project_id!r}")
    # ts_stat runs a query given as text: the project id is inlined, validated as a DNS label.
    return (
        "SELECT c.search_tsv FROM chunks c JOIN repositories r ON r.id = c.repository_id "
        f"WHERE c.project_id = '{project_id}' AND c.gen_from <= r.active_generation "
        "AND c.gen_to > r.active_generation"
    )


def refresh(engine: Engine, project_id: str, *, force: bool = False) -> bool:
    """Recompute the project's statistics if its size changed enough; True when recomputed."""
    with engine.begin() as conn:
        recorded = conn.execute(
            text("SELECT term_rows FROM projects WHERE project_id = :p FOR UPDATE"), {"p": project_id}
        ).scalar()
        if recorded is None:
            return False
        rows = int(
            conn.execute(text(f"SELECT count(*) FROM ({_live_chunks_sql(project_id)}) live")).scalar_one()
        )
        if not force and recorded > 0 and abs(rows - recorded) <= REFRESH_CHANGE * recorded:
            return False
        conn.execute(text("DELETE FROM term_stats WHERE project_id = :p"), {"p": project_id})
        conn.execute(
            text("UPDATE projects SET term_rows = :n WHERE project_id = :p"), {"n": rows, "p": project_id}
        )
        if rows == 0:
            return True
        fraction = min(1.0, SAMPLE_ROWS / rows)
        sample = _live_chunks_sql(project_id) + (f" AND random() < {fraction:.6f}" if fraction < 1.0 else "")
        sampled = rows if fraction >= 1.0 else max(1, round(rows * fraction))
        conn.execute(
            text(
                "INSERT INTO term_stats (project_id, lexeme, frequency) "
                "SELECT :p, word, least(1.0, ndoc::float8 / :n) FROM ts_stat(:q) "
                "ORDER BY ndoc DESC, word LIMIT :most"
            ),
            {"p": project_id, "n": sampled, "q": sample, "most": MAX_LEXEMES},
        )
    return True


def load(conn: Connection, project_id: str) -> TermStats | None:
    """The project's statistics; None when none were computed (an index from before they were)."""
    rows = conn.execute(
        text("SELECT term_rows FROM projects WHERE project_id = :p"), {"p": project_id}
    ).scalar()
    if not rows:
        return None
    frequency = {
        r.lexeme: float(r.frequency)
        for r in conn.execute(
            text("SELECT lexeme, frequency FROM term_stats WHERE project_id = :p"), {"p": project_id}
        )
    }
    # As with pg_stats: a lexeme below the list's cut-off is rarer than its least frequent entry.
    floor = min(frequency.values()) / 2 if frequency else 0.5 / rows
    return TermStats(rows=float(rows), frequency=frequency, floor=floor)
