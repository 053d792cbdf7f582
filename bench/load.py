"""Search under load: N concurrent MCP clients calling `search_code` on a large index.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 20] [--home DIR] [--json]

1. Builds (or reuses, with --home) an index of about 100,000 chunks: a copy of the running
   interpreter's standard library without site-packages, indexed with CODEBASE_CHUNK_PACK_LINES=0
   (one chunk per definition) into the project `bench-load`. Synthetic modules top it up to
   --chunks if the library yields fewer.
2. Starts `codebase-mcp serve --transport http` on a free loopback port, as a client would use it.
3. Runs --clients concurrent fastmcp clients for --seconds; each calls `search_code` in a loop with
   everyday and identifier queries, cycling hybrid, semantic and lexical modes.
4. Prints the latency seen by the clients (p50, p95, p99, max; overall and per mode), the server's
   own `latency_ms`, throughput and errors.

The clients run in this process and compete with the server for the same cores: on a small
machine the figures include that contention. Everything uses a private embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from _common import private_home

QUERIES = [
    "parse a JSON document",
    "read a zip archive member",
    "send an email over SMTP",
    "compute an md5 hash of a file",
    "format a date as ISO 8601",
    "split a path into directory and file name",
    "spawn a subprocess and read its output",
    "compress data with gzip",
    "parse command line arguments",
    "open a TCP socket connection",
    "thread pool executor submit",
    "decode base64",
    "URL encode a query string",
    "walk a directory tree recursively",
    "temporary file deleted on close",
    "read a CSV file into rows",
    "pretty print nested data structures",
    "lru cache decorator",
    "heap push and pop",
    "binary search in a sorted list",
    "parse an XML tree",
    "unit test assertion raises",
    "rotate log files",
    "asyncio event loop run until complete",
    "dataclass field default factory",
    "context manager that suppresses exceptions",
    "tokenize python source code",
    "read an ini configuration file",
    "copy a directory tree",
    "match file names against a glob pattern",
    "HTTPConnection request",
    "ThreadPoolExecutor",
    "JSONDecoder raw_decode",
    "shutil.rmtree onerror",
    "socket.create_connection timeout",
    "datetime strptime",
    "subprocess.Popen communicate",
    "re.compile IGNORECASE",
    "os.walk topdown",
    "pickle.dumps protocol",
]
MODES = ("hybrid", "semantic", "lexical")
PROJECT = "bench-load"
CLI = (sys.executable, "-m", "mcp_server.frontends.cli")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the clients run (default 60)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent MCP clients (default 20)")
    parser.add_argument("--chunks", type=int, default=100_000, help="index size to reach (default 100,000)")
    parser.add_argument("--home", type=Path, default=None, help="CODEBASE_MCP_HOME to build in or reuse")
    parser.add_argument("--limit", type=int, default=10, help="search_code limit (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


def _chunk_count(engine: Any) -> int:
    from sqlalchemy import text

    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM chunks c JOIN repositories r ON r.id = c.repository_id "
                    "WHERE c.project_id = :p AND c.gen_from <= r.active_generation "
                    "AND c.gen_to > r.active_generation"
                ),
                {"p": PROJECT},
            ).scalar_one()
        )


def _synthetic_module(index: int) -> str:
    """A module of 40 small, distinct functions (about 40 chunks)."""
    rng = random.Random(index)
    words = ["cache", "token", "buffer", "record", "stream", "parser", "widget", "ledger", "socket", "batch"]
    functions = []
    for f in range(40):
        a, b = rng.sample(words, 2)
        functions.append(
            f"def {a}_{b}_{index}_{f}(items, limit={f}):\n"
            f'    """Return the {a} entries of the {b} that fit under the limit."""\n'
            f"    return [item for item in items if len(item) < limit + {index % 7}]\n"
        )
    return "\n\n".join(functions)


def _build_index(home: Path, target_chunks: int, log: Any) -> dict[str, Any]:
    from mcp_server.core.settings import load_settings
    from mcp_server.frontends.operations import CodebaseService

    svc = CodebaseService(load_settings())
    existing = _chunk_count(svc.engine)
    if existing >= target_chunks * 0.9:
        log(f"reusing the index in {home}: {existing} chunks")
        return {"chunks": existing, "built_seconds": None}
    corpus = home / "corpus"
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    if not corpus.exists():
        shutil.copytree(
            stdlib, corpus / "stdlib", ignore=shutil.ignore_patterns("site-packages", "__pycache__")
        )
    began = time.monotonic()
    for attempt in range(2):
        job = svc.start_indexing(str(corpus), project_id=PROJECT)["job_id"]
        while (status := svc.get_status(job))["status"] not in ("completed", "failed", "cancelled"):
            log(
                f"  indexing: {status['phase']} {status['files_seen']}/{status['files_total'] or '?'} files, "
                f"{status['chunks_created']} chunks"
            )
            time.sleep(5)
        if status["status"] != "completed":
            raise SystemExit(f"indexing failed: {status['error_message']}")
        chunks = _chunk_count(svc.engine)
        log(f"indexed {status['files_indexed']} files: {chunks} chunks")
        if chunks >= target_chunks * 0.9 or attempt:
            break
        # Top up with synthetic modules (about 40 chunks each) and index again (incremental).
        synthetic = corpus / "synthetic"
        synthetic.mkdir(exist_ok=True)
        for i in range((target_chunks - chunks) // 40 + 1):
            (synthetic / f"mod_{i:05d}.py").write_text(_synthetic_module(i))
    return {"chunks": _chunk_count(svc.engine), "built_seconds": round(time.monotonic() - began, 1)}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _start_server(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    import httpx

    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mcp_server.frontends.cli",
                "serve",
                "--transport",
                "http",
                "--port",
                str(port),
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "CODEBASE_MCP_LOG_LEVEL": "WARNING"},
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("the server did not start within 120 s")


async def _client(number: int, url: str, deadline: float, limit: int, results: list[dict[str, Any]]) -> None:
    from fastmcp import Client
    from fastmcp.client.transports import StreamableHttpTransport

    rng = random.Random(number)
    async with Client(StreamableHttpTransport(url), timeout=60) as client:
        i = number
        while time.monotonic() < deadline:
            query, mode = rng.choice(QUERIES), MODES[i % len(MODES)]
            i += 1
            began = time.perf_counter()
            record: dict[str, Any] = {"mode": mode}
            try:
                answer = await client.call_tool(
                    "search_code",
                    {"query": query, "project_id": PROJECT, "mode": mode, "limit": limit},
                    raise_on_error=False,
                )
                if answer.is_error:
                    record["error"] = str(answer.content)[:200]
                else:
                    data = answer.structured_content or {}
                    record["server_ms"] = data.get("latency_ms")
                    record["results"] = len(data.get("results", []))
            except Exception as exc:  # a transport failure counts as an error, the run goes on
                record["error"] = f"{type(exc).__name__}: {exc}"[:200]
            record["ms"] = (time.perf_counter() - began) * 1000
            results.append(record)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)

    return {
        "p50": pick(0.50),
        "p95": pick(0.95),
        "p99": pick(0.99),
        "max": round(ordered[-1], 1),
        "mean": round(statistics.fmean(ordered), 1),
    }


def main() -> int:
    args = _parse()
    home = private_home("codebase-mcp-load-", path=args.home)
    os.environ["CODEBASE_CHUNK_PACK_LINES"] = "0"
    log = (lambda message: print(message, file=sys.stderr)) if args.json else print
    index = _build_index(home, args.chunks, log)

    port = _free_port()
    server = _start_server(port, home / "server.log")
    results: list[dict[str, Any]] = []
    try:
        log(f"{args.clients} clients searching for {args.seconds:.0f} s ...")
        deadline = time.monotonic() + args.seconds
        began = time.monotonic()

        async def run_all() -> None:
            await asyncio.gather(
                *(
                    _client(n, f"http://127.0.0.1:{port}/mcp", deadline, args.limit, results)
                    for n in range(args.clients)
                ),
                return_exceptions=False,
            )

        asyncio.run(run_all())
        elapsed = time.monotonic() - began
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()

    errors = [r for r in results if "error" in r]
    ok = [r for r in results if "error" not in r]
    by_mode: dict[str, list[float]] = defaultdict(list)
    for r in ok:
        by_mode[r["mode"]].append(r["ms"])
    figures = {
        "index": index,
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "cpus": os.cpu_count(),
        "requests": len(results),
        "errors": len(errors),
        "error_examples": sorted({e["error"] for e in errors})[:5],
        "throughput_per_s": round(len(results) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": _percentiles([r["ms"] for r in ok]),
        "latency_ms_by_mode": {mode: _percentiles(values) for mode, values in sorted(by_mode.items())},
        "server_latency_ms": _percentiles(
            [float(r["server_ms"]) for r in ok if r.get("server_ms") is not None]
        ),
        "empty_results": sum(1 for r in ok if not r.get("results")),
    }
    print(json.dumps(figures, indent=2))
    if not args.json:
        latency = figures["latency_ms"]
        print(
            f"\np50 {latency.get('p50')} ms, p95 {latency.get('p95')} ms, {len(errors)} errors in "
            f"{len(results)} requests ({figures['throughput_per_s']}/s, {args.clients} clients, "
            f"{index['chunks']} chunks)"
        )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
