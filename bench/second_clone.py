"""Second-clone benchmark: how long a second copy of an indexed tree takes in the same project.

    .venv/bin/python bench/second_clone.py [TREE]     (default: the running interpreter's stdlib)

Copies TREE to A, indexes it, copies A to B (another path, same project) and indexes B: B's
files are found in A by path and content hash and their rows copied (IndexStore.copy_shared), not
parsed or embedded again. Prints both times, their ratio, the files and chunks copied and where
the second run spent its time. Runs against a private embedded PostgreSQL in a temporary
CODEBASE_MCP_HOME, with the configured embedder and settings.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import sysconfig
import time
from pathlib import Path

from _common import private_home, remove_home, settings_index_run

HOME = private_home("codebase-mcp-bench-")

from sqlalchemy import text  # noqa: E402

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402
from mcp_server.index.catalogue import IndexCatalogue  # noqa: E402
from mcp_server.index.store import INDEX_FORMAT, SHARED_LOOKUP, IndexStore  # noqa: E402
from mcp_server.indexer.entrypoint import embedder_from_settings  # noqa: E402
from mcp_server.indexer.pipeline import RunCounters  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("tree", nargs="?", default=sysconfig.get_paths()["stdlib"])
    args = parser.parse_args()

    settings = load_settings()
    engine = get_engine(settings)
    embedder = embedder_from_settings(settings)
    store = IndexStore(engine)
    first = HOME / "clones" / "a"
    second = HOME / "clones" / "b"
    print(f"copying {args.tree} to {first} ...", flush=True)
    shutil.copytree(args.tree, first, symlinks=True, ignore_dangling_symlinks=True)
    shutil.copytree(first, second, symlinks=True)

    def index(root: Path) -> tuple[float, RunCounters]:
        run = settings_index_run(settings, store, embedder, project_id="bench", root=root)
        started = time.perf_counter()
        counters = run.run()
        return time.perf_counter() - started, counters

    first_seconds, a = index(first)
    print(
        f"first clone:  {first_seconds:7.1f} s  {a.files_indexed} files, {a.chunks_embedded} chunks embedded"
    )
    second_seconds, b = index(second)
    print(
        f"second clone: {second_seconds:7.1f} s  {b.files_indexed} files, {b.files_copied} copied "
        f"({b.chunks_copied} chunks), {b.chunks_embedded} chunks embedded"
    )
    print(f"ratio second / first: {second_seconds / first_seconds:.3f}")
    stages = ", ".join(
        f"{stage} {seconds:.1f} s" for stage, seconds in sorted(b.seconds.items(), key=lambda s: -s[1])
    )
    print(f"second run, time per stage: {stages}")
    for usage in IndexCatalogue(engine).disk_usage():
        chunks, chunk_bytes = int(usage["chunks"]), int(usage["chunk_bytes"])  # type: ignore[call-overload]
        print(
            f"project {usage['project_id']}: {chunks} chunk rows, {chunk_bytes / 2**20:.1f} MiB "
            f"({chunk_bytes / max(1, chunks):.0f} bytes each, indexes not counted; each clone holds its own)"
        )
    with engine.connect() as conn:
        repo_id, chunking = conn.execute(
            text("SELECT id, chunking FROM repositories WHERE root_path = :r"), {"r": str(second)}
        ).one()
        hashes = conn.execute(text("SELECT content_hash FROM files LIMIT 256")).scalars().all()
        plan = conn.execute(
            text(f"EXPLAIN {SHARED_LOOKUP}"),
            {"hashes": hashes, "p": "bench", "me": repo_id, "fmt": INDEX_FORMAT, "k": chunking},
        ).scalars()
        uses_index = any("ix_files_content_hash" in line for line in plan)
    print(f"lookup of 256 hashes uses ix_files_content_hash: {uses_index}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        remove_home(HOME, dispose=True)
