"""Content shared across the repositories of a project: files by content hash, and the chunking
settings each repository was published with.

Revision ID: 0005_shared_content
Revises: 0004_progress_estimate
Create Date: 2026-12-03

A run copies the chunks, vectors and symbol rows of a file that another repository of its project
already holds with the same path and content hash (see IndexStore.copy_shared): the lookup is one
query per batch on `ix_files_content_hash`. `repositories.chunking` records what shaped those rows
besides the content (lines per packed chunk, symbol table, secret scanning); a repository without
it (published before this revision) is never copied from.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_shared_content"
down_revision = "0004_progress_estimate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("repositories", sa.Column("chunking", sa.Text))
    op.create_index("ix_files_content_hash", "files", ["content_hash"])


def downgrade() -> None:
    op.drop_index("ix_files_content_hash", table_name="files")
    op.drop_column("repositories", "chunking")
