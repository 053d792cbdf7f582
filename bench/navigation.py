"""Navigation on the standard library: what the symbol table costs, and how right its answers are.

    .venv/bin/python bench/navigation.py [--symbols 50] [--references 10] [--workers 2]

1. Cost: the standard library of this interpreter is indexed twice into a private embedded
   PostgreSQL, without and with the symbol table (IndexRun(with_symbols=False) is the baseline,
   same run, same machine); index time and the size of each table are printed side by side.
2. find_definition: for --symbols names picked at random (seeded) among the stdlib's top-level
   functions and classes and their methods whose qualified name is defined in one file only
   (ground truth: Python's own `ast`), is the first definition in the defining file, on the
   defining line?
   Only indexed files count (the walker skips e.g. `venv/`, `test/` stays in).
3. find_references: for --references of those names (names on more than 900 lines are skipped:
   the tool answers at most 1,000), the lines returned against (a) a grep for
   the name as a whole word and (b) the name's NAME tokens from Python's `tokenize` (identifiers
   outside comments and strings): precision and recall against each.
"""

from __future__ import annotations

import argparse
import ast
import io
import random
import re
import shutil
import sys
import sysconfig
import time
import tokenize
from pathlib import Path
from typing import Any

from _common import private_home, remove_home

# Worker processes (forkserver) import this module again: they reuse the parent's directory.
HOME = private_home("codebase-mcp-navigation-", inherit=__name__ != "__main__")

from sqlalchemy import text  # noqa: E402

from mcp_server.core.settings import load_settings  # noqa: E402
from mcp_server.db.database import get_engine  # noqa: E402
from mcp_server.embeddings import StaticEmbedder  # noqa: E402
from mcp_server.index.navigation import Navigator  # noqa: E402
from mcp_server.index.search import is_test_path  # noqa: E402
from mcp_server.index.store import IndexStore  # noqa: E402
from mcp_server.indexer.pipeline import IndexRun  # noqa: E402

TABLES = ("files", "chunks", "symbols", "symbol_occurrences")


def copy_stdlib() -> Path:
    corpus = HOME / "stdlib"
    shutil.copytree(
        sysconfig.get_paths()["stdlib"],
        corpus,
        symlinks=True,
        ignore_dangling_symlinks=True,
        ignore=shutil.ignore_patterns("__pycache__", "site-packages"),
    )
    return corpus


def index(engine: Any, root: Path, project: str, *, with_symbols: bool, workers: int) -> tuple[float, Any]:
    run = IndexRun(
        store=IndexStore(engine),
        embedder=StaticEmbedder(),
        project_id=project,
        root=root,
        force=False,
        max_file_bytes=1_000_000,
        workers=workers,
        with_symbols=with_symbols,
    )
    started = time.perf_counter()
    counters = run.run()
    return time.perf_counter() - started, counters


def table_sizes(engine: Any) -> dict[str, int]:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        return {
            t: int(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()) for t in TABLES
        }


def ground_truth(root: Path) -> dict[str, list[tuple[str, int]]]:
    """qualified name -> [(file, line of `def`/`class`)] for module-level definitions and methods."""
    found: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.setdefault(node.name, []).append((rel, node.lineno))
            if isinstance(node, ast.ClassDef):
                for member in node.body:
                    if isinstance(member, ast.FunctionDef | ast.AsyncFunctionDef):
                        found.setdefault(f"{node.name}.{member.name}", []).append((rel, member.lineno))
    return found


def grep_lines(root: Path, name: str) -> set[tuple[str, int]]:
    word = re.compile(rf"(?<![\w]){re.escape(name)}(?![\w])")
    out = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        out.update((rel, i) for i, line in enumerate(lines, 1) if word.search(line))
    return out


def token_lines(root: Path, name: str, candidates: set[tuple[str, int]]) -> set[tuple[str, int]]:
    out = set()
    for rel in sorted({f for f, _ in candidates}):
        try:
            source = (root / rel).read_bytes()
            for tok in tokenize.tokenize(io.BytesIO(source).readline):
                if tok.type == tokenize.NAME and tok.string == name:
                    out.add((rel, tok.start[0]))
        except (tokenize.TokenError, SyntaxError, UnicodeDecodeError):
            continue
    return out


def precision_recall(found: set[Any], truth: set[Any]) -> tuple[float, float]:
    hits = len(found & truth)
    return (hits / len(found) if found else 1.0), (hits / len(truth) if truth else 1.0)


def print_cost(
    counters: Any, seconds_without: float, seconds_with: float, without: dict[str, int], with_: dict[str, int]
) -> None:
    mb = 1024 * 1024
    print(f"stdlib: {counters.files_indexed} files, {counters.chunks_created} chunks")
    print(f"{'':<22}{'without':>10}{'with':>10}{'ratio':>8}")
    print(
        f"{'index time (s)':<22}{seconds_without:>10.1f}{seconds_with:>10.1f}"
        f"{seconds_with / seconds_without:>8.2f}"
    )
    for table in TABLES:
        print(f"{table + ' (MB)':<22}{without[table] / mb:>10.1f}{with_[table] / mb:>10.1f}")
    total_without, total_with = sum(without.values()), sum(with_.values())
    print(
        f"{'total (MB)':<22}{total_without / mb:>10.1f}{total_with / mb:>10.1f}"
        f"{total_with / total_without:>8.2f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--references", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-cost", action="store_true", help="index once, with the symbol table")
    args = parser.parse_args()
    engine = get_engine(load_settings())
    root = copy_stdlib()

    if args.no_cost:
        seconds_with, counters = index(engine, root, "stdlib", with_symbols=True, workers=args.workers)
    else:
        seconds_without, counters = index(engine, root, "stdlib", with_symbols=False, workers=args.workers)
        sizes_without = table_sizes(engine)
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE projects, repositories, files, chunks CASCADE"))
        seconds_with, _ = index(engine, root, "stdlib", with_symbols=True, workers=args.workers)
        sizes_with = table_sizes(engine)
        print_cost(counters, seconds_without, seconds_with, sizes_without, sizes_with)
    with engine.connect() as conn:
        indexed = {r[0] for r in conn.execute(text("SELECT path FROM files"))}
    truth = {
        name: places for name, places in ground_truth(root).items() if all(f in indexed for f, _ in places)
    }
    unique = sorted(
        (name, places[0])
        for name, places in truth.items()
        if len(places) == 1 and not is_test_path(places[0][0]) and len(name.rsplit(".", 1)[-1]) >= 4
    )
    picked = random.Random(11).sample(unique, args.symbols)
    navigator = Navigator(engine)
    right_file = right_line = 0
    misses = []
    for name, (path, line) in picked:
        found = navigator.find_definition(name, project_id="stdlib", limit=3)["definitions"]
        first = found[0] if found else None
        if first is not None and first["file_path"] == path:
            right_file += 1
            if first["start_line"] == line:
                right_line += 1
                continue
        misses.append(f"{name} ({path}:{line}) -> {first and (first['file_path'], first['start_line'])}")
    n = len(picked)
    print(f"\nfind_definition, {n} random stdlib symbols defined once (truth: ast)")
    print(
        f"  defining file first: {right_file}/{n} = {right_file / n:.2f}   "
        f"file and line: {right_line / n:.2f}"
    )
    for miss in misses:
        print(f"  miss: {miss}")

    print(f"\nfind_references on {args.references} of them (lines, all files)")
    print(
        f"  {'symbol':<40}{'found':>6}{'grep':>6}{'P/grep':>8}{'R/grep':>8}"
        f"{'tokens':>7}{'P/tok':>7}{'R/tok':>7}"
    )
    totals = []
    checked = 0
    for name, _ in picked:
        if checked == args.references:
            break
        bare = name.rsplit(".", 1)[-1]
        grep = {(f, line) for f, line in grep_lines(root, bare) if f in indexed}
        if len(grep) > 900:
            continue  # find_references answers at most 1,000 lines: a name that common is skipped
        checked += 1
        answer = navigator.find_references(name, project_id="stdlib", limit=1000)
        found = {(f["file_path"], r["line"]) for f in answer["files"] for r in f["references"]}
        tokens = token_lines(root, bare, grep)
        pg, rg = precision_recall(found, grep)
        pt, rt = precision_recall(found, tokens)
        totals.append((pg, rg, pt, rt))
        print(
            f"  {name[:39]:<40}{len(found):>6}{len(grep):>6}{pg:>8.2f}{rg:>8.2f}"
            f"{len(tokens):>7}{pt:>7.2f}{rt:>7.2f}"
        )
    means = [sum(col) / len(totals) for col in zip(*totals, strict=True)]
    print(
        f"  {'mean':<40}{'':>6}{'':>6}{means[0]:>8.2f}{means[1]:>8.2f}{'':>7}{means[2]:>7.2f}{means[3]:>7.2f}"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        remove_home(HOME, dispose=True)
