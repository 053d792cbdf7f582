"""Helpers the benchmarks share, kept once here so their figures are computed the same way.

The benches run as `python bench/NAME.py`, which puts bench/ on sys.path: they import this as
`from _common import ...` (as search_quality.py imports quality_corpora). Nothing here imports the
product at module level: a bench points CODEBASE_MCP_HOME at its private home (private_home)
before it imports mcp_server, and spawned or forkserver children import the bench again.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank q-th percentile (q in 0..100) of `values`, one of the samples.

    Every bench reports p50/p95 with this one rule so their figures compare; no interpolation,
    so a p95 is a latency that was actually measured."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def make_show(
    name_width: int, value_width: int, *, indent: str = "  ", met: str = "ok"
) -> Callable[..., None]:
    """A `show(name, value, target="-", ok=None)` that prints one figure beside its target.

    The widths, indent and pass word are each bench's own (kept as they were, so the output
    still lines up with earlier runs); `ok` None prints no verdict, False prints MISSED."""

    def show(name: str, value: str, target: str = "-", ok: bool | None = None) -> None:
        mark = "" if ok is None else (f"  {met}" if ok else "  MISSED")
        print(f"{indent}{name:<{name_width}} {value:<{value_width}} target {target}{mark}", flush=True)

    return show


def baseline_walk_hash(root: Path, max_bytes: int) -> tuple[int, float]:
    """Walk `root` as the indexer does, read and hash every file: (files, seconds).

    The floor any indexer pays on this machine, measured in the same run, so indexing figures can
    be read as a ratio to it on a noisy shared machine."""
    from mcp_server.indexer.walker import walk_repository

    started = time.perf_counter()
    count = 0
    for source in walk_repository(root, max_file_bytes=max_bytes):
        with open(source.path, "rb") as handle:
            hashlib.blake2b(handle.read(), digest_size=16).digest()
        count += 1
    return count, time.perf_counter() - started


def private_home(
    prefix: str, *, path: Path | None = None, inherit: bool = False, via: str | None = None
) -> Path:
    """Point this process at a private CODEBASE_MCP_HOME and return it.

    Without DATABASE_URL the product starts its embedded PostgreSQL in that home, so a bench
    never writes into the user's own index or database. Call it before importing mcp_server.
      - path: use this directory (made if missing) rather than a new temporary one;
      - inherit: reuse CODEBASE_MCP_HOME when already set (worker processes that import the
        bench again, or a bench imported by another one, share the parent's home);
      - via: the environment variable that hands the home to spawned children, which reuse it."""
    if via and os.environ.get(via):
        home = Path(os.environ[via])
    elif inherit and "CODEBASE_MCP_HOME" in os.environ:
        home = Path(os.environ["CODEBASE_MCP_HOME"])
    elif path is not None:
        home = path
        home.mkdir(parents=True, exist_ok=True)
    else:
        home = Path(tempfile.mkdtemp(prefix=prefix))
    if via:
        os.environ[via] = str(home)
    os.environ["CODEBASE_MCP_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    return home


def stop_embedded_postgres(home: Path) -> None:
    """Wait for the embedded server in `home` to stop (its last user stops it), else stop it.

    For benches whose server must be gone before they return (k8s_reflection.py); the others
    leave it to stop itself when its last user goes."""
    pid_file = home / "pgdata" / "postmaster.pid"
    deadline = time.monotonic() + 5
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_file.exists():
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def remove_home(home: Path, *, dispose: bool = False, stop_postgres: bool = False) -> None:
    """Tear down what private_home made: the home, with its database files, removed.

    dispose: close this process's engines first (their connections into the server);
    stop_postgres: wait for or stop the embedded server first (stop_embedded_postgres)."""
    if dispose:
        from mcp_server.db.database import dispose_engines

        dispose_engines()
    if stop_postgres:
        stop_embedded_postgres(home)
    shutil.rmtree(home, ignore_errors=True)


def settings_index_run(
    settings: Any, store: Any, embedder: Any, *, project_id: str, root: Path, **options: Any
) -> Any:
    """The IndexRun an indexer process would build from `settings` (file size limit, parser
    workers, chunk packing); `options` are IndexRun's other arguments (force, repository_key...).
    Imports the pipeline when called: a bench imports this module before mcp_server."""
    from mcp_server.indexer.pipeline import IndexRun

    return IndexRun(
        store=store,
        embedder=embedder,
        project_id=project_id,
        root=root,
        max_file_bytes=settings.indexing.max_file_bytes,
        workers=settings.indexing.workers,
        pack_lines=settings.indexing.chunk_pack_lines,
        **{"force": False, **options},
    )
