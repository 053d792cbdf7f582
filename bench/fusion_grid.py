"""Which static-embedder fusion settings the judged query sets favour, on their dev half.

    .venv/bin/python bench/fusion_grid.py [--split dev|test|all]

Indexes the Python corpus and the four pinned corpora of bench/search_quality.py (static
embedder), then scores every point of a small grid of `ranking.STATIC_FUSION` settings (k, the
lexical weight's range and the coverage range it follows) by hybrid MRR@10 on the everyday and
paraphrase sets of every language, beside the single modes, which no fusion setting changes.
Prints the current setting and the best points: the mean over the (language, set) cells, the
worst cell, and in how many cells hybrid is at least as good as the better single mode (the
issue's "the default mode beats every single mode"). Settings are chosen on `dev`; look at
`--split test` once, afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from dataclasses import replace
from typing import Any

import search_quality as sq  # sets up the private CODEBASE_MCP_HOME first
from _common import remove_home

from mcp_server.embeddings import StaticEmbedder
from mcp_server.index.search import Searcher
from mcp_server.index.search.ranking import STATIC_FUSION, Fusion

GRID = {
    "k": [10.0, 20.0],
    "lexical_low": [0.5, 1.0, 1.5],
    "lexical_high": [3.0, 4.0, 6.0],
    "coverage_low": [0.3, 0.4, 0.5],
    "coverage_high": [0.7, 0.8, 0.9],
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="dev", choices=["dev", "test", "all"])
    args = parser.parse_args()
    engine = sq.get_engine(sq.load_settings())
    embedder = StaticEmbedder()
    everyday = sq.load_set("everyday")
    assert everyday is not None
    python_root = sq.build_corpus(everyday["corpus"], sq.HOME / "corpus")
    cells: list[tuple[str, str, str, list[dict[str, Any]]]] = []
    for language in ["python", *sq.CORPORA]:
        project = f"grid-{language}"
        root = python_root if language == "python" else sq.unpack(sq.CORPORA[language], sq.HOME / language)
        sq.index(engine, embedder, project, root, 2)
        for set_name in sq.SETS:
            data = sq.load_set(set_name, language)
            if data is not None:
                queries = [q for q in data["queries"] if args.split == "all" or q["split"] == args.split]
                cells.append((language, set_name, project, queries))
    searcher = Searcher(engine, embedder)
    single = {
        (language, set_name): max(
            sq.evaluate(searcher, project, queries, mode)[0] for mode in ("lexical", "semantic")
        )
        for language, set_name, project, queries in cells
    }

    def score(fusion: Fusion) -> tuple[float, float, int, dict[tuple[str, str], float]]:
        searcher.fusion = fusion
        per_cell = {
            (language, set_name): sq.evaluate(searcher, project, queries, "hybrid")[0]
            for language, set_name, project, queries in cells
        }
        wins = sum(per_cell[c] >= single[c] - 1e-9 for c in per_cell)
        return statistics.fmean(per_cell.values()), min(per_cell.values()), wins, per_cell

    current = score(STATIC_FUSION)
    results = []
    for values in itertools.product(*GRID.values()):
        setting = dict(zip(GRID, values, strict=True))
        if setting["lexical_low"] >= setting["lexical_high"]:
            continue
        fusion = replace(STATIC_FUSION, **setting)
        results.append((score(fusion)[:3], setting))
    results.sort(key=lambda r: (-r[0][2], -r[0][0]))
    print(f"split {args.split}; {len(cells)} cells; {len(results)} settings")
    print(
        f"current  mean {current[0]:.3f}  worst {current[1]:.3f}  hybrid >= best single mode in {current[2]}"
    )
    for cell, value in sorted(current[3].items()):
        print(f"    {cell[0]:<11} {cell[1]:<10} hybrid {value:.3f}  best single {single[cell]:.3f}")
    for (mean, worst, wins), setting in results[:12]:
        print(f"  mean {mean:.3f}  worst {worst:.3f}  wins {wins}  {setting}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        remove_home(sq.HOME, dispose=True)
