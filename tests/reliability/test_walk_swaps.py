"""Issue 12, items 2 (hard links), 3 (a directory swapped for a symlink during the walk) and 8 (one
unreadable symlink failed the job).

Before: replacing `zzz/` with a link to another directory while a job ran indexed that directory
(the walker trusted the listed d_type and opened by path); a file swapped for a symlink was read
through it; a hard link to a file outside the repository was indexed; `ln -s /proc/1/cwd link` ended
the job with PermissionError (`os.path.realpath` outside the walker's error handling).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import unprivileged
from fake_embedding_server import FakeEmbeddingServer
from reliability.support import (
    TERMINAL,
    lexical_hits,
    many_functions,
    service,
    wait_for,
    wait_for_status,
    write_repo,
)

from mcp_server.indexer import walker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

OUTSIDE = "def leaked():\n    return 'outsidemarker'\n"


def _outside(tmp_path: Path) -> Path:
    return write_repo(tmp_path / "outside", {f"secret_{i}.py": OUTSIDE for i in range(20)})


def test_a_directory_and_a_file_swapped_for_symlinks_during_a_real_walk_stay_outside(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODEBASE_CHUNK_PACK_LINES", "0")
    monkeypatch.setenv("CODEBASE_INDEXER_WORKERS", "1")
    outside = _outside(tmp_path)
    files = many_functions("swapmarker", files=120, functions=20)
    files.update({f"zzz/mod_{i}.py": "def late():\n    return 'zzzmarker'\n" for i in range(5)})
    repo = write_repo(tmp_path / "repo", files)
    late_file = repo / sorted(name for name in files if name.startswith("pkg/"))[-1]
    slow_embedder.delay_seconds = 0.3
    before = slow_embedder.requests
    svc = service()
    job = svc.start_indexing(str(repo), project_id="swap")["job_id"]
    # The walk pauses while the first batch is embedded: pkg/ is half read, zzz/ not opened yet.
    wait_for(lambda: slow_embedder.requests > before, timeout=60, what="the first embedding batch")
    (repo / "zzz").rename(repo / "zzz.orig")
    (repo / "zzz").symlink_to(outside, target_is_directory=True)
    late_file.unlink()
    late_file.symlink_to(outside / "secret_0.py")
    slow_embedder.delay_seconds = 0
    final = wait_for_status(svc, job, TERMINAL, timeout=120)
    assert final["status"] == "completed", final["error_message"]
    assert not lexical_hits(svc, "outsidemarker", "swap"), "files outside the repository were indexed"
    assert lexical_hits(svc, "swapmarker", "swap")
    assert "changed_during_walk" in final["progress_message"], final["progress_message"]
    print(f"\nissue 12 item 3: swap during the walk -> {final['progress_message']}")


def test_a_hard_link_to_a_file_outside_is_not_read_and_inside_pairs_are_read_once(
    settings: Any, tmp_path: Path
) -> None:
    outside = _outside(tmp_path)
    repo = write_repo(
        tmp_path / "repo",
        {
            "main.py": "def main():\n    return 'mainmarker'\n",
            "a/pair.py": "def pair():\n    return 'pairmarker'\n",
        },
    )
    os.link(outside / "secret_0.py", repo / "linked_secret.py")
    os.link(repo / "a" / "pair.py", repo / "b_pair.py")
    stats = walker.WalkStats()
    found = [s.relative_path for s in walker.walk_repository(repo, max_file_bytes=100_000, stats=stats)]
    assert found == ["b_pair.py", "main.py"]  # the pair once, at its last name in walk order
    assert stats.skipped[walker.HARDLINK] == 2 and "linked_secret.py" in stats.examples[walker.HARDLINK]

    svc = service()
    final = wait_for_status(svc, svc.start_indexing(str(repo), project_id="links")["job_id"], TERMINAL)
    assert final["status"] == "completed", final["error_message"]
    assert not lexical_hits(svc, "outsidemarker", "links")
    assert len(lexical_hits(svc, "pairmarker", "links")) == 1
    assert "hardlink" in final["progress_message"]


def test_an_unreadable_symlink_is_a_skip_not_a_failed_walk(tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", {"good.py": "x = 1\n", "locked/inner.py": "y = 2\n"})
    (repo / "proc_link").symlink_to("/proc/1/cwd")  # readlink of it is refused to other users
    (repo / "into_locked.py").symlink_to("locked/inner.py")
    (repo / "locked").chmod(0)
    code = f"""
from pathlib import Path
from mcp_server.indexer import walker
stats = walker.WalkStats()
root = Path({str(repo)!r})
found = [s.relative_path for s in walker.walk_repository(root, max_file_bytes=10_000, stats=stats)]
print(found)
print(sorted((k, v) for k, v in stats.skipped.items()))
"""
    try:
        result = unprivileged.run_python(code)
    finally:
        (repo / "locked").chmod(0o755)
    assert result.returncode == 0, result.stderr[-2000:]
    found, skipped = result.stdout.splitlines()
    assert found == "['good.py']"
    assert "('symlink_outside', 1)" in skipped and "('broken_symlink', 1)" in skipped
    assert "('unreadable', 1)" in skipped
