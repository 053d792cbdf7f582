"""Symbol table: definitions and identifier occurrences per file; repositories record their format.

Revision ID: 0002_symbol_table
Revises: 0001
Create Date: 2026-12-02

Rows of both tables belong to a file row (deleted with it), so they follow its generation: a
definition is visible exactly when its file is. `repositories.index_format` is the version of
what an index run writes per file; a repository indexed before this revision has format 0, and
its next run re-reads every file (see IndexStore.begin_run), while the navigation tools refuse
it with a message that says to re-index.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "0002_symbol_table"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "repositories", sa.Column("index_format", sa.Integer, nullable=False, server_default="0")
    )
    op.create_table(
        "symbols",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("file_id", sa.BigInteger, sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("qualified_name", sa.Text, nullable=False),
        sa.Column("parent", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("start_line", sa.Integer, nullable=False),
        sa.Column("end_line", sa.Integer, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
    )
    op.create_index("ix_symbols_project_name", "symbols", ["project_id", "name"])
    op.create_index("ix_symbols_file", "symbols", ["file_id"])
    op.create_table(
        "symbol_occurrences",
        sa.Column("file_id", sa.BigInteger, sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("lines", ARRAY(sa.Integer), nullable=False),
    )
    op.create_index("ix_symbol_occurrences_project_name", "symbol_occurrences", ["project_id", "name"])
    op.create_index("ix_symbol_occurrences_file", "symbol_occurrences", ["file_id"])


def downgrade() -> None:
    op.drop_table("symbol_occurrences")
    op.drop_table("symbols")
    op.drop_column("repositories", "index_format")
