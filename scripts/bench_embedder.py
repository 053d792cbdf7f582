#!/usr/bin/env python3
"""Measure an embedder's speed and retrieval quality on the Python standard library.

Speed: the standard library cut into 60-line chunks (about 5,400 chunks, 2,100 characters each),
embedded in batches; chunks/s is reported for a first pass in a fresh embedder ("cold": for the
static model this includes tokenizing every new word) and a second pass ("warm").

Quality: for standard-library functions of 6-60 lines with a docstring of five or more words, the
docstring's first paragraph is the query and the function without its docstring the document;
MRR@10, recall@1 and recall@10 over all pairs (default 1,500). The queries are the code's own
description, so this measures "find the function that does X", not paraphrase robustness.

    python scripts/bench_embedder.py                      # static, speed and quality
    python scripts/bench_embedder.py --backend transformer --model-path DIR --limit 500
    taskset -c 0,1 python scripts/bench_embedder.py       # the two-core figure

Library use: `speed(embedder, chunks)` and `quality(embedder, pairs)` return dicts.
"""

from __future__ import annotations

import argparse
import ast
import random
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mcp_server.embeddings import create_embedder  # noqa: E402
from mcp_server.embeddings.base import Embedder  # noqa: E402

CHUNK_LINES = 60
SKIPPED_PARTS = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo"}


def stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not SKIPPED_PARTS.intersection(p.relative_to(root).parts))


def stdlib_chunks(files: list[Path]) -> list[str]:
    chunks: list[str] = []
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            continue
        chunks.extend("\n".join(lines[i : i + CHUNK_LINES]) for i in range(0, len(lines), CHUNK_LINES))
    return chunks


def docstring_pairs(files: list[Path], limit: int, seed: int = 0) -> list[tuple[str, str]]:
    """(first docstring paragraph, function source without the docstring) pairs."""
    pairs: list[tuple[str, str]] = []
    for path in files:
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) or node.name.startswith("__"):
                continue
            doc = ast.get_docstring(node)
            end = node.end_lineno or node.lineno
            if not doc or not 6 <= end - node.lineno + 1 <= 60:
                continue
            query = doc.strip().split("\n\n")[0].replace("\n", " ").strip()
            if len(query.split()) < 5:
                continue
            first = node.body[0]
            body = lines[node.lineno - 1 : end]
            doc_start, doc_end = (
                first.lineno - node.lineno,
                (first.end_lineno or first.lineno) - node.lineno + 1,
            )
            pairs.append((query, "\n".join(body[:doc_start] + body[doc_end:])))
    random.Random(seed).shuffle(pairs)
    return pairs[:limit]


def speed(embedder: Embedder, chunks: list[str], *, batch_size: int = 256) -> dict[str, float]:
    """Chunks per second of wall time, and per second of this process's CPU time (all threads).

    The CPU figure is what to compare across runs on a busy machine; on an idle one, wall time on
    two cores is at best twice it for the transformer (BLAS uses both) and about equal to it for the
    static model (its per-chunk work is single-threaded Python and numpy).
    """

    def one_pass() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(chunks), batch_size):
            embedder.embed_documents(chunks[i : i + batch_size])
        return len(chunks) / (time.perf_counter() - wall), len(chunks) / (time.process_time() - cpu)

    embedder.embed_documents(["warm up: load the model"])
    cold, cold_cpu = one_pass()
    warm, warm_cpu = one_pass()
    return {
        "chunks": len(chunks),
        "cold_chunks_per_s": cold,
        "warm_chunks_per_s": warm,
        "cold_chunks_per_cpu_s": cold_cpu,
        "warm_chunks_per_cpu_s": warm_cpu,
    }


def quality(embedder: Embedder, pairs: list[tuple[str, str]]) -> dict[str, float]:
    queries = embedder.embed_documents([q for q, _ in pairs])
    documents = embedder.embed_documents([d for _, d in pairs])
    scores = queries @ documents.T
    own = scores[np.arange(len(pairs)), np.arange(len(pairs))]
    ranks = (scores > own[:, None]).sum(axis=1)
    return {
        "pairs": len(pairs),
        "mrr_at_10": float(np.mean(np.where(ranks < 10, 1.0 / (ranks + 1), 0.0))),
        "recall_at_1": float(np.mean(ranks == 0)),
        "recall_at_10": float(np.mean(ranks < 10)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="static", choices=["static", "transformer"])
    parser.add_argument("--model-path", default=None)
    parser.add_argument("--limit", type=int, default=0, help="at most this many chunks for speed (0: all)")
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args(argv)

    def make() -> Embedder:
        return create_embedder(
            backend=args.backend,
            model=None,
            url=None,
            api_key=None,
            dimension=None,
            batch_size=32,
            timeout_seconds=30.0,
            model_path=args.model_path,
        )

    files = stdlib_files()
    report: Callable[[str, dict[str, Any]], None] = lambda name, values: print(  # noqa: E731
        name, " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
    )
    embedder = make()
    print(f"backend={args.backend} model_id={embedder.model_id} dimension={embedder.dimension}")
    if not args.skip_speed:
        chunks = stdlib_chunks(files)
        if args.limit:
            chunks = chunks[: args.limit]
        report("speed", speed(make(), chunks))
    if not args.skip_quality:
        report("quality", quality(embedder, docstring_pairs(files, args.pairs)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
