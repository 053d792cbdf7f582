"""Jobs table, projects, repositories, files and chunks (pgvector + full text).

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

LIVE = 2**31 - 1


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "indexing_jobs",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("repo_path", sa.Text, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="pending"),
        sa.Column("error_message", sa.Text),
        sa.Column("files_indexed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("chunks_created", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("force_reindex", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("source_git_url", sa.Text),
        sa.Column("source_git_ref", sa.Text),
        sa.Column("phase", sa.Text),
        sa.Column("progress_message", sa.Text),
        sa.Column("files_seen", sa.Integer, nullable=False, server_default="0"),
        sa.Column("files_total", sa.Integer),
        sa.Column("files_skipped", sa.Integer, nullable=False, server_default="0"),
        sa.Column("timeout_seconds", sa.Integer),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("runner", sa.Text),
        sa.Column("k8s_namespace", sa.Text),
        sa.Column("k8s_name", sa.Text),
        sa.Column("k8s_job_name", sa.Text),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
            name="indexing_jobs_status_check",
        ),
    )
    op.create_index(
        "ix_indexing_jobs_active",
        "indexing_jobs",
        ["project_id", "status"],
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_index("ix_indexing_jobs_created_at", "indexing_jobs", [sa.text("created_at DESC")])

    op.create_table(
        "projects",
        sa.Column("project_id", sa.Text, primary_key=True),
        sa.Column("embedding_model", sa.Text, nullable=False),
        sa.Column("embedding_dimension", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
        sa.Column(
            "project_id",
            sa.Text,
            sa.ForeignKey("projects.project_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("root_path", sa.Text, nullable=False),
        sa.Column("active_generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_indexed_at", sa.DateTime(timezone=True)),
        sa.Column("last_job_id", UUID(as_uuid=True)),
        sa.UniqueConstraint("project_id", "root_path", name="uq_repositories_project_root"),
    )
    op.create_table(
        "files",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "repository_id",
            sa.Integer,
            sa.ForeignKey("repositories.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("language", sa.Text),
        sa.Column("content_hash", sa.LargeBinary, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("gen_from", sa.Integer, nullable=False),
        sa.Column("gen_to", sa.Integer, nullable=False, server_default=str(LIVE)),
    )
    op.create_index("ix_files_repository_path", "files", ["repository_id", "path"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("file_id", sa.BigInteger, sa.ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
        sa.Column("repository_id", sa.Integer, nullable=False),
        sa.Column("project_id", sa.Text, nullable=False),
        sa.Column("gen_from", sa.Integer, nullable=False),
        sa.Column("gen_to", sa.Integer, nullable=False, server_default=str(LIVE)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("language", sa.Text),
        sa.Column("start_line", sa.Integer, nullable=False),
        sa.Column("end_line", sa.Integer, nullable=False),
        sa.Column("symbol", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("embedding_dim", sa.SmallInteger, nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("search_tsv", TSVECTOR, nullable=False),
    )
    op.create_index("ix_chunks_file", "chunks", ["file_id"])
    op.create_index(
        "ix_chunks_project_repo_gen", "chunks", ["project_id", "repository_id", "gen_from", "gen_to"]
    )
    op.create_index("ix_chunks_search_tsv", "chunks", ["search_tsv"], postgresql_using="gin")


def downgrade() -> None:
    # HNSW indexes are created on demand per dimension (index_store.ensure_vector_index) and go
    # with the table.
    op.drop_table("chunks")
    op.drop_table("files")
    op.drop_table("repositories")
    op.drop_table("projects")
    op.drop_index("ix_indexing_jobs_created_at", table_name="indexing_jobs")
    op.drop_index("ix_indexing_jobs_active", table_name="indexing_jobs")
    op.drop_table("indexing_jobs")
    op.execute("DROP EXTENSION IF EXISTS vector")
