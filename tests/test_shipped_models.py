"""A project indexed with the static model the package shipped before the current default keeps
working end to end: searched in every mode and re-indexed (incrementally or forced) with its own
model; it moves to the new table only when that table is named (EMBEDDING_MODEL_PATH)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from indexing import index_run
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.db.schema import LIVE
from mcp_server.embeddings import StaticEmbedder
from mcp_server.embeddings.static import SHIPPED_MODEL_DIRS
from mcp_server.index.embedding_text import embedding_text
from mcp_server.index.search import Searcher

pytestmark = pytest.mark.timeout(120)

OLD = "minilm-l6-static-v1"
FILES = {
    "net/status.py": 'def parse_status_line(raw):\n    """Split a status line."""\n    return raw.split()\n',
    "store/cache.py": 'def evict_oldest(cache):\n    """Drop the oldest entry."""\n    cache.popitem()\n',
}


def project_model(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(text("SELECT embedding_model FROM projects WHERE project_id = 'p'")).scalar_one()
        )


def live_chunks(engine: Engine, path: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT c.content, c.symbol, c.embedding::text AS vector FROM chunks c "
                    "JOIN files f ON f.id = c.file_id WHERE f.path = :p AND c.gen_to = :live ORDER BY c.id"
                ),
                {"p": path, "live": LIVE},
            )
        )


def test_an_older_shipped_model_stays_the_projects_until_the_new_table_is_named(
    clean_db: Engine, make_repo: Any
) -> None:
    old = StaticEmbedder(model_dir=SHIPPED_MODEL_DIRS[OLD])
    default = StaticEmbedder()
    assert default.model_id != OLD
    root: Path = make_repo(FILES)
    index_run(clean_db, root, old, project_id="p").run()
    assert project_model(clean_db) == OLD

    # The default embedder searches the old project with the old model: same results as searching
    # with the old model named explicitly, and no mismatch error in any mode.
    for mode in ("hybrid", "semantic", "lexical"):
        got = Searcher(clean_db, default).search("split a status line", project_id="p", mode=mode)
        want = Searcher(clean_db, old).search("split a status line", project_id="p", mode=mode)
        assert [(r.file_path, r.score) for r in got.results] == [(r.file_path, r.score) for r in want.results]
        assert got.results and got.results[0].file_path.endswith("net/status.py")

    # An incremental run with the default embedder embeds a changed file with the project's model.
    (root / "store" / "cache.py").write_text(
        FILES["store/cache.py"] + "\n\ndef size(cache):\n    return len(cache)\n"
    )
    index_run(clean_db, root, default, project_id="p").run()
    assert project_model(clean_db) == OLD
    chunks = live_chunks(clean_db, "store/cache.py")
    assert chunks and any("def size" in c.content for c in chunks)
    for chunk in chunks:
        stored = np.array([float(x) for x in chunk.vector.strip("[]").split(",")], dtype=np.float32)
        expected = old.embed_documents([embedding_text("store/cache.py", chunk.symbol, chunk.content)])[0]
        np.testing.assert_allclose(stored, expected, atol=1e-5)

    # A forced run with the default keeps the project's table: it would otherwise empty the
    # project's other repositories, which no one asked for.
    index_run(clean_db, root, default, project_id="p", force=True).run()
    assert project_model(clean_db) == OLD

    # Naming the new table (as EMBEDDING_MODEL_PATH does) and forcing moves the project to it.
    named = StaticEmbedder(model_dir=SHIPPED_MODEL_DIRS[default.model_id])
    index_run(clean_db, root, named, project_id="p", force=True).run()
    assert project_model(clean_db) == default.model_id
    got = Searcher(clean_db, default).search("split a status line", project_id="p", mode="semantic")
    assert got.results and got.results[0].file_path.endswith("net/status.py")
