"""Issue 12, item 7: hostile ignore files.

Before: a `.gitignore` pattern `*a*a*a*a*a*a*a*a*a*a*b` cost about 65 s per path (pathspec's
backtracking regular expressions), a 1.3 MB `.gitignore` slowed 300 files to 15 s, and a FIFO at
`.git/info/exclude` hung the job until its timeout.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from reliability.support import TERMINAL, service, wait_for_status, write_repo

from mcp_server.indexer import walker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

PATHOLOGICAL = "*a*a*a*a*a*a*a*a*a*a*b"


def _repo(tmp_path: Path, gitignore: str) -> Path:
    files = {f"src/{'a' * 40}_{i:03d}.py": f"def f{i}():\n    return {i}\n" for i in range(300)}
    files[".gitignore"] = gitignore
    return write_repo(tmp_path / "repo", files)


def _walk(root: Path) -> tuple[list[str], walker.WalkStats, float]:
    stats = walker.WalkStats()
    began = time.monotonic()
    found = [s.relative_path for s in walker.walk_repository(root, max_file_bytes=100_000, stats=stats)]
    return found, stats, time.monotonic() - began


def test_a_pathological_pattern_is_dropped_with_a_warning_naming_it(settings: Any, tmp_path: Path) -> None:
    root = _repo(tmp_path, f"*.log\n{PATHOLOGICAL}\n")
    found, stats, seconds = _walk(root)
    assert seconds < 5, f"the walk took {seconds:.1f} s"
    assert len(found) == 301  # 300 sources and the .gitignore itself
    assert any(PATHOLOGICAL in warning and "too complex" in warning for warning in stats.warnings)

    svc = service()
    final = wait_for_status(svc, svc.start_indexing(str(root), project_id="ignore")["job_id"], TERMINAL)
    assert final["status"] == "completed", final["error_message"]
    assert PATHOLOGICAL in final["progress_message"]


def test_a_huge_ignore_file_is_not_read(tmp_path: Path) -> None:
    patterns = "".join(f"generated_{i}_*.tmp\n" for i in range(60_000))  # about 1.3 MB
    root = _repo(tmp_path, patterns)
    found, stats, seconds = _walk(root)
    assert seconds < 5, f"the walk took {seconds:.1f} s"
    assert len(found) == 300  # the .gitignore itself is over max_file_bytes
    assert any(".gitignore ignored" in warning and "limit" in warning for warning in stats.warnings)


def test_a_gitignore_with_many_patterns_keeps_the_first_thousand(tmp_path: Path) -> None:
    patterns = "src/*_000.py\n" + "".join(f"gen{i}/\n" for i in range(5_000))
    root = _repo(tmp_path, patterns)
    found, stats, seconds = _walk(root)
    assert seconds < 5
    assert len(found) == 300  # src/..._000.py is still ignored
    assert any("patterns after the first" in warning for warning in stats.warnings)


@pytest.mark.timeout(20)
def test_a_fifo_at_git_info_exclude_does_not_hang_the_walk(tmp_path: Path) -> None:
    root = _repo(tmp_path, "*.log\n")
    (root / ".git" / "info").mkdir(parents=True)
    os.mkfifo(root / ".git" / "info" / "exclude")  # opening it for reading blocks until a writer comes
    found, _, seconds = _walk(root)
    assert len(found) == 301 and seconds < 5
