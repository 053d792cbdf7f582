"""A trigram index on file paths, for path globs that do not start with a fixed directory.

Revision ID: 0009_files_path_trigrams
Revises: 0008_job_git_secret
Create Date: 2026-12-08

Search resolves a path filter to the matching files first (`Scope.build`). A glob with a fixed
leading directory (`src/**`) is a range of `ix_files_repository_path`; one that starts with `**/`
or `*` (`**/net/http/**`, `*.go`) was a regular expression over every file row of the project:
75 ms per search over 243,000 files (bench/million_chunks.py), 2 ms with this index. pg_trgm is
a contrib extension marked trusted, so a database owner may create it (PostgreSQL 13 and later);
the embedded server ships it.
"""

from alembic import op

revision = "0009_files_path_trigrams"
down_revision = "0008_job_git_secret"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX ix_files_path_trgm ON files USING gin (path gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_files_path_trgm")
