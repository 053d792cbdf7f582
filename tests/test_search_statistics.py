"""Word statistics are per project: a project ranks the same whatever else the database holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from indexing import index_run
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.embeddings import StaticEmbedder
from mcp_server.index import term_stats
from mcp_server.index.search import Searcher

pytestmark = pytest.mark.timeout(180)


def index(engine: Engine, root: Path, project: str) -> None:
    index_run(engine, root, project_id=project).run()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE chunks"))


def ranking(engine: Engine, project: str, query: str) -> list[tuple[str, float]]:
    results = Searcher(engine, StaticEmbedder()).search(query, project_id=project, mode="lexical", limit=10)
    return [(r.file_path, r.score) for r in results.results]


def test_a_project_ranks_the_same_whether_or_not_other_projects_are_indexed(
    make_repo: Any, clean_db: Engine
) -> None:
    # In `mine`, "zephyr" is rare and "quokka" common; in the much larger `theirs` it is the other
    # way round. Whole-table statistics would let `theirs` decide which word counts in `mine`.
    files = {"zephyr.py": "def first():\n    return 'zephyr'\n"}
    files |= {f"q{i}.py": f"def other_{i}():\n    return 'quokka number {i}'\n" for i in range(12)}
    mine = make_repo(files, name="mine")
    theirs = make_repo(
        {f"t{i}.py": f"def theirs_{i}():\n    return 'zephyr zephyr item {i}'\n" for i in range(300)},
        name="theirs",
    )
    index(clean_db, mine, "mine")
    alone = ranking(clean_db, "mine", "zephyr quokka")
    index(clean_db, theirs, "theirs")
    assert ranking(clean_db, "mine", "zephyr quokka") == alone
    assert alone[0][0] == "zephyr.py"


def test_statistics_are_recomputed_only_when_the_project_changed_size(
    make_repo: Any, clean_db: Engine
) -> None:
    root = make_repo({f"m{i}.py": f"def f_{i}():\n    return {i}\n" for i in range(20)})
    index(clean_db, root, "default")
    with clean_db.connect() as conn:
        rows = conn.execute(text("SELECT term_rows FROM projects WHERE project_id = 'default'")).scalar_one()
        lexemes = conn.execute(
            text("SELECT count(*) FROM term_stats WHERE project_id = 'default'")
        ).scalar_one()
    assert rows > 0 and lexemes > 0
    assert term_stats.refresh(clean_db, "default") is False  # nothing changed
    assert term_stats.refresh(clean_db, "default", force=True) is True
    with clean_db.connect() as conn:
        stats = term_stats.load(conn, "default")
    assert stats is not None and stats.rows == rows and 0 < stats.floor < 1
