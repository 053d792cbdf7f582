"""A dry run says what a run would index, from the indexer's own walk, and starts nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings
from mcp_server.frontends.operations import CodebaseService
from mcp_server.indexer.dry_run import plan_index

FILES: dict[str, str | bytes] = {
    "app.py": "def main():\n    return 1\n",
    "pkg/util.py": "x = 1\n" * 200,
    "pkg/server.go": "package pkg\n\nfunc Serve() {}\n",
    "docs/guide.md": "# Guide\n\ntext\n",
    "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
    ".env": "API_TOKEN=abc\n",
    "build.log": "noise\n",
    ".gitignore": "*.log\nvendor/\n",
    "vendor/lib.py": "ignored = True\n",
}


def test_the_plan_counts_languages_skips_and_the_largest_directories(make_repo: Any) -> None:
    root = make_repo(FILES)
    plan = plan_index(root, max_file_bytes=100_000, embedding_backend="static")
    assert plan["files_to_index"] == 5  # app.py, util.py, server.go, guide.md, .gitignore
    assert plan["by_language"]["python"] == 2 and plan["by_language"]["go"] == 1
    assert plan["skipped"] == {"binary": 1, "secret_file": 1}
    assert plan["ignored_paths"] == 2  # build.log, vendor/
    assert plan["largest_directories"][0]["directory"] == "pkg/"
    assert plan["bytes"] == sum(
        len(FILES[p]) for p in ("app.py", "pkg/util.py", "pkg/server.go", "docs/guide.md", ".gitignore")
    )
    assert plan["estimated_seconds"] >= 0 and "estimated_tokens" not in plan


def test_an_http_embedder_plan_counts_tokens(make_repo: Any) -> None:
    plan = plan_index(make_repo(FILES), max_file_bytes=100_000, embedding_backend="openai")
    assert plan["estimated_tokens"] == plan["bytes"] // 4


def test_a_dry_run_through_the_service_starts_no_job_and_writes_nothing(
    settings: Settings, clean_db: Engine, make_repo: Any
) -> None:
    root = make_repo(FILES)
    plan = CodebaseService(settings, engine=clean_db).plan_indexing(str(root))
    assert plan["dry_run"] is True and plan["repository"] == str(root.resolve())
    with clean_db.connect() as conn:
        counts = conn.execute(
            text("SELECT (SELECT count(*) FROM indexing_jobs), (SELECT count(*) FROM repositories)")
        ).one()
    assert tuple(counts) == (0, 0)


def test_a_repository_opted_out_of_the_secret_filter_plans_its_secret_files(
    settings: Settings, clean_db: Engine, make_repo: Any, tmp_path: Path
) -> None:
    root = make_repo(FILES)
    opted = settings.replace(indexing={"index_secrets_roots": [tmp_path]})
    plan = CodebaseService(opted, engine=clean_db).plan_indexing(str(root))
    assert "secret_file" not in plan["skipped"] and plan["files_to_index"] == 6
