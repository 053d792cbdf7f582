"""Sharded runs on one machine: database write throughput and full-index speed, by writer count.

    .venv/bin/python bench/shard_writes.py [--corpus DIR] [--shards 1,2,4] [--writers 1,2,4]

(b) full index of the corpus (default: the running interpreter's stdlib tree, the same tree
    index_speed.py indexes) unsharded and as 2 and 4 shards, each shard a separate process
    running IndexRun(shard=Shard(i, n)) of one job, all at once (CODEBASE_SHARD_PARALLELISM=n),
    each with cpu_count // n parser workers as the local supervisor gives them. The clock runs
    from starting the processes to the last one exiting (the last shard publishes and builds the
    vector index, as in the product). Beside it, the walk + read + hash baseline of index_speed.py,
    measured in the same run, and the ratio to it.
(a) write throughput of the store's real write path (IndexStore.write_files: COPY of files,
    symbols, occurrences and chunks through the staging table, one transaction per batch of
    >= 1,024 chunks, as the pipeline flushes) with 1, 2 and 4 writer processes into one project,
    each writing a disjoint part (its shard of the paths). The rows are those the full index
    wrote (read back, vectors included), so nothing is parsed or embedded while the clock runs.

While each measurement runs, pg_stat_activity is sampled every 20 ms; the wait events of the
active client backends are printed (no wait event: on CPU). Machines here are noisy and shared:
read the ratios to the baselines of the same run, not the absolute figures.
Everything runs against a private embedded PostgreSQL in a temporary CODEBASE_MCP_HOME.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import sys
import sysconfig
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from _common import baseline_walk_hash, make_show, private_home, remove_home

# Spawned children import this module again: they must find the parent's home, not make one.
HOME = private_home("codebase-mcp-shards-", via="SHARD_BENCH_HOME")

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

from mcp_server.core.jobs import JobStore  # noqa: E402
from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.core.shards import Shard, shard_of  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402
from mcp_server.index.store import ChunkRow, FileWrite, IndexStore, SymbolRow  # noqa: E402
from mcp_server.indexer.entrypoint import embedder_from_settings  # noqa: E402
from mcp_server.indexer.pipeline import EMBED_BATCH_CHUNKS, IndexRun  # noqa: E402

PG_SETTINGS = (
    "shared_buffers",
    "max_wal_size",
    "synchronous_commit",
    "wal_level",
    "max_parallel_maintenance_workers",
    "maintenance_work_mem",
    "work_mem",
    "max_connections",
)


show = make_show(46, 40)


class WaitSampler:
    """Samples the wait events of active client backends (other than its own) every 20 ms."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._stop = threading.Event()
        self.counts: Counter[str] = Counter()
        self.samples = 0
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        with self._engine.connect() as conn:
            while not self._stop.wait(0.02):
                rows = conn.execute(
                    text(
                        "SELECT backend_type, wait_event_type, wait_event FROM pg_stat_activity "
                        "WHERE state = 'active' AND pid <> pg_backend_pid() "
                        "AND backend_type IN ('client backend', 'parallel worker')"
                    )
                ).all()
                conn.commit()
                self.samples += 1
                for row in rows:
                    event = f"{row.wait_event_type}:{row.wait_event}" if row.wait_event else "CPU (no wait)"
                    if row.backend_type != "client backend":
                        event += f" [{row.backend_type}]"
                    self.counts[event] += 1

    def report(self, label: str) -> None:
        busy = sum(self.counts.values())
        if not busy:
            show(f"{label}: wait events", "no active backend sampled")
            return
        parts = [f"{event} {count / busy:.0%}" for event, count in self.counts.most_common(6)]
        show(f"{label}: active backends (mean)", f"{busy / max(1, self.samples):.2f}")
        print(f"      wait events of active backends ({busy} backend samples): " + ", ".join(parts))


# --- (b) full index as processes --------------------------------------------------------------


def index_child(
    project: str,
    root: str,
    job_id: str | None,
    shard: tuple[int, int] | None,
    workers: int,
    results: Any,
) -> None:
    settings = load_settings()
    engine = get_engine(settings)
    run = IndexRun(
        store=IndexStore(engine),
        embedder=embedder_from_settings(settings),
        project_id=project,
        root=Path(root),
        force=False,
        max_file_bytes=settings.indexing.max_file_bytes,
        workers=workers,
        pack_lines=settings.indexing.chunk_pack_lines,
        job_id=uuid.UUID(job_id) if job_id else None,
        shard=Shard(*shard) if shard else None,
    )
    counters = run.run()
    results.put(
        {
            "shard": shard,
            "files": counters.files_indexed,
            "chunks": counters.chunks_created,
            "seconds": dict(counters.seconds),
            "published": run.published,
        }
    )


def full_index(engine: Any, corpus: Path, shards: int, project: str) -> tuple[float, list[dict[str, Any]]]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    cpus = os.cpu_count() or 1
    if shards == 1:
        specs: list[tuple[str | None, tuple[int, int] | None, int]] = [(None, None, 0)]
    else:
        jobs = JobStore(engine)
        job = jobs.create(repo_path=str(corpus), project_id=project, shards=shards)
        jobs.mark_running(job.id)
        # The supervisor's share (runners/supervisor.py, _shard_env): cpu_count // parallel.
        specs = [(str(job.id), (k, shards), max(1, cpus // shards)) for k in range(shards)]
    started = time.perf_counter()
    processes = [
        ctx.Process(target=index_child, args=(project, str(corpus), job_id, shard, workers, results))
        for job_id, shard, workers in specs
    ]
    for process in processes:
        process.start()
    outcomes = [results.get() for _ in processes]
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    if any(p.exitcode for p in processes):
        raise RuntimeError(f"an index process failed: {[p.exitcode for p in processes]}")
    return elapsed, outcomes


# --- (a) writers --------------------------------------------------------------------------------


def read_back(engine: Any, project: str) -> list[tuple[FileWrite, np.ndarray]]:
    """The live rows of a project as the FileWrites (and vectors) that would write them again."""
    live = (
        "JOIN repositories r ON r.id = f.repository_id WHERE r.project_id = :p "
        "AND f.gen_from <= r.active_generation AND r.active_generation < f.gen_to"
    )
    with engine.connect() as conn:
        files = {
            row.id: FileWrite(row.path, row.language, bytes(row.content_hash), row.size_bytes, [])
            for row in conn.execute(
                text(f"SELECT f.id, f.path, f.language, f.content_hash, f.size_bytes FROM files f {live}"),
                {"p": project},
            )
        }
        vectors: dict[int, list[np.ndarray]] = {file_id: [] for file_id in files}
        for row in conn.execute(
            text(
                "SELECT c.file_id, c.start_line, c.end_line, c.symbol, c.kind, c.content, c.embedding "
                f"FROM chunks c JOIN files f ON f.id = c.file_id {live} ORDER BY c.id"
            ),
            {"p": project},
        ):
            files[row.file_id].chunks.append(
                ChunkRow(row.start_line, row.end_line, row.symbol, row.kind, row.content)
            )
            vectors[row.file_id].append(np.asarray(row.embedding.to_numpy(), dtype=np.float32))
        for row in conn.execute(
            text(
                "SELECT s.file_id, s.name, s.qualified_name, s.parent, s.kind, s.start_line, s.end_line, "
                f"s.signature FROM symbols s JOIN files f ON f.id = s.file_id {live} ORDER BY s.id"
            ),
            {"p": project},
        ):
            files[row.file_id].symbols.append(
                SymbolRow(
                    row.name,
                    row.qualified_name,
                    row.parent,
                    row.kind,
                    row.start_line,
                    row.end_line,
                    row.signature,
                )
            )
        for row in conn.execute(
            text(
                "SELECT o.file_id, o.name, o.lines FROM symbol_occurrences o "
                f"JOIN files f ON f.id = o.file_id {live}"
            ),
            {"p": project},
        ):
            files[row.file_id].occurrences.append((row.name, list(row.lines)))
    out = []
    for file_id, write in files.items():
        stacked = np.vstack(vectors[file_id]) if vectors[file_id] else np.zeros((0, 1), dtype=np.float32)
        out.append((write, stacked))
    return out


def rows_of(write: FileWrite) -> int:
    return 1 + len(write.chunks) + len(write.symbols) + len(write.occurrences)


def writer_child(
    data_path: str, project: str, job_id: str | None, shard: tuple[int, int], barrier: Any, results: Any
) -> None:
    with open(data_path, "rb") as handle:
        everything: list[tuple[FileWrite, np.ndarray]] = pickle.load(handle)
    mine = [(w, v) for w, v in everything if shard_of(w.path, shard[1]) == shard[0]]
    del everything
    batches: list[tuple[list[FileWrite], np.ndarray]] = []
    batch: list[tuple[FileWrite, np.ndarray]] = []
    chunks = 0
    for item in mine:
        batch.append(item)
        chunks += len(item[0].chunks)
        if chunks >= EMBED_BATCH_CHUNKS:
            batches.append(([w for w, _ in batch], np.vstack([v for _, v in batch if len(v)])))
            batch, chunks = [], 0
    if batch:
        vectors = [v for _, v in batch if len(v)]
        batches.append(([w for w, _ in batch], np.vstack(vectors) if vectors else np.zeros((0, 1))))
    settings = load_settings()
    store = IndexStore(get_engine(settings))
    if job_id is None:
        state = store.begin_run(project_id=project, root_path="/bench/writes")
    else:
        state = store.begin_shard(
            project_id=project, root_path="/bench/writes", job_id=uuid.UUID(job_id), shard=Shard(*shard)
        )
    barrier.wait()
    started, cpu = time.perf_counter(), time.process_time()
    chunks_written = 0
    for writes, vectors in batches:
        chunks_written += store.write_files(state, writes, vectors.astype(np.float32), replaced_file_ids=[])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    results.put(
        {
            "shard": shard,
            "seconds": elapsed,
            "client_cpu": cpu,
            "chunks": chunks_written,
            "rows": sum(rows_of(w) for w, _ in mine),
            "batches": len(batches),
        }
    )


def write_run(engine: Any, data_path: Path, writers: int, project: str, model: tuple[str, int]) -> Any:
    ctx = mp.get_context("spawn")
    store = IndexStore(engine)
    store.check_project_model(project, model_id=model[0], dimension=model[1], allow_change=False)
    job_id = None
    if writers > 1:
        jobs = JobStore(engine)
        job = jobs.create(repo_path="/bench/writes", project_id=project, shards=writers)
        jobs.mark_running(job.id)
        job_id = str(job.id)
    barrier = ctx.Barrier(writers + 1)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=writer_child, args=(str(data_path), project, job_id, (k, writers), barrier, results)
        )
        for k in range(writers)
    ]
    for process in processes:
        process.start()
    barrier.wait()  # every writer has loaded its part and begun its run
    with WaitSampler(engine) as sampler:
        started = time.perf_counter()
        outcomes = [results.get() for _ in processes]
        wall = time.perf_counter() - started
    for process in processes:
        process.join()
    if any(p.exitcode for p in processes):
        raise RuntimeError(f"a writer failed: {[p.exitcode for p in processes]}")
    return wall, outcomes, sampler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--shards", default="1,2,4", help="shard counts of the full index")
    parser.add_argument("--writers", default="1,2,4", help="writer counts of the write test")
    args = parser.parse_args()
    shard_counts = [int(x) for x in args.shards.split(",") if x]
    writer_counts = [int(x) for x in args.writers.split(",") if x]
    if 1 not in shard_counts:
        shard_counts.insert(0, 1)  # the unsharded run is the write test's source of rows

    settings = load_settings()
    engine = get_engine(settings)
    corpus = Path(args.corpus)
    cpus = os.cpu_count() or 1
    print(f"machine: {cpus} cores, python {sys.version.split()[0]}, corpus {corpus}")
    with engine.connect() as conn:
        print("PostgreSQL " + conn.execute(text("SHOW server_version")).scalar_one() + ", settings:")
        for name in PG_SETTINGS:
            show(name, conn.execute(text(f"SHOW {name}")).scalar_one())

    print("\n== (b) full index, shards as processes ==", flush=True)
    baseline_files, baseline_seconds = baseline_walk_hash(corpus, settings.indexing.max_file_bytes)
    baseline_rate = baseline_files / baseline_seconds
    show("baseline: walk + read + hash", f"{baseline_rate:,.0f} files/s ({baseline_files} files)")
    rates: dict[int, float] = {}
    for shards in shard_counts:
        project = f"full-{shards}"
        with WaitSampler(engine) as sampler:
            elapsed, outcomes = full_index(engine, corpus, shards, project)
        files = sum(o["files"] for o in outcomes)
        chunks = sum(o["chunks"] for o in outcomes)
        rate = files / elapsed
        rates[shards] = rate
        label = "unsharded" if shards == 1 else f"{shards} shards"
        show(
            f"full index, {label}",
            f"{elapsed:.1f} s, {rate:,.0f} files/s ({rate / baseline_rate:.3f}x baseline)",
            ">= 600 files/s",
            rate >= 600,
        )
        if shards > 1:
            show(f"  {label}: vs unsharded", f"{rate / rates[1]:.2f}x")
        show(f"  {label}: files / chunks", f"{files} / {chunks}")
        for o in sorted(outcomes, key=lambda o: o["shard"] or (0, 1)):
            stages = ", ".join(f"{k} {v:.1f}" for k, v in o["seconds"].items())
            name = "  stages" if o["shard"] is None else f"  shard {o['shard'][0]}"
            publisher = " (published)" if o["published"] and o["shard"] is not None else ""
            print(f"      {name}{publisher}: {o['files']} files; {stages}")
        sampler.report(f"  {label}")

    print("\n== (a) write throughput: IndexStore.write_files, N writer processes, one project ==")
    data = read_back(engine, "full-1")
    data_path = HOME / "writes.pkl"
    with open(data_path, "wb") as handle:
        pickle.dump(data, handle, protocol=pickle.HIGHEST_PROTOCOL)
    total_rows = sum(rows_of(w) for w, _ in data)
    total_chunks = sum(len(w.chunks) for w, _ in data)
    embedder = embedder_from_settings(settings)
    del data
    show("rows to write (files+chunks+symbols+occurrences)", f"{total_rows:,} ({total_chunks:,} chunks)")
    first: float | None = None
    for writers in writer_counts:
        wall, outcomes, sampler = write_run(
            engine, data_path, writers, f"writes-{writers}", (embedder.model_id, embedder.dimension)
        )
        rows = sum(o["rows"] for o in outcomes)
        chunks = sum(o["chunks"] for o in outcomes)
        rate = rows / wall
        first = first or rate
        show(
            f"{writers} writer(s)",
            f"{wall:.1f} s, {rate:,.0f} rows/s, {chunks / wall:,.0f} chunks/s ({rate / first:.2f}x 1 writer)",
        )
        cpu = ", ".join(f"{o['client_cpu'] / o['seconds']:.0%}" for o in outcomes)
        show("  writer process CPU / wall (client side)", cpu)
        sampler.report(f"  {writers} writer(s)")
    with engine.connect() as conn:
        sizes = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class "
                "WHERE relname IN ('files', 'chunks', 'symbols', 'symbol_occurrences') ORDER BY relname"
            )
        ).all()
    show("table sizes after all runs", ", ".join(f"{r.relname} {r.bytes / 2**20:,.0f} MiB" for r in sizes))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        remove_home(HOME)
