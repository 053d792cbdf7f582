"""What the embedded server's own settings (db.embedded.SERVER_SETTINGS) buy a full index.

    PYTHONPATH=. .venv/bin/python bench/embedded_settings.py [--corpus DIR] [--repeat 1]

Each leg is a child process with a fresh private CODEBASE_MCP_HOME (its own embedded PostgreSQL,
made by initdb) that indexes the corpus once (default: the running interpreter's stdlib, as
index_speed.py) with IndexRun, then reports what the server wrote: WAL bytes and full-page images
(pg_stat_wal) and checkpoints asked for by WAL volume rather than by time (pg_stat_checkpointer).
Legs alternate: PostgreSQL's defaults, then SERVER_SETTINGS (`--repeat 2`: A B A B). The WAL and
checkpoint counts are properties of the workload, nearly free of the machine's noise; the wall
time is not (a shared machine): read the ratio of the legs run back to back.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from _common import make_show, private_home, remove_home, settings_index_run, stop_embedded_postgres

show = make_show(36, 44)


def leg(corpus: Path, settings_name: str) -> dict[str, object]:
    """One full index in this process (the child): its home is fresh, the server started here."""
    from sqlalchemy import text

    from mcp_server.core.settings import load_settings
    from mcp_server.db import embedded
    from mcp_server.db.database import get_engine
    from mcp_server.index.store import IndexStore
    from mcp_server.indexer.entrypoint import embedder_from_settings

    if settings_name == "defaults":
        embedded.SERVER_SETTINGS = {}
    settings = load_settings()
    engine = get_engine(settings)

    def wal() -> tuple[int, int, int]:
        with engine.connect() as conn:
            written, images = conn.execute(text("SELECT wal_bytes, wal_fpi FROM pg_stat_wal")).one()
            requested = conn.execute(text("SELECT num_requested FROM pg_stat_checkpointer")).scalar_one()
        return int(written), int(images), int(requested)

    with engine.connect() as conn:
        in_effect = {
            name: conn.execute(text(f"SHOW {name}")).scalar_one()
            for name in ("max_wal_size", "checkpoint_timeout")
        }
    before = wal()
    run = settings_index_run(
        settings, IndexStore(engine), embedder_from_settings(settings), project_id="bench", root=corpus
    )
    started = time.perf_counter()
    counters = run.run()
    seconds = time.perf_counter() - started
    after = wal()
    engine.dispose()
    return {
        "settings": in_effect,
        "seconds": seconds,
        "files": counters.files_indexed,
        "chunks": counters.chunks_created,
        "stages": counters.seconds,
        "wal_bytes": after[0] - before[0],
        "wal_fpi": after[1] - before[1],
        "checkpoints_requested": after[2] - before[2],
    }


def run_leg(corpus: Path, settings_name: str) -> dict[str, object]:
    home = private_home("codebase-mcp-embedded-settings-")
    env = {**os.environ, "CODEBASE_LINGER_SECONDS": "0", "PYTHONPATH": os.environ.get("PYTHONPATH", ".")}
    try:
        proc = subprocess.run(
            [sys.executable, __file__, "--corpus", str(corpus), "--leg", settings_name],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"leg {settings_name} failed:\n{proc.stderr[-3000:]}")
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    finally:
        stop_embedded_postgres(home)
        remove_home(home)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of legs (defaults, then SERVER_SETTINGS)"
    )
    parser.add_argument("--leg", choices=("defaults", "product"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.leg:
        print(json.dumps(leg(args.corpus, args.leg)))
        return 0

    from mcp_server.db.embedded import SERVER_SETTINGS

    print(f"machine: {os.cpu_count()} cores; corpus {args.corpus}; SERVER_SETTINGS {SERVER_SETTINGS}")
    results: dict[str, list[dict[str, object]]] = {"defaults": [], "product": []}
    for _ in range(args.repeat):
        for name in ("defaults", "product"):
            result = run_leg(args.corpus, name)
            results[name].append(result)
            seconds = float(result["seconds"])  # type: ignore[arg-type]
            print(f"\n== {name} {result['settings']} ==", flush=True)
            show("full index", f"{seconds:.1f} s, {int(result['files']) / seconds:,.0f} files/s")  # type: ignore[call-overload]
            show("files / chunks", f"{result['files']} / {result['chunks']}")
            show("stage seconds", ", ".join(f"{k} {v:.1f}" for k, v in result["stages"].items()))  # type: ignore[attr-defined]
            show("WAL written", f"{int(result['wal_bytes']) / 2**20:,.0f} MiB")  # type: ignore[call-overload]
            show("full-page images", f"{int(result['wal_fpi']):,}")  # type: ignore[call-overload]
            show("checkpoints forced by WAL volume", f"{result['checkpoints_requested']}")

    def mean(name: str, key: str) -> float:
        return sum(float(r[key]) for r in results[name]) / len(results[name])  # type: ignore[arg-type]

    print("\n== SERVER_SETTINGS against PostgreSQL's defaults (mean of the legs) ==")
    for key, label in (
        ("seconds", "full index time"),
        ("wal_bytes", "WAL written"),
        ("wal_fpi", "full-page images"),
    ):
        base = mean("defaults", key)
        show(label, f"{mean('product', key) / base:.2f}x" if base else "n/a (none with the defaults)")
    show("files/s", f"{mean('defaults', 'files') / mean('defaults', 'seconds'):,.0f} -> "
         f"{mean('product', 'files') / mean('product', 'seconds'):,.0f}", ">= 600 files/s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
