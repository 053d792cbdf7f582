"""The commit each shard of a sharded git run indexed.

Revision ID: 0007_shard_source_commit
Revises: 0006_sharded_runs
Create Date: 2026-12-03

Every shard of a git run fetches the source itself (a pod each on Kubernetes), so a branch that
moves while the shards start would give them different trees, and the published generation would
mix two commits. `job_shards.source_commit` records each shard's checkout; a shard whose commit
differs from the first one's stops the run (IndexStore.begin_shard), the previous index stays.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_shard_source_commit"
down_revision = "0006_sharded_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_shards", sa.Column("source_commit", sa.Text))


def downgrade() -> None:
    op.drop_column("job_shards", "source_commit")
