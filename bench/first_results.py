"""Time to the first useful search result while a repository's first index runs.

    .venv/bin/python bench/first_results.py [--corpus DIR] [--set everyday|stdlib|both]

The tree is the standard library of the running interpreter (copied, without `__pycache__` and
`site-packages`) with the retrieval eval's corpus (bench/quality: boltons, markdown, sqlparse,
humanize, itsdangerous, as installed by the `[test]` extra) placed in its `site-packages/`, where
an interpreter keeps such packages: so the eval's target files are in the tree. It is indexed as
a first index through the product's own path (`start_indexing_background`: a job, a supervisor,
the indexer), in a private embedded PostgreSQL (a temporary CODEBASE_MCP_HOME), while this
process polls `search_code` (the service call the MCP tool makes, limit 10, hybrid) with every
query not found yet, round after round, until the job ends.

Query sets, each query with the file(s) that answer it:
  everyday  the retrieval eval's everyday queries (bench/quality/everyday.json), targets under
            site-packages/ (which the walk, in path order, reaches about half-way);
  stdlib    the search queries of bench/index_speed.py whose answer is one obvious module,
            spread over the whole alphabet.
A query is found when one of its target files is among its results. Printed: the time to the
first useful result (from the start_indexing call) and its share of the whole run, when each
query was first found (with the index percent the response reported), and the round time
(the resolution of these figures: the polling shares the machine with the indexer).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import private_home, remove_home

HOME = private_home("codebase-mcp-first-results-")
os.environ.setdefault("CODEBASE_LINGER_SECONDS", "0")

from search_quality import QUALITY_DIR, build_corpus  # noqa: E402

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.frontends.operations import CodebaseService  # noqa: E402

PROJECT = "first-results"

# bench/index_speed.py's queries whose answer is one obvious module of the standard library.
STDLIB_QUERIES = {
    "parse a JSON document": ["json/decoder.py", "json/__init__.py"],
    "read a zip archive": ["zipfile.py", "zipfile/__init__.py"],
    "send an email over SMTP": ["smtplib.py"],
    "compute an md5 hash": ["hashlib.py"],
    "spawn a subprocess and read its output": ["subprocess.py"],
    "compress data with gzip": ["gzip.py"],
    "parse command line arguments": ["argparse.py", "getopt.py", "optparse.py"],
    "decode base64": ["base64.py"],
    "URL encode query string": ["urllib/parse.py"],
    "temporary file that is deleted on close": ["tempfile.py"],
    "read a CSV file into rows": ["csv.py"],
    "pretty print nested data structures": ["pprint.py"],
    "deep copy an object": ["copy.py"],
    "lru cache decorator": ["functools.py"],
    "heap push and pop": ["heapq.py"],
    "binary search in a sorted list": ["bisect.py"],
    "random shuffle a list": ["random.py"],
    "parse an XML tree": ["xml/etree/ElementTree.py"],
    "logging handler rotate file": ["logging/handlers.py"],
    "pickle protocol dump objects": ["pickle.py"],
    "dataclass field default factory": ["dataclasses.py"],
    "enum auto value": ["enum.py"],
    "tokenize python source": ["tokenize.py"],
    "disassemble bytecode": ["dis.py"],
    "configparser read ini file": ["configparser.py"],
    "shutil copy tree": ["shutil.py"],
    "fnmatch translate pattern": ["fnmatch.py"],
}


def build_tree(stdlib: Path, into: Path) -> Path:
    shutil.copytree(
        stdlib,
        into,
        symlinks=True,
        ignore_dangling_symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "site-packages"),
    )
    everyday = json.loads((QUALITY_DIR / "everyday.json").read_text(encoding="utf-8"))
    build_corpus(everyday["corpus"], into / "site-packages")
    return into


def query_sets(which: str) -> dict[str, dict[str, list[str]]]:
    sets: dict[str, dict[str, list[str]]] = {}
    if which in ("everyday", "both"):
        everyday = json.loads((QUALITY_DIR / "everyday.json").read_text(encoding="utf-8"))
        sets["everyday"] = {
            q["query"]: [f"site-packages/{f}" for f in q["files"]] for q in everyday["queries"]
        }
    if which in ("stdlib", "both"):
        sets["stdlib"] = STDLIB_QUERIES
    return sets


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument("--set", choices=("everyday", "stdlib", "both"), default="both")
    args = parser.parse_args()

    tree = build_tree(args.corpus, HOME / "stdlib")
    files = sum(len(names) for _, _, names in os.walk(tree))
    sets = query_sets(args.set)
    service = CodebaseService(load_settings())
    service.search("warm up", PROJECT)  # the embedded server's start and the embedder's load

    began = time.perf_counter()
    job = service.start_indexing(str(tree), PROJECT)
    found: dict[tuple[str, str], tuple[float, float | None, int]] = {}  # -> (seconds, percent, rank)
    rounds: list[float] = []
    status: dict[str, Any] = {}
    finished = False
    while not finished:
        # One more round after the job ends: what the published index finds.
        status = service.get_status(job["job_id"])
        finished = status["status"] in ("completed", "failed", "cancelled")
        round_began = time.perf_counter()
        for name, queries in sets.items():
            for query, targets in queries.items():
                if (name, query) in found:
                    continue
                answer = service.search(query, PROJECT, 10)
                ranks = [i for i, hit in enumerate(answer["results"], 1) if hit["file_path"] in targets]
                if ranks:
                    percent = answer.get("index_percent") if answer.get("partial") else 100.0
                    found[(name, query)] = (time.perf_counter() - began, percent, ranks[0])
        rounds.append(time.perf_counter() - round_began)
        if not finished:
            time.sleep(0.05)
    ended = time.perf_counter() - began

    print(f"tree: {tree} ({files} files; the eval corpus in site-packages/)")
    print(
        f"first index: {status['status']}, {status.get('files_indexed')} files, "
        f"{status.get('chunks_created')} chunks, {ended:.1f} s from start_indexing to seen ended"
    )
    print(
        f"polling: {len(rounds)} rounds, median {sorted(rounds)[len(rounds) // 2]:.2f} s, "
        f"longest {max(rounds):.2f} s (the resolution of the times below)"
    )
    for name, queries in sets.items():
        times = sorted(((found[(name, q)], q) for q in queries if (name, q) in found), key=lambda t: t[0][0])
        print(f"\n== {name}: {len(times)} of {len(queries)} queries found a target file in their top 10 ==")
        if times:
            (first, percent, _rank), query = times[0]
            shown = "published" if percent == 100.0 else f"index at {percent}%"
            print(
                f"first useful result: {first:.1f} s into a {ended:.1f} s first index "
                f"({first / ended:.0%} of the run; {shown}): {query!r}"
            )
        for (seconds, percent, rank), query in times:
            shown = "published" if percent == 100.0 else f"{percent}%" if percent is not None else "partial"
            print(f"  {seconds:6.1f} s  {shown:>10}  rank {rank:<2}  {query}")
        missed = [q for q in queries if (name, q) not in found]
        if missed:
            print(f"  never in the top 10: {', '.join(repr(q) for q in missed)}")
    remove_home(HOME, dispose=True)
    return 0 if status["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
