"""Word statistics per project: `term_stats` and `projects.term_rows`.

Revision ID: 0003_term_stats
Revises: 0002_symbol_table
Create Date: 2026-12-02

Lexical ranking weighs query words by their rarity; these hold each project's document
frequencies of its most common lexemes (mcp_server/index/term_stats.py), so a project ranks the
same whatever else the database holds. Written with IF NOT EXISTS: an early build of the search
branch created both in revision 0002, and such a database must upgrade too. A project without
statistics (term_rows = 0) falls back to the planner's whole-table statistics until its next index
run computes them, so nothing needs re-indexing.
"""

from alembic import op

revision = "0003_term_stats"
down_revision = "0002_symbol_table"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE projects ADD COLUMN IF NOT EXISTS term_rows integer NOT NULL DEFAULT 0")
    op.execute(
        "CREATE TABLE IF NOT EXISTS term_stats ("
        " project_id text NOT NULL REFERENCES projects (project_id) ON DELETE CASCADE,"
        " lexeme text NOT NULL,"
        " frequency double precision NOT NULL,"
        " PRIMARY KEY (project_id, lexeme))"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS term_stats")
    op.execute("ALTER TABLE projects DROP COLUMN IF EXISTS term_rows")
