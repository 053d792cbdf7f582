"""Sharded runs: one run of a repository split across N indexer processes or pods.

Revision ID: 0006_sharded_runs
Revises: 0005_shared_content
Create Date: 2026-12-03

`indexing_jobs.shards` is how many shards the job's run has (1: unsharded). Each shard has a
`job_shards` row: the generation the run writes (fixed by the first shard to start, so every
shard writes the same one), its state (`running`, `done`), its progress and its counters. The
shard that finishes last, deciding under the job row's lock, publishes the generation
(IndexStore.finish_shard); the job's own progress columns are the sum of its shards'.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0006_sharded_runs"
down_revision = "0005_shared_content"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("indexing_jobs", sa.Column("shards", sa.SmallInteger, nullable=False, server_default="1"))
    op.create_check_constraint("indexing_jobs_shards_check", "indexing_jobs", "shards BETWEEN 1 AND 64")
    op.create_table(
        "job_shards",
        sa.Column(
            "job_id",
            UUID(as_uuid=True),
            sa.ForeignKey("indexing_jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("shard", sa.SmallInteger, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="running"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("phase", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("files_seen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("files_total", sa.Integer),
        sa.Column("files_indexed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("files_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunks_created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("progress_fraction", sa.Float),
        sa.Column("remaining_seconds", sa.Float),
        sa.Column("counters", JSONB),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("job_id", "shard", name="job_shards_pkey"),
        sa.CheckConstraint("status IN ('running', 'done')", name="job_shards_status_check"),
    )


def downgrade() -> None:
    op.drop_table("job_shards")
    op.drop_constraint("indexing_jobs_shards_check", "indexing_jobs")
    op.drop_column("indexing_jobs", "shards")
