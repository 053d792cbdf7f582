"""The vector index built over `halfvec` instead of `vector`: build time, size, recall, latency.

    PYTHONPATH=. .venv/bin/python bench/halfvec_hnsw.py [--corpus DIR] [--queries 200]

One of issue 15's levers for the bulk load ("halfvec ... measure each"). The chunks keep their
`vector` column; what changes is the HNSW index's expression, `(embedding::halfvec(256))` with
`halfvec_cosine_ops`, as the product already builds it above 2,000 dimensions. The corpus (the
interpreter's standard library by default) is indexed once by the product (static embedder) into
a private embedded PostgreSQL; then each variant's index is built from scratch with the budget
settings the product uses (`BuildBudget.settings_for`), alternately, twice each, and timed. For
`--queries` query vectors (the embedded text of chunks picked at random), each index's top 10
is compared with the exact top 10 (a sequential scan): recall@10, and search latency p50/p95.
The baseline of every ratio is the `vector` index measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import sysconfig
import time
from pathlib import Path

from _common import percentile, private_home, remove_home, settings_index_run

HOME = private_home("codebase-mcp-halfvec-")

from sqlalchemy import text  # noqa: E402

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402
from mcp_server.index.store import IndexStore  # noqa: E402
from mcp_server.index.vector_indexes import BuildBudget, vector_index_predicate  # noqa: E402
from mcp_server.indexer.entrypoint import embedder_from_settings  # noqa: E402

PROJECT = "halfvec"
DIM = 256
VARIANTS = {
    "vector": ("embedding::vector(256)", "vector_cosine_ops", "vector(256)"),
    "halfvec": ("embedding::halfvec(256)", "halfvec_cosine_ops", "halfvec(256)"),
}


def build(conn, variant: str, settings: dict[str, str]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    expression, opclass, _ = VARIANTS[variant]
    conn.execute(text("DROP INDEX IF EXISTS ix_bench_hnsw"))
    conn.commit()
    for name, value in settings.items():
        conn.execute(text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value})
    started = time.perf_counter()
    conn.execute(
        text(
            f"CREATE INDEX ix_bench_hnsw ON chunks USING hnsw (({expression}) {opclass}) "
            f"WHERE {vector_index_predicate(PROJECT, DIM)}"
        )
    )
    conn.commit()
    seconds = time.perf_counter() - started
    size = int(conn.execute(text("SELECT pg_relation_size('ix_bench_hnsw')")).scalar_one())
    return seconds, size


def top10(conn, variant: str | None, vector: str) -> tuple[list[int], float]:  # type: ignore[no-untyped-def]
    """The 10 nearest chunks through the variant's index (None: exact, by sequential scan)."""
    expression, _, cast = VARIANTS[variant or "vector"]
    conn.commit()  # each query in its own transaction, its SET LOCALs with it
    started = time.perf_counter()
    if variant is None:
        conn.execute(text("SET LOCAL enable_indexscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
    conn.execute(text("SET LOCAL jit = off"))
    rows = conn.execute(
        text(
            f"SELECT id FROM chunks WHERE {vector_index_predicate(PROJECT, DIM)} "
            f"ORDER BY ({expression}) <=> CAST(:v AS {cast}) LIMIT 10"
        ),
        {"v": vector},
    ).all()
    elapsed = (time.perf_counter() - started) * 1000
    conn.commit()
    return [r.id for r in rows], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=sysconfig.get_paths()["stdlib"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    try:
        settings = load_settings()
        engine = get_engine(settings)
        embedder = embedder_from_settings(settings)
        started = time.perf_counter()
        counters = settings_index_run(
            settings, IndexStore(engine), embedder, project_id=PROJECT, root=Path(args.corpus)
        ).run()
        print(
            f"indexed {counters.files_indexed} files, {counters.chunks_created} chunks in "
            f"{time.perf_counter() - started:.0f} s"
        )
        with engine.connect() as conn:
            # The product's own index would answer the queries otherwise.
            for name in conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%hnsw%'")
            ).scalars():
                conn.execute(text(f"DROP INDEX {name}"))
            conn.commit()
            rows = int(
                conn.execute(
                    text(f"SELECT count(*) FROM chunks WHERE {vector_index_predicate(PROJECT, DIM)}")
                ).scalar_one()
            )
            budget = BuildBudget.from_settings(settings).settings_for(rows, DIM)
            print(f"{rows} rows; build settings {budget}")
            timings: dict[str, list[float]] = {v: [] for v in VARIANTS}
            sizes: dict[str, int] = {}
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    seconds, sizes[variant] = build(conn, variant, budget)
                    timings[variant].append(seconds)
                    print(f"  build {variant}: {seconds:.1f} s, {sizes[variant] / 2**20:.0f} MiB", flush=True)

            ids = [
                r.id
                for r in conn.execute(text("SELECT id FROM chunks WHERE project_id = :p"), {"p": PROJECT})
            ]
            picked = random.Random(0).sample(ids, min(args.queries, len(ids)))
            vectors = [
                str(
                    conn.execute(
                        text("SELECT embedding::text FROM chunks WHERE id = :i"), {"i": i}
                    ).scalar_one()
                )
                for i in picked
            ]
            exact = [top10(conn, None, v)[0] for v in vectors]
            results: dict[str, tuple[float, float, float]] = {}
            for variant in VARIANTS:
                build(conn, variant, budget)
                conn.execute(text("ANALYZE chunks"))
                conn.commit()
                for v in vectors[:20]:  # warm the index's pages
                    top10(conn, variant, v)
                recalls, latencies = [], []
                for v, truth in zip(vectors, exact, strict=True):
                    got, ms = top10(conn, variant, v)
                    recalls.append(len(set(got) & set(truth)) / max(1, len(truth)))
                    latencies.append(ms)
                results[variant] = (
                    sum(recalls) / len(recalls),
                    percentile(latencies, 50),
                    percentile(latencies, 95),
                )

        base_build = min(timings["vector"])
        print(f"\n{rows} chunks, {DIM} dimensions, {len(vectors)} queries (baseline: the vector index)")
        print(
            f"{'index':<8} {'build (best)':>13} {'x':>6} {'size MiB':>9} {'x':>6} "
            f"{'recall@10':>10} {'p50 ms':>7} {'p95 ms':>7}"
        )
        for variant in VARIANTS:
            best = min(timings[variant])
            recall, p50, p95 = results[variant]
            print(
                f"{variant:<8} {best:>11.1f} s {best / base_build:>6.2f} {sizes[variant] / 2**20:>9.0f} "
                f"{sizes[variant] / sizes['vector']:>6.2f} {recall:>10.3f} {p50:>7.2f} {p95:>7.2f}"
            )
        print("builds, every round:", {v: [round(s, 1) for s in t] for v, t in timings.items()})
    finally:
        remove_home(HOME, dispose=True, stop_postgres=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
