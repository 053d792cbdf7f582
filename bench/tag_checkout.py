"""Moving an index from one tag to the next: what a git job at a new tag costs after the old one.

    PYTHONPATH=. .venv/bin/python bench/tag_checkout.py [--package django] [--versions 5.0.9,5.1.3]

Builds a git repository whose two tagged commits are two releases of a package, as published on
PyPI (the sdists, downloaded with pip into ~/.cache/codebase-mcp/bench-sdists once; never
committed here). Then, through the product's own path (CodebaseService.start_indexing with a
file:// git_url, the local launcher, the git cache):
  1. project `tags`: the first tag, a full index;
  2. project `tags`: the second tag (its own repository, url#tag, in the same project): files whose
     path and content are unchanged are copied from the first tag's rows, not parsed or embedded;
  3. baseline, project `fresh`: the second tag alone, a full index, in the same run.
Prints each job's time (the row's started_at to completed_at) and the ratio of 2 to 3. Runs
against a private embedded PostgreSQL in a temporary CODEBASE_MCP_HOME.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from _common import make_show, private_home, remove_home

HOME = private_home("codebase-mcp-tags-")

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.frontends.operations import CodebaseService  # noqa: E402

show = make_show(40, 44)
SDISTS = Path("~/.cache/codebase-mcp/bench-sdists").expanduser()


def git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@invalid", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@invalid", "PATH": "/usr/bin:/bin:/usr/local/bin"}  # fmt: skip
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def sdist(package: str, version: str) -> Path:
    SDISTS.mkdir(parents=True, exist_ok=True)
    found = [
        p for p in SDISTS.glob("*.tar.gz") if p.name.lower().startswith(f"{package}-{version}.tar".lower())
    ]
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"{package}=={version}", "-d", str(SDISTS)],
            check=True,
        )  # fmt: skip
        found = [
            p
            for p in SDISTS.glob("*.tar.gz")
            if p.name.lower().startswith(f"{package}-{version}.tar".lower())
        ]
    return found[0]


def build_repository(package: str, versions: list[str], where: Path) -> Path:
    """One commit per release, tagged v<version>: the work tree holds exactly that sdist."""
    work = where / "work"
    work.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    for version in versions:
        for child in work.iterdir():
            if child.name != ".git":
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        with tempfile.TemporaryDirectory(dir=where) as unpacked, tarfile.open(sdist(package, version)) as tar:
            tar.extractall(unpacked, filter="data")
            (top,) = Path(unpacked).iterdir()
            for child in top.iterdir():
                shutil.move(str(child), work / child.name)
        git("add", "--all", cwd=work)
        git("commit", "--quiet", "-m", f"{package} {version}", cwd=work)
        git("tag", f"v{version}", cwd=work)
    return work


def index(svc: CodebaseService, url: str, ref: str, project: str) -> tuple[float, dict[str, object]]:
    job_id = svc.start_indexing(git_url=url, ref=ref, project_id=project)["job_id"]
    while (status := svc.get_status(job_id))["status"] not in ("completed", "failed", "cancelled"):
        time.sleep(0.2)
    if status["status"] != "completed":
        raise SystemExit(f"{ref} in {project}: {status['status']}: {status.get('error_message')}")
    job = svc.jobs.get(job_id)
    assert job.started_at is not None and job.completed_at is not None
    return (job.completed_at - job.started_at).total_seconds(), status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--package", default="django")
    parser.add_argument("--versions", default="5.0.9,5.1.3", help="two releases, older first")
    args = parser.parse_args()
    old, new = args.versions.split(",")
    work = build_repository(args.package, [old, new], HOME / "repository")
    url = f"file://{work}"
    files = len(git("ls-files", cwd=work).splitlines())
    show("repository", f"{args.package} {old} -> {new}, {files:,} files at v{new}")
    show("changed between the tags", git("diff", "--shortstat", f"v{old}", f"v{new}", cwd=work).strip())

    svc = CodebaseService(load_settings())
    first, _ = index(svc, url, f"v{old}", "tags")
    show(f"1. v{old}, full index", f"{first:.1f} s")
    second, status = index(svc, url, f"v{new}", "tags")
    show(f"2. v{new} after v{old}, same project", f"{second:.1f} s")
    show("   its summary", str(status.get("progress_message"))[:220])
    fresh, _ = index(svc, url, f"v{new}", "fresh")
    show(f"3. baseline: v{new} alone, full index", f"{fresh:.1f} s")
    show("2 / 3 (the move to the next tag)", f"{second / fresh:.2f}x")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        remove_home(HOME, dispose=True, stop_postgres=True)
