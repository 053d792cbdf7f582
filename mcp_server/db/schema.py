"""SQLAlchemy Core table definitions: the one description of the schema the code queries.

The migrations in `migrations/versions` create exactly these tables; `tests/test_migrations.py`
checks that the two agree.

Index generations: each repository has an `active_generation`. A run writes its new file and
chunk rows with `gen_from = active + 1`, and marks replaced or deleted rows with
`gen_to = active + 1`; search sees a row when `gen_from <= active < gen_to`. Switching the
repository's `active_generation` in one UPDATE publishes the whole run at once (a first index is
also read while its job runs: index/repositories.py); a failed or killed run leaves rows that no
search can see, and the next run reuses the ones whose content hash still
matches (see mcp_server/index/store.py).
"""

from __future__ import annotations

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR, UUID

metadata = MetaData()

JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
# Rows with gen_to = LIVE are in the active generation and every later one until replaced.
LIVE = 2**31 - 1

indexing_jobs = Table(
    "indexing_jobs",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True),
    Column("repo_path", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default="pending"),
    Column("error_message", Text),
    Column("files_indexed", Integer, nullable=False, server_default="0"),
    Column("chunks_created", Integer, nullable=False, server_default="0"),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Beyond the original MVP columns:
    Column("force_reindex", Boolean, nullable=False, server_default=text("false")),
    Column("source_git_url", Text),
    Column("source_git_ref", Text),
    Column("source_git_secret", Text),  # a Kubernetes Secret's name, never its content
    Column("phase", Text),
    Column("progress_message", Text),
    Column("files_seen", Integer, nullable=False, server_default="0"),
    Column("files_total", Integer),
    Column("files_skipped", Integer, nullable=False, server_default="0"),
    Column("timeout_seconds", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("runner", Text),  # local launcher: "host:pid:start_time" of the supervising process
    Column("k8s_namespace", Text),
    Column("k8s_name", Text),  # the IndexingRequest's name (Kubernetes launcher / operator)
    Column("k8s_job_name", Text),
    # The indexer's estimate over every phase (walk, parse, embed, write, vector index): the share
    # done and the seconds left when it last reported (migration 0004_progress_estimate).
    Column("progress_fraction", Float),
    Column("remaining_seconds", Float),
    # How many shards the run is split into (1: unsharded; migration 0006_sharded_runs).
    Column("shards", SmallInteger, nullable=False, server_default="1"),
    CheckConstraint(
        "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')",
        name="indexing_jobs_status_check",
    ),
    Index(
        "ix_indexing_jobs_active",
        "project_id",
        "status",
        postgresql_where=text("status IN ('pending', 'running')"),
    ),
    Index("ix_indexing_jobs_created_at", text("created_at DESC")),
    CheckConstraint("shards BETWEEN 1 AND 64", name="indexing_jobs_shards_check"),
)

# One row per shard of a sharded run (IndexStore.begin_shard / finish_shard): the generation all
# shards write, the shard's state and progress; the job's progress columns are their sum.
job_shards = Table(
    "job_shards",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("indexing_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("shard", SmallInteger, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("status", Text, nullable=False, server_default="running"),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("phase", Text),
    Column("message", Text),
    Column("files_seen", Integer, nullable=False, server_default="0"),
    Column("files_total", Integer),
    Column("files_indexed", Integer, nullable=False, server_default="0"),
    Column("files_skipped", Integer, nullable=False, server_default="0"),
    Column("chunks_created", Integer, nullable=False, server_default="0"),
    Column("progress_fraction", Float),
    Column("remaining_seconds", Float),
    Column("counters", JSONB),  # the shard's RunCounters at its end, summed into the run's summary
    Column("source_commit", Text),  # a git source's commit this shard checked out (all must agree)
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("job_id", "shard", name="job_shards_pkey"),
    CheckConstraint("status IN ('running', 'done')", name="job_shards_status_check"),
)

projects = Table(
    "projects",
    metadata,
    Column("project_id", Text, primary_key=True),
    Column("embedding_model", Text, nullable=False),
    Column("embedding_dimension", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Live chunks when term_stats was last computed (0: never): see index/term_stats.py.
    Column("term_rows", Integer, nullable=False, server_default="0"),
)

repositories = Table(
    "repositories",
    metadata,
    Column("id", Integer, Identity(), primary_key=True),
    Column("project_id", Text, ForeignKey("projects.project_id", ondelete="CASCADE"), nullable=False),
    Column("root_path", Text, nullable=False),
    Column("active_generation", Integer, nullable=False, server_default="0"),
    Column("last_indexed_at", DateTime(timezone=True)),
    Column("last_job_id", UUID(as_uuid=True)),
    # The version of what a run writes per file (INDEX_FORMAT in index/store.py): older
    # repositories are re-read in full by their next run and refused by the navigation tools.
    Column("index_format", Integer, nullable=False, server_default="0"),
    # What shaped its rows besides the content (IndexRun.chunking: lines per packed chunk, symbol
    # table, secret scanning), recorded at publish; other repositories of the project copy a file's
    # rows only from a repository with the same value (migration 0005_shared_content).
    Column("chunking", Text),
    UniqueConstraint("project_id", "root_path", name="uq_repositories_project_root"),
)

files = Table(
    "files",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("repository_id", Integer, ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False),
    Column("path", Text, nullable=False),
    Column("language", Text),
    Column("content_hash", LargeBinary, nullable=False),  # blake2b-128 of the raw bytes
    Column("size_bytes", BigInteger, nullable=False),
    Column("gen_from", Integer, nullable=False),
    Column("gen_to", Integer, nullable=False, server_default=str(LIVE)),
    Index("ix_files_repository_path", "repository_id", "path"),
    # Finding the same content in another repository of the project (IndexStore.copy_shared).
    Index("ix_files_content_hash", "content_hash"),
    # Path globs without a fixed leading directory (`**/net/http/**`): migration 0009.
    Index("ix_files_path_trgm", "path", postgresql_using="gin", postgresql_ops={"path": "gin_trgm_ops"}),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("file_id", BigInteger, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("repository_id", Integer, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("gen_from", Integer, nullable=False),
    Column("gen_to", Integer, nullable=False, server_default=str(LIVE)),
    Column("path", Text, nullable=False),
    Column("language", Text),
    Column("start_line", Integer, nullable=False),
    Column("end_line", Integer, nullable=False),
    Column("symbol", Text),
    Column("kind", Text, nullable=False),
    Column("content", Text, nullable=False),
    Column("embedding_dim", SmallInteger, nullable=False),
    # pgvector `vector` without a fixed dimension; HNSW indexes are partial expression indexes,
    # one per dimension in use (see index/vector_indexes.py).
    Column("embedding", Vector(), nullable=False),
    Column("search_tsv", TSVECTOR, nullable=False),
    Index("ix_chunks_file", "file_id"),
    Index("ix_chunks_project_repo_gen", "project_id", "repository_id", "gen_from", "gen_to"),
    Index("ix_chunks_search_tsv", "search_tsv", postgresql_using="gin"),
)

# The symbol table: what the navigation tools and exact-identifier ranking read. Rows belong to a
# file row (and so to its generation) and are written in the same transaction as its chunks.
symbols = Table(
    "symbols",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("file_id", BigInteger, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Text, nullable=False),
    Column("name", Text, nullable=False),  # the last part: "resolve"
    Column("qualified_name", Text, nullable=False),  # with its containers: "URLResolver.resolve"
    Column("parent", Text),  # the container's qualified name; None at module level
    Column("kind", Text, nullable=False),
    Column("start_line", Integer, nullable=False),  # the definition itself, without leading comments
    Column("end_line", Integer, nullable=False),
    Column("signature", Text, nullable=False),
    Index("ix_symbols_project_name", "project_id", "name"),
    Index("ix_symbols_file", "file_id"),
)

# Identifier occurrences: one row per file and name, with the lines it occurs on (as an
# identifier in the syntax tree: not inside comments or strings).
symbol_occurrences = Table(
    "symbol_occurrences",
    metadata,
    Column("file_id", BigInteger, ForeignKey("files.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("lines", ARRAY(Integer), nullable=False),
    Index("ix_symbol_occurrences_project_name", "project_id", "name"),
    Index("ix_symbol_occurrences_file", "file_id"),
)

# Each project's document frequencies of its most common lexemes (index/term_stats.py).
term_stats = Table(
    "term_stats",
    metadata,
    Column("project_id", Text, ForeignKey("projects.project_id", ondelete="CASCADE"), primary_key=True),
    Column("lexeme", Text, primary_key=True),
    Column("frequency", Float, nullable=False),  # share of the project's live chunks holding it
)
