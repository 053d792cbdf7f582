"""Migrations upgrade and downgrade cleanly, and the migrated schema matches the code's tables."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine

from mcp_server.db import database
from mcp_server.db.schema import metadata


@pytest.fixture
def scratch_engine(engine: Engine) -> Engine:
    """A separate, empty database on the same embedded server."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP DATABASE IF EXISTS migration_scratch WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE migration_scratch"))
    scratch = create_engine(engine.url.set(database="migration_scratch"))
    yield scratch
    scratch.dispose()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("DROP DATABASE IF EXISTS migration_scratch WITH (FORCE)"))


def test_upgrade_creates_every_table_the_code_uses(scratch_engine: Engine) -> None:
    database.upgrade(scratch_engine)
    assert database.current_revision(scratch_engine) == database.head_revision(scratch_engine)
    inspector = inspect(scratch_engine)
    for table in metadata.tables.values():
        columns = {c["name"] for c in inspector.get_columns(table.name)}
        assert columns == {c.name for c in table.columns}, table.name
        indexes = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= indexes, table.name


def test_the_jobs_table_has_the_active_partial_index_and_status_check(scratch_engine: Engine) -> None:
    database.upgrade(scratch_engine)
    with scratch_engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_indexing_jobs_active'")
        ).scalar_one()
        assert "WHERE" in definition and "pending" in definition and "running" in definition
        with pytest.raises(Exception, match="indexing_jobs_status_check"):
            conn.execute(
                text(
                    "INSERT INTO indexing_jobs (id, repo_path, project_id, status) "
                    "VALUES (gen_random_uuid(), '/x', 'p', 'exploded')"
                )
            )


def test_a_path_glob_without_a_leading_directory_can_use_the_trigram_index(scratch_engine: Engine) -> None:
    """`**/net/http/**` is a regular expression with no fixed prefix: only a trigram index serves it."""
    from mcp_server.index.search.query import glob_to_regex

    database.upgrade(scratch_engine)
    with scratch_engine.connect() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            row[0]
            for row in conn.execute(
                text("EXPLAIN SELECT id FROM files WHERE path ~ :r"), {"r": glob_to_regex("**/net/http/**")}
            )
        )
    assert "ix_files_path_trgm" in plan, plan


def test_downgrade_to_base_removes_everything_and_upgrade_works_again(scratch_engine: Engine) -> None:
    database.upgrade(scratch_engine)
    database.downgrade(scratch_engine, "base")
    assert database.current_revision(scratch_engine) is None
    remaining = set(inspect(scratch_engine).get_table_names()) - {"alembic_version"}
    assert remaining == set()
    database.upgrade(scratch_engine)
    assert database.current_revision(scratch_engine) == database.head_revision(scratch_engine)


def test_upgrading_an_up_to_date_database_is_a_no_op(scratch_engine: Engine) -> None:
    database.upgrade(scratch_engine)
    database.upgrade(scratch_engine)
    assert database.current_revision(scratch_engine) == database.head_revision(scratch_engine)


@pytest.mark.parametrize("early_search_build", [False, True])
def test_a_database_at_the_symbol_table_revision_upgrades_to_head(
    scratch_engine: Engine, early_search_build: bool
) -> None:
    database.upgrade(scratch_engine, "0002_symbol_table")
    if early_search_build:  # an early build of the search branch created term_stats in 0002
        with scratch_engine.begin() as conn:
            conn.execute(text("ALTER TABLE projects ADD COLUMN term_rows integer NOT NULL DEFAULT 0"))
            conn.execute(
                text(
                    "CREATE TABLE term_stats (project_id text, lexeme text, frequency float8, "
                    "PRIMARY KEY (project_id, lexeme))"
                )
            )
    database.upgrade(scratch_engine)
    assert database.current_revision(scratch_engine) == database.head_revision(scratch_engine)
    assert "term_stats" in inspect(scratch_engine).get_table_names()


def test_the_head_read_from_the_files_is_alembics_single_head(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    from mcp_server.db import revisions

    script = ScriptDirectory.from_config(database._alembic_config(engine))
    assert script.get_heads() == ["0010_halfvec_hnsw"]
    assert revisions.head_from_files() == script.get_current_head()


def test_the_vector_graphs_become_halfvec_ones_dropped_by_the_upgrade_and_rebuilt_by_restore(
    scratch_engine: Engine,
) -> None:
    """0010 drops each project's `vector` graph (search's halfvec ordering cannot use it) and leaves
    building the halfvec one to restore_missing: an upgrade must not run minutes of builds."""
    from mcp_server.index.vector_indexes import BuildBudget, VectorIndexes, vector_index_name

    database.upgrade(scratch_engine, "0009_files_path_trigrams")
    old = "ix_chunks_hnsw_0123456789ab_4"
    with scratch_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (project_id, embedding_model, embedding_dimension) VALUES ('p', 'm', 4)"
            )
        )
        conn.execute(
            text(
                f"CREATE INDEX {old} ON chunks USING hnsw ((embedding::vector(4)) vector_cosine_ops) "
                "WHERE project_id = 'p' AND embedding_dim = 4"
            )
        )
        conn.execute(text("CREATE INDEX ix_chunks_unrelated ON chunks (id)"))
    database.upgrade(scratch_engine)
    names = {i["name"] for i in inspect(scratch_engine).get_indexes("chunks")}
    assert old not in names and "ix_chunks_unrelated" in names

    assert VectorIndexes(scratch_engine, BuildBudget(64 * 2**20, 0)).restore_missing() == ["p"]
    with scratch_engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"), {"n": vector_index_name("p", 4)}
        ).scalar_one()
    assert "halfvec(4)" in definition and "halfvec_cosine_ops" in definition

    database.downgrade(scratch_engine, "0009_files_path_trigrams")
    names = {i["name"] for i in inspect(scratch_engine).get_indexes("chunks")}
    assert vector_index_name("p", 4) not in names
