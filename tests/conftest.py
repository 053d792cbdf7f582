"""Shared fixtures: one embedded PostgreSQL for the whole test session, emptied between tests.

CODEBASE_MCP_HOME points at a temporary directory before anything imports the settings, so
subprocesses the tests start (supervisors, indexers, `codebase-mcp serve`) share the same
embedded server and data directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="codebase-mcp-test-"))
os.environ["CODEBASE_MCP_HOME"] = str(_HOME)
os.environ.pop("DATABASE_URL", None)
os.environ.setdefault("CODEBASE_INDEXER_WORKERS", "2")
# No lingering database or CLI helper outlives a test unless the test asks for one.
os.environ.setdefault("CODEBASE_LINGER_SECONDS", "0")

from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from mcp_server.core.settings import Settings, load_settings  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402


@pytest.fixture(scope="session")
def home() -> Path:
    return _HOME


@pytest.fixture(scope="session")
def session_settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def engine(session_settings: Settings) -> Engine:
    return get_engine(session_settings)


@pytest.fixture
def clean_db(engine: Engine) -> Engine:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE indexing_jobs, projects, repositories, files, chunks CASCADE"))
    return engine


@pytest.fixture
def settings(session_settings: Settings, clean_db: Engine) -> Settings:
    return session_settings


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The shipped static model (a file may define its own `embedder` to record or vary it)."""
    from mcp_server.embeddings import StaticEmbedder

    return StaticEmbedder()


@pytest.fixture
def searcher(clean_db: Engine, embedder):  # type: ignore[no-untyped-def]
    from mcp_server.index.search import Searcher

    return Searcher(clean_db, embedder)


@pytest.fixture
def make_repo(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Create a repository from {relative path: content}."""

    def _make(files: dict[str, str | bytes], name: str = "repo") -> Path:
        root = tmp_path / name
        for rel, content in files.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        root.mkdir(parents=True, exist_ok=True)
        return root

    return _make


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from mcp_server.db import embedded
    from mcp_server.db.database import dispose_engines

    dispose_engines()
    # Stop the suite's server now, while pytest's streams are open: from the atexit hook its
    # "stopped" log line hit a closed capture stream ("--- Logging error ---" in CI).
    for server in list(embedded._servers.values()):
        server.release()


@pytest.fixture(scope="session", autouse=True)
def _remove_home() -> Iterator[None]:
    yield
    shutil.rmtree(_HOME / "runs", ignore_errors=True)
