"""How long a git source takes to reach the indexer: this repository as a file:// remote.

    .venv/bin/python bench/git_fetch.py [--repo PATH]

Clones PATH (default: this checkout) bare into a temporary directory, then times three runs of
`git_source.fetch` through a fresh cache: the first (a shallow clone), one after a new commit,
and one with nothing new; prints each time and the cache's size.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from mcp_server.indexer import git_source
from mcp_server.indexer.git_cache import GitCache


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-bench-git-") as tmp:
        root = Path(tmp)
        _git("clone", "--quiet", "--bare", args.repo, str(root / "remote.git"), cwd=root)
        url = f"file://{root / 'remote.git'}"
        cache = GitCache(root / "home" / "git")

        def timed(label: str, name: str) -> None:
            started = time.perf_counter()
            with git_source.fetch(url, None, cache=cache, name=name) as fetched:
                elapsed = time.perf_counter() - started
            size = _size_mb(cache.repository(url))
            print(f"{label:<16} {elapsed:5.2f} s  commit {fetched.commit[:12]}  cache {size:.1f} MB")

        timed("first run", "first")
        _git("clone", "--quiet", str(root / "remote.git"), str(root / "work"), cwd=root)
        work = root / "work"
        (work / "BENCH_NEW_FILE.md").write_text("one new commit\n")
        _git("add", ".", cwd=work)
        _git(
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.invalid",
            "commit",
            "-qm",
            "new",
            cwd=work,
        )
        _git("push", "--quiet", "origin", "HEAD", cwd=work)
        timed("one new commit", "second")
        timed("nothing new", "third")


if __name__ == "__main__":
    main()
