"""The Kubernetes Secret a git job's clone step reads its credentials from.

Revision ID: 0008_job_git_secret
Revises: 0007_shard_source_commit
Create Date: 2026-12-03

`start_indexing_background(git_url=..., git_secret=NAME)` on the Kubernetes launcher names a
Secret in the server's namespace (a token, or an ssh key and known_hosts) that the IndexingRequest
passes to the clone step as `spec.source.git.secretRef`. The row keeps the Secret's name (never
its content), so the request the server creates, or re-creates after a restart, says the same.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_job_git_secret"
down_revision = "0007_shard_source_commit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("indexing_jobs", sa.Column("source_git_secret", sa.Text))


def downgrade() -> None:
    op.drop_column("indexing_jobs", "source_git_secret")
