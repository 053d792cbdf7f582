"""Search latency of one project at 250,000 to 1,000,000 chunks, and what the rows cost.

    .venv/bin/python bench/million_chunks.py [--chunks 1000000] [--queries 200] [--seed DIR ...]
        [--build-memory 512,auto]

`--chunks` takes one size or several (250000,500000,1000000): the project grows in place from
one to the next, and each size gets its own vector index build, sizes and latencies.

How the rows are made (the synthesis is this script's, the rest is the product's):
  1. seed: the product indexes real trees (default: the running interpreter's stdlib and the Go
     toolchain's src/ when there is one) with IndexRun into project `seed`;
  2. project `big` gets one repository, published at generation 1, whose files are copies
     c000/, c001/, ... of the seed's files (paths prefixed, content hashes made distinct), with
     their chunks (text, lexical tsvector, symbols, identifier occurrences copied as they are) and
     vectors: copy 0 keeps the real ones, copy k > 0 gets l2_normalize(v + noise), noise one of
     4,096 random vectors of norm NOISE_NORM (cosine to the original about 0.9), so the graph
     holds clusters of near neighbours rather than exact duplicates. All in SQL
     (INSERT ... SELECT), as a bulk load writes them: no HNSW index exists during the load;
  3. then what a bulk run does after its writes: ANALYZE chunks, term statistics, and the HNSW
     build of vector_indexes.VectorIndexes.ensure (timed: the figure that grows with the project);
  4. the size the project added to each table (pg_total_relation_size, indexes included, before
     and after), per million chunks;
  5. `--queries` searches through CodebaseService.search (as index_speed.py), in hybrid, semantic
     and lexical mode, without a filter, with a language filter and with path globs (a selective
     one, which the vector side ranks exactly, and a broad one, which uses the iterative HNSW
     scan); p50/p95 beside the target (p95 <= 50 ms at 1,000,000 chunks) and the `SELECT 1`
     round trip of the same database as the baseline (noisy shared machine: read the ratio).
Everything runs against a private embedded PostgreSQL in a temporary CODEBASE_MCP_HOME.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path

from _common import make_show, percentile, private_home, remove_home, settings_index_run

# BENCH_KEEP_HOME=DIR: build the database there and leave it (and its server) for a later
# --searches-only run, which times the searches again (after a change to search) without rebuilding.
KEEP_HOME = os.environ.get("BENCH_KEEP_HOME")
HOME = private_home("codebase-mcp-million-", path=Path(KEEP_HOME) if KEEP_HOME else None)

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402
from mcp_server.frontends.operations import CodebaseService  # noqa: E402
from mcp_server.index import term_stats, vector_indexes  # noqa: E402
from mcp_server.index.store import INDEX_FORMAT, IndexStore  # noqa: E402
from mcp_server.index.vector_indexes import BuildBudget, VectorIndexes, vector_index_name  # noqa: E402
from mcp_server.indexer.entrypoint import embedder_from_settings  # noqa: E402

PROJECT = "big"
ROOT = "/synthetic/big"
NOISE_VECTORS = 4096
NOISE_NORM = 0.45
TABLES = ("files", "chunks", "symbols", "symbol_occurrences")

QUERIES = [
    "parse a JSON document",
    "read a zip archive",
    "send an email over SMTP",
    "compute an md5 hash",
    "format a date as ISO 8601",
    "split a path into directory and file name",
    "spawn a subprocess and read its output",
    "compress data with gzip",
    "parse command line arguments",
    "open a TCP socket connection",
    "regular expression compile flags",
    "thread pool executor submit",
    "decode base64",
    "URL encode query string",
    "walk a directory tree recursively",
    "temporary file that is deleted on close",
    "read a CSV file into rows",
    "deep copy an object",
    "lru cache decorator",
    "heap push and pop",
    "HTTP request headers",
    "unit test assertion raises",
    "logging handler rotate file",
    "asyncio event loop run until complete",
    "dataclass field default factory",
    "tokenize python source",
    "goroutine waits on a channel with a timeout",
    "http server graceful shutdown",
    "mutex lock unlock",
    "parse a URL and its query",
    "TLS handshake client certificate",
    "garbage collector write barrier",
    "json Unmarshal into struct",
    "sort slice by key",
    "context cancel deadline",
    "read file line by line bufio Scanner",
    "ReadFile",
    "json.loads",
    "ServeHTTP",
    "NewRequestWithContext",
]
# (label, language, path): the filter groups the queries rotate through.
FILTERS = [
    ("no filter", None, None),
    ("no filter", None, None),
    ("language=python", "python", None),
    ("language=go", "go", None),
    ("path c000/py/email/** (selective)", None, "c000/py/email/**"),
    ("path **/net/http/** (broad)", None, "**/net/http/**"),
]
MODES = ["hybrid", "semantic", "lexical"]


show = make_show(44, 44)


def seed(engine, settings, embedder, roots: list[tuple[str, Path]]) -> None:  # type: ignore[no-untyped-def]
    store = IndexStore(engine)
    for label, root in roots:
        started = time.perf_counter()
        run = settings_index_run(
            settings, store, embedder, project_id="seed", root=root, repository_key=f"seed:{label}"
        )
        counters = run.run()
        show(
            f"seed {label}: {root}",
            f"{counters.files_indexed} files, {counters.chunks_created} chunks, "
            f"{time.perf_counter() - started:.0f} s",
        )


def prepare(engine, embedder) -> int:  # type: ignore[no-untyped-def]
    """The target project and repository, the seed's file list with cumulative chunk counts, and
    the noise vectors; returns the repository id."""
    rng = np.random.default_rng(15)
    noise = rng.standard_normal((NOISE_VECTORS, embedder.dimension)).astype(np.float32)
    noise *= NOISE_NORM / np.linalg.norm(noise, axis=1, keepdims=True)
    with engine.begin() as conn:
        chunking = conn.execute(
            text("SELECT chunking FROM repositories WHERE project_id = 'seed' LIMIT 1")
        ).scalar_one()
        conn.execute(
            text(
                "INSERT INTO projects (project_id, embedding_model, embedding_dimension) VALUES (:p, :m, :d)"
            ),
            {"p": PROJECT, "m": embedder.model_id, "d": embedder.dimension},
        )
        repository_id = conn.execute(
            text(
                "INSERT INTO repositories (project_id, root_path, active_generation, last_indexed_at, "
                " index_format, chunking) VALUES (:p, :r, 1, now(), :f, :k) RETURNING id"
            ),
            {"p": PROJECT, "r": ROOT, "f": INDEX_FORMAT, "k": chunking},
        ).scalar_one()
        # seed_files: the seed's live files, their path below the copy prefix, and the running
        # chunk count, so that a last, partial copy can stop at the wanted total.
        conn.execute(
            text(
                "CREATE TABLE seed_files AS SELECT f.id, "
                " CASE WHEN r.root_path = 'seed:py' THEN 'py/' ELSE 'go/' END || f.path AS suffix, "
                " sum(coalesce(n.chunks, 0)) OVER (ORDER BY f.id) AS upto "
                "FROM files f JOIN repositories r ON r.id = f.repository_id "
                "LEFT JOIN (SELECT file_id, count(*) AS chunks FROM chunks GROUP BY file_id) n "
                " ON n.file_id = f.id "
                "WHERE r.project_id = 'seed' AND f.gen_from <= r.active_generation "
                " AND r.active_generation < f.gen_to"
            )
        )
        conn.execute(text("CREATE TABLE seed_noise (i int PRIMARY KEY, v vector)"))
        raw = conn.connection.driver_connection
        copy_sql = "COPY seed_noise (i, v) FROM STDIN WITH (FORMAT BINARY)"
        with raw.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.set_types(["int4", "vector"])
            for i, vector in enumerate(noise):
                copy.write_row((i, vector))
    return int(repository_id)


def live_chunks(conn) -> int:  # type: ignore[no-untyped-def]
    return int(
        conn.execute(text("SELECT count(*) FROM chunks WHERE project_id = :p"), {"p": PROJECT}).scalar()
    )


def grow(engine, repository_id: int, target: int) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    """Add copies of the seed until the project holds `target` chunks; (chunks, added, seconds)."""
    started = time.perf_counter()
    with engine.connect() as conn:
        have = live_chunks(conn)
        copies = int(
            conn.execute(
                text("SELECT count(DISTINCT split_part(path, '/', 1)) FROM files WHERE repository_id = :r"),
                {"r": repository_id},
            ).scalar()
        )
        per_copy = int(conn.execute(text("SELECT max(upto) FROM seed_files")).scalar())
    start_count = have
    while have < target:
        k = copies
        want = target - have
        prefix = f"c{k:03d}/"
        with engine.begin() as conn:
            params = {"r": repository_id, "p": PROJECT, "pre": prefix, "k": k, "upto": want}
            conn.execute(
                text(
                    "CREATE TEMP TABLE copy_map ON COMMIT DROP AS SELECT sf.id AS src, "
                    " nextval(pg_get_serial_sequence('files', 'id')) AS dst, :pre || sf.suffix AS path "
                    "FROM seed_files sf WHERE sf.upto <= :upto OR :upto >= (SELECT max(upto) FROM seed_files)"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO files (id, repository_id, path, language, content_hash, size_bytes, "
                    " gen_from) "
                    "SELECT m.dst, :r, m.path, f.language, "
                    " decode(md5(:pre || encode(f.content_hash, 'hex')), 'hex'), f.size_bytes, 1 "
                    "FROM copy_map m JOIN files f ON f.id = m.src"
                ),
                params,
            )
            vector = (
                "c.embedding"
                if k == 0
                else (
                    "l2_normalize(c.embedding + (SELECT v FROM seed_noise "
                    f"WHERE i = ((c.id * 7919 + {k} * 104729) % {NOISE_VECTORS})::int))"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO chunks (file_id, repository_id, project_id, gen_from, path, language, "
                    " start_line, end_line, symbol, kind, content, embedding_dim, embedding, search_tsv) "
                    "SELECT m.dst, :r, :p, 1, m.path, c.language, c.start_line, c.end_line, c.symbol, "
                    f" c.kind, c.content, c.embedding_dim, {vector}, c.search_tsv "
                    "FROM copy_map m JOIN chunks c ON c.file_id = m.src ORDER BY m.dst, c.id"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO symbols (file_id, project_id, name, qualified_name, parent, kind, "
                    " start_line, end_line, signature) SELECT m.dst, :p, s.name, s.qualified_name, "
                    " s.parent, s.kind, s.start_line, s.end_line, s.signature "
                    "FROM copy_map m JOIN symbols s ON s.file_id = m.src"
                ),
                params,
            )
            conn.execute(
                text(
                    "INSERT INTO symbol_occurrences (file_id, project_id, name, lines) "
                    "SELECT m.dst, :p, o.name, o.lines FROM copy_map m "
                    "JOIN symbol_occurrences o ON o.file_id = m.src"
                ),
                params,
            )
            have = live_chunks(conn)
        copies += 1
        partial = want < per_copy
        print(
            f"    copy {prefix}: {have:,} chunks ({per_copy:,} per full copy), "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        if partial:  # the last, partial copy: within one file's chunks of the target
            break
    return have, have - start_count, time.perf_counter() - started


def sizes(engine) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT relname, pg_total_relation_size(oid) AS b FROM pg_class WHERE relname = ANY(:t)"),
            {"t": list(TABLES)},
        ).all()
    return {r.relname: int(r.b) for r in rows}


class _Overflow(logging.Handler):
    """pgvector's notice that the graph outgrew maintenance_work_mem, as the product logs it."""

    def emit(self, record: logging.LogRecord) -> None:
        if "no longer fits" in record.getMessage():
            overflow.append(record.getMessage().split(":")[0])


overflow: list[str] = []


def build_budget(name: str) -> BuildBudget:
    """`auto`: what an indexer on this machine gets for the embedded database; a number: that many
    MB with the embedded default's workers (512 was the fixed size before budgets)."""
    auto = BuildBudget.for_server(embedded=True)
    return auto if name == "auto" else BuildBudget(memory_bytes=int(name) * 2**20, workers=auto.workers)


def measure(engine, settings, repository_id: int, target: int, args, before: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    embedder = embedder_from_settings(settings)
    print(f"\n== {target:,} chunks ==", flush=True)
    vectors = VectorIndexes(engine)
    vectors.drop(PROJECT, embedder.dimension)  # a bulk load drops it; growing rebuilds it
    chunks, added_chunks, load_seconds = grow(engine, repository_id, target)
    show(
        "load (synthesis, INSERT ... SELECT)",
        f"{load_seconds:.0f} s ({added_chunks / load_seconds:,.0f} chunks/s added)",
    )
    started = time.perf_counter()
    IndexStore(engine).analyze()
    term_stats.refresh(engine, PROJECT, force=True)
    show("ANALYZE + term statistics", f"{time.perf_counter() - started:.1f} s")
    for budget_name in args.build_memory.split(","):
        budget = build_budget(budget_name)
        asked = budget.settings_for(chunks, embedder.dimension)
        vectors = VectorIndexes(engine, budget)
        vectors.drop(PROJECT, embedder.dimension)
        overflow.clear()
        started = time.perf_counter()
        vectors.ensure(PROJECT, embedder.dimension)
        build = time.perf_counter() - started
        show(
            f"HNSW build, budget {budget_name} ({asked['maintenance_work_mem']}, "
            f"{asked['max_parallel_maintenance_workers']} workers)",
            f"{build:.0f} s ({chunks / build:,.0f} chunks/s); "
            + (f"graph spilled: {overflow[0]}" if overflow else "graph fitted in memory"),
        )
    with engine.connect() as conn:
        index_bytes = int(
            conn.execute(
                text("SELECT pg_relation_size(to_regclass(:n))"),
                {"n": vector_index_name(PROJECT, embedder.dimension)},
            ).scalar()
        )
    after = sizes(engine)
    added = {name: after.get(name, 0) - before.get(name, 0) for name in TABLES}
    total = sum(added.values())
    per_million = 1_000_000 / chunks
    show(
        "database size of the project",
        f"{total / 2**30:.2f} GiB ({total * per_million / 2**30:.2f} GiB per million chunks)",
    )
    for name in TABLES:
        show(f"  {name} (with its indexes)", f"{added[name] / 2**20:,.0f} MiB")
    show("  of which the project's HNSW index", f"{index_bytes / 2**20:,.0f} MiB")

    search_latency(engine, settings, args.queries)


def search_latency(engine, settings, queries: int) -> None:  # type: ignore[no-untyped-def]
    """`queries` searches of project `big` in rotation over modes and filters, beside SELECT 1."""
    service = CodebaseService(settings, engine=engine)
    with engine.connect() as conn:
        base = []
        for _ in range(200):
            t = time.perf_counter()
            conn.execute(text("SELECT 1"))
            base.append((time.perf_counter() - t) * 1000)
    base_p95 = percentile(base, 95)
    show("baseline: SELECT 1 round trip p95", f"{base_p95:.2f} ms")
    for query in QUERIES[:5]:  # warm the caches (term statistics, the index's first pages)
        service.search(query, project_id=PROJECT)
    by_group: dict[str, list[float]] = {}
    everything: list[float] = []
    for i in range(queries):
        label, language, path = FILTERS[i % len(FILTERS)]
        mode = MODES[(i // len(FILTERS)) % len(MODES)]
        query = QUERIES[(i * 7) % len(QUERIES)]
        t = time.perf_counter()
        service.search(query, project_id=PROJECT, mode=mode, language=language, path=path)
        elapsed = (time.perf_counter() - t) * 1000
        everything.append(elapsed)
        by_group.setdefault(label, []).append(elapsed)
        by_group.setdefault(f"mode {mode}", []).append(elapsed)
    p95 = percentile(everything, 95)
    show(
        f"search p50 / p95, all {len(everything)} queries",
        f"{percentile(everything, 50):.1f} / {p95:.1f} ms ({p95 / base_p95:.0f}x SELECT 1)",
        "p95 <= 50 ms",
        p95 <= 50,
    )
    for label, values in by_group.items():
        show(
            f"  {label} ({len(values)})",
            f"{percentile(values, 50):.1f} / {percentile(values, 95):.1f} ms",
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", default="1000000", help="one size or several, ascending")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument(
        "--build-memory",
        default="auto",
        help="HNSW build budgets timed in turn at each size, MB or auto (512,auto); searches use the last",
    )
    parser.add_argument("--seed", action="append", type=Path, help="trees to seed from (default: see above)")
    parser.add_argument(
        "--searches-only",
        action="store_true",
        help="only time the searches, of the project an earlier run left in BENCH_KEEP_HOME",
    )
    args = parser.parse_args()
    targets = [int(x) for x in args.chunks.split(",") if x]
    vector_indexes.log.addHandler(_Overflow())

    settings = load_settings()
    engine = get_engine(settings)
    if args.searches_only:
        if not KEEP_HOME:
            raise SystemExit("--searches-only reads the database an earlier run left in BENCH_KEEP_HOME")
        with engine.connect() as conn:
            print(f"machine: {os.cpu_count()} cores; project {PROJECT}: {live_chunks(conn):,} live chunks")
        search_latency(engine, settings, args.queries)
        return 0
    embedder = embedder_from_settings(settings)
    if args.seed:
        roots = [("py" if i == 0 else f"go{i}", root) for i, root in enumerate(args.seed)]
    else:
        roots = [("py", Path(sysconfig.get_paths()["stdlib"]))]
        goroot = Path(os.path.realpath(shutil.which("go") or "/nonexistent")).parent.parent / "src"
        if goroot.is_dir():
            roots.append(("go", goroot))
    print(f"machine: {os.cpu_count()} cores; targets {targets}")
    with engine.connect() as conn:
        for name in (
            "shared_buffers",
            "maintenance_work_mem",
            "max_parallel_maintenance_workers",
            "work_mem",
        ):
            show(name, conn.execute(text(f"SHOW {name}")).scalar_one())
    print("\n== seed ==", flush=True)
    seed(engine, settings, embedder, roots)
    before = sizes(engine)
    repository_id = prepare(engine, embedder)
    for target in targets:
        measure(engine, settings, repository_id, target, args, before)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        if not KEEP_HOME:
            remove_home(HOME)
