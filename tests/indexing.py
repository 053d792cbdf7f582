"""The IndexRun the tests build: the product's pipeline with the suite's defaults (one parser
worker, files up to 1 MB, the shipped static model), so each test names only what it varies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from mcp_server.embeddings import StaticEmbedder
from mcp_server.embeddings.base import Embedder
from mcp_server.index.store import IndexStore
from mcp_server.indexer.pipeline import IndexRun

STATIC = StaticEmbedder()


def index_run(
    engine: Engine,
    root: Path,
    embedder: Embedder | Any = STATIC,
    *,
    project_id: str = "default",
    force: bool = False,
    **options: Any,
) -> IndexRun:
    defaults: dict[str, Any] = {"max_file_bytes": 1_000_000, "workers": 1}
    return IndexRun(
        store=IndexStore(engine),
        embedder=embedder,
        project_id=project_id,
        root=root,
        force=force,
        **{**defaults, **options},
    )
