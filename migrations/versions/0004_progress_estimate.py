"""The indexer's own progress estimate: the share of the run done and the seconds left.

Revision ID: 0004_progress_estimate
Revises: 0003_term_stats
Create Date: 2026-12-02

Written with IF NOT EXISTS, like 0003: an early build of the experience branch added both columns
in a revision numbered 0002.
"""

from alembic import op

revision = "0004_progress_estimate"
down_revision = "0003_term_stats"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE indexing_jobs ADD COLUMN IF NOT EXISTS progress_fraction double precision")
    op.execute("ALTER TABLE indexing_jobs ADD COLUMN IF NOT EXISTS remaining_seconds double precision")


def downgrade() -> None:
    op.drop_column("indexing_jobs", "remaining_seconds")
    op.drop_column("indexing_jobs", "progress_fraction")
