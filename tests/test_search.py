"""search_code behaviour on real indexes in the embedded PostgreSQL: filters, isolation, results.

Repositories are indexed in-process with the shipped static embedder (the default), so ranking
is the product's own; the retrieval-quality numbers live in bench/search_quality.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from indexing import index_run
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidInput
from mcp_server.embeddings import StaticEmbedder
from mcp_server.index import repositories, search
from mcp_server.index.search import Searcher, glob_to_regex, parse_file_types
from mcp_server.index.store import ChunkRow, FileWrite, IndexStore

pytestmark = pytest.mark.timeout(120)

MODES = ("hybrid", "semantic", "lexical")


def index(engine: Engine, embedder: StaticEmbedder, root: Path, project: str = "default") -> None:
    index_run(engine, root, embedder, project_id=project).run()


def analyze(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE chunks"))


def functions(prefix: str, count: int, body: str) -> str:
    """`count` functions of 25 lines each: too long for the chunker to pack two into one chunk."""
    padding = "".join(f"    step_{n} = value * {n}\n" for n in range(20))
    return "\n\n".join(
        f'def {prefix}_{i}(value):\n    """{body} number {i}."""\n{padding}    return value + {i}\n'
        for i in range(count)
    )


@pytest.fixture
def big_repo(make_repo: Any, clean_db: Engine, embedder: StaticEmbedder) -> Path:
    """About 1,200 chunks in `pkg/`; 15 in `special/` and a few in `docs/`."""
    files: dict[str, str] = {
        f"pkg/module_{m}.py": functions(f"handler_{m}", 8, "Compute the checksum of a record")
        for m in range(150)
    }
    for s in range(15):
        files[f"special/area_{s}.py"] = functions(f"special_{s}", 1, "Compute the checksum of a record")
    files["docs/guide.md"] = "\n\n".join(
        f"## Checksum step {i}\n\n" + "Compute the checksum.\n" * 30 for i in range(4)
    )
    root: Path = make_repo(files, name="big")
    index(clean_db, embedder, root)
    analyze(clean_db)
    return root


# --- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_selective_path_filter_still_fills_the_limit(searcher: Searcher, big_repo: Path, mode: str) -> None:
    response = searcher.search(
        "compute the checksum", project_id="default", mode=mode, limit=12, path="special"
    )
    assert len(response.results) == 12
    assert all(r.file_path.startswith("special/") for r in response.results)


@pytest.mark.parametrize("mode", MODES)
def test_a_selective_filter_fills_the_limit_through_the_vector_index_too(
    searcher: Searcher, big_repo: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search.retrieval, "EXACT_SCAN_MAX_ROWS", 0)  # force the HNSW iterative scan
    response = searcher.search(
        "compute the checksum", project_id="default", mode=mode, limit=15, path="special/**"
    )
    assert len(response.results) == 15
    assert all(r.file_path.startswith("special/") for r in response.results)


def test_language_and_file_type_filters_select_their_files(searcher: Searcher, big_repo: Path) -> None:
    by_language = searcher.search("checksum step", project_id="default", language="markdown", limit=10)
    assert by_language.results and {r.file_path for r in by_language.results} == {"docs/guide.md"}
    by_type = searcher.search("checksum step", project_id="default", file_type=".md", limit=10)
    assert [r.file_path for r in by_type.results] == [r.file_path for r in by_language.results]
    assert searcher.search("checksum", project_id="default", file_type="rs").results == []


def test_a_broad_filter_is_applied_to_the_chunk_rows(
    searcher: Searcher, big_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search.retrieval, "MAX_FILTER_FILES", 1)  # every filter counts as broad
    for mode in MODES:
        response = searcher.search(
            "compute the checksum", project_id="default", mode=mode, limit=12, path="special"
        )
        assert len(response.results) == 12
        assert all(r.file_path.startswith("special/") for r in response.results)
        docs = searcher.search(
            "checksum step", project_id="default", mode=mode, language="markdown", file_type="md"
        )
        assert docs.results and {r.file_path for r in docs.results} == {"docs/guide.md"}


def test_a_filter_that_matches_nothing_returns_no_results(searcher: Searcher, big_repo: Path) -> None:
    assert searcher.search("checksum", project_id="default", path="nowhere/**").results == []


@pytest.mark.parametrize(
    ("pattern", "matches", "rejects"),
    [
        ("src", ["src/a.py", "src/x/b.py"], ["srcfoo/c.py", "lib/src/a.py"]),
        ("src/", ["src/a.py"], ["srcfoo/c.py"]),
        ("src/*.py", ["src/a.py"], ["src/x/b.py", "src/a.pyc"]),
        ("src/**/*.py", ["src/a.py", "src/x/y/b.py"], ["lib/a.py"]),
        ("**/test_*.py", ["test_a.py", "a/b/test_c.py"], ["a/b/c_test.py"]),
        ("src/?.py", ["src/a.py"], ["src/ab.py"]),
        ("src/[ab].py", ["src/a.py", "src/b.py"], ["src/c.py"]),
        ("a+b/(x).py", ["a+b/(x).py"], ["aab/x.py"]),
    ],
)
def test_path_globs_and_prefixes(pattern: str, matches: list[str], rejects: list[str]) -> None:
    import re

    regex = re.compile(glob_to_regex(pattern))
    assert all(regex.search(p) for p in matches)
    assert not any(regex.search(p) for p in rejects)


def test_path_prefix_and_glob_select_the_same_files_in_the_database(
    searcher: Searcher, make_repo: Any, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    root = make_repo(
        {
            "src/a.py": "def alpha_parser():\n    return 'token parser'\n",
            "src/deep/b.py": "def beta_parser():\n    return 'token parser'\n",
            "srcfoo/c.py": "def gamma_parser():\n    return 'token parser'\n",
            "test_top.py": "def delta_parser():\n    return 'token parser'\n",
        }
    )
    index(clean_db, embedder, root)

    def paths(**filters: Any) -> set[str]:
        return {r.file_path for r in searcher.search("token parser", project_id="default", **filters).results}

    assert paths(path="src") == {"src/a.py", "src/deep/b.py"}
    assert paths(path="src/*.py") == {"src/a.py"}
    assert paths(path="**/*.py") == {"src/a.py", "src/deep/b.py", "srcfoo/c.py", "test_top.py"}
    assert paths(path="**/test_*.py") == {"test_top.py"}


# --- isolation -------------------------------------------------------------------------------------


def test_rows_of_one_project_are_never_returned_for_another_in_any_mode(
    searcher: Searcher, make_repo: Any, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    alpha = make_repo({"app.py": "def shared_entry():\n    return 'ordinary words'\n"}, name="alpha")
    beta = make_repo(
        {"app.py": "def shared_entry():\n    return 'zebra giraffe zebra giraffe'\n"}, name="beta"
    )
    index(clean_db, embedder, alpha, project="alpha")
    index(clean_db, embedder, beta, project="beta")
    # The same path indexed in a second project must not leak either.
    index(clean_db, embedder, beta, project="gamma")
    with clean_db.connect() as conn:
        alpha_ids = {r[0] for r in conn.execute(text("SELECT id FROM chunks WHERE project_id = 'alpha'"))}
    for mode in MODES:
        response = searcher.search("zebra giraffe", project_id="alpha", mode=mode, limit=50)
        assert all(r.repository == str(alpha) for r in response.results)
        assert all("zebra" not in r.content for r in response.results)
    # Below the fusion: each retriever's SQL returns only rows of the project it was given.
    with clean_db.connect() as conn:
        repos = repositories.project_repositories(conn, "alpha")
        scope = search.Scope.build(conn, "alpha", repos, search.SearchFilters())
        assert scope is not None
        retriever = search.retrieval.Retriever()
        vector = embedder.embed_query("zebra giraffe")
        lexical, _ = retriever.lexical(conn, "zebra giraffe shared entry", scope, 50)
        semantic = retriever.semantic(conn, vector, embedder.dimension, scope, 50)
        exact = retriever.semantic(conn, vector, embedder.dimension, scope.as_exact(), 50)
    assert lexical and semantic and exact
    assert {chunk_id for chunk_id, _ in lexical + semantic + exact} <= alpha_ids


def test_an_unknown_project_has_no_results(searcher: Searcher, big_repo: Path) -> None:
    response = searcher.search("checksum", project_id="nobody")
    assert response.results == [] and response.total_count == 0


# --- results ---------------------------------------------------------------------------------------


def write_chunks(engine: Engine, embedder: StaticEmbedder, path: str, chunks: list[ChunkRow]) -> None:
    store = IndexStore(engine)
    store.check_project_model(
        "default", model_id=embedder.model_id, dimension=embedder.dimension, allow_change=False
    )
    state = store.begin_run(project_id="default", root_path="/repo")
    vectors = embedder.embed_documents([c.content for c in chunks])
    store.write_files(
        state,
        [FileWrite(path=path, language="python", content_hash=b"h" * 16, size_bytes=1, chunks=chunks)],
        np.asarray(vectors, dtype=np.float32),
        replaced_file_ids=[],
    )
    store.publish(state, job_id=None, replace_project_model=None)


def lines(start: int, end: int, word: str) -> str:
    return "".join(f"{word}_{n} = 'overlap marker {n}'\n" for n in range(start, end + 1))


def test_overlapping_chunks_give_one_result(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    write_chunks(
        clean_db,
        embedder,
        "a.py",
        [
            ChunkRow(1, 20, None, "module", lines(1, 20, "x")),
            ChunkRow(10, 30, None, "module", lines(10, 30, "x")),
            ChunkRow(40, 45, None, "module", lines(40, 45, "y")),
        ],
    )
    for mode in MODES:
        response = searcher.search("overlap marker", project_id="default", mode=mode, limit=10)
        ranges = [(r.start_line, r.end_line) for r in response.results]
        assert len(ranges) == 2, (mode, ranges)
        assert (40, 45) in ranges


def test_windows_of_one_long_function_give_one_result(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    write_chunks(
        clean_db,
        embedder,
        "b.py",
        [
            ChunkRow(1, 40, "long_function", "function", lines(1, 40, "z")),
            ChunkRow(41, 80, "long_function", "function", lines(41, 80, "z")),
            ChunkRow(82, 90, "other_function", "function", lines(82, 90, "w")),
        ],
    )
    response = searcher.search("overlap marker", project_id="default", mode="lexical", limit=10)
    assert sorted(r.symbol or "" for r in response.results) == ["long_function", "other_function"]


def padded(signature: str, doc: str, body: str) -> str:
    """A function of about 25 lines, so that neighbouring functions stay separate chunks."""
    comments = "".join(f"    # {doc} ({n})\n" for n in range(20))
    return f'{signature}\n    """{doc}"""\n{comments}{body}'


@pytest.fixture
def three_functions(make_repo: Any, clean_db: Engine, embedder: StaticEmbedder) -> Path:
    source = "import json\n\n\n" + "\n\n".join(
        [
            padded(
                "def load_settings(path):",
                "Read the configuration file.",
                "    with open(path) as handle:\n        return json.load(handle)\n",
            ),
            padded(
                "def parseHTTPResponse(raw):",
                "Split a raw reply into its status code and body.",
                "    head, _, body = raw.partition(b'\\r\\n\\r\\n')\n    return int(head.split()[1]), body\n",
            ),
            padded(
                "def median(values):",
                "The middle element of the sorted numbers.",
                "    ordered = sorted(values)\n"
                "    middle = len(ordered) // 2\n"
                "    if len(ordered) % 2:\n"
                "        return ordered[middle]\n"
                "    return (ordered[middle - 1] + ordered[middle]) / 2\n",
            ),
        ]
    )
    others = {
        f"util/helpers_{i}.py": f'def helper_{i}(items):\n    """Return the list of items, sorted."""\n'
        f"    return sorted(items)[:{i}]\n"
        for i in range(20)
    }
    root: Path = make_repo({"app/core.py": source, **others})
    index(clean_db, embedder, root)
    analyze(clean_db)
    return root


def test_results_carry_the_lines_around_them(searcher: Searcher, three_functions: Path) -> None:
    hit = searcher.search(
        "parseHTTPResponse", project_id="default", mode="lexical", limit=1, context_lines=4
    ).results[0]
    assert hit.symbol == "parseHTTPResponse" and hit.kind == "function" and hit.language == "python"
    assert hit.file_path == "app/core.py" and hit.content.startswith("def parseHTTPResponse(raw):")
    assert hit.context_before == "    with open(path) as handle:\n        return json.load(handle)\n\n\n"
    assert (
        hit.context_after == '\n\ndef median(values):\n    """The middle element of the sorted numbers."""\n'
    )
    assert hit.content.count("\n") == hit.end_line - hit.start_line + 1
    none = searcher.search(
        "parseHTTPResponse", project_id="default", mode="lexical", limit=1, context_lines=0
    )
    assert none.results[0].context_before == none.results[0].context_after == ""


def test_concise_mode_returns_the_first_lines_only(searcher: Searcher, three_functions: Path) -> None:
    full = searcher.search("median of values", project_id="default", limit=5, context_lines=4)
    concise = searcher.search("median of values", project_id="default", limit=5, concise=True)
    assert any(r.context_before or r.context_after for r in full.results)
    assert [(r.file_path, r.start_line) for r in concise.results] == [
        (r.file_path, r.start_line) for r in full.results
    ]
    for short, long in zip(concise.results, full.results, strict=True):
        assert short.content == "".join(long.content.splitlines(keepends=True)[: search.CONCISE_LINES])
        assert short.content_truncated == (short.content != long.content)
        assert short.context_before == short.context_after == ""


def test_the_size_cap_bounds_the_code_returned(searcher: Searcher, big_repo: Path) -> None:
    response = searcher.search("compute the checksum", project_id="default", limit=40, max_chars=1000)
    code = sum(len(r.content) + len(r.context_before) + len(r.context_after) for r in response.results)
    assert response.truncated
    assert 0 < code <= 1000
    uncapped = searcher.search("compute the checksum", project_id="default", limit=40, max_chars=200_000)
    assert not uncapped.truncated and len(uncapped.results) == 40


# --- arguments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * (search.MAX_QUERY_CHARS + 1)},
        {"limit": 0},
        {"limit": search.MAX_LIMIT + 1},
        {"limit": True},
        {"limit": "5"},
        {"mode": "fuzzy"},
        {"language": "Python; DROP TABLE chunks"},
        {"path": "/etc/passwd"},
        {"path": ""},
        {"file_type": "py/../x"},
        {"file_type": ""},
        {"context_lines": -1},
        {"context_lines": search.MAX_CONTEXT_LINES + 1},
        {"max_chars": 10},
        {"concise": "yes"},
    ],
)
def test_empty_or_invalid_arguments_are_refused(searcher: Searcher, kwargs: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"query": "parse", "project_id": "default", **kwargs}
    with pytest.raises(InvalidInput):
        searcher.search(**arguments)


def test_file_types_are_normalised() -> None:
    assert parse_file_types(".PY, pyi") == ("py", "pyi")
    assert parse_file_types(["ts", "tsx"]) == ("ts", "tsx")
    assert parse_file_types(None) == ()


# --- ranking ---------------------------------------------------------------------------------------


def test_lexical_search_splits_identifiers(searcher: Searcher, three_functions: Path) -> None:
    for query in ("parse http response", "parseHTTPResponse", "HTTP response parse"):
        top = searcher.search(query, project_id="default", mode="lexical", limit=3).results
        assert top[0].symbol == "parseHTTPResponse", query
    top = searcher.search("settings load", project_id="default", mode="lexical", limit=3).results
    assert top[0].symbol == "load_settings"


@pytest.mark.parametrize("mode", MODES)
def test_a_specific_query_ranks_the_right_function_first(
    searcher: Searcher, three_functions: Path, mode: str
) -> None:
    top = searcher.search("the median of some numbers", project_id="default", mode=mode, limit=5).results
    assert top[0].symbol == "median"


@pytest.fixture
def code_and_its_test(make_repo: Any, clean_db: Engine, embedder: StaticEmbedder) -> Path:
    """An implementation and a test that repeats its words (as tests do) more often than it does."""
    root: Path = make_repo(
        {
            "billing/invoice.py": (
                "def apply_discount(invoice, percent):\n"
                '    """Reduce the invoice total by a percentage."""\n'
                "    invoice.total = invoice.total * (100 - percent) / 100\n"
                "    return invoice\n"
            ),
            "tests/test_invoice.py": (
                "from billing.invoice import apply_discount\n\n\n"
                "def test_apply_discount_reduces_the_invoice_total():\n"
                "    invoice = Invoice(total=200)\n"
                "    apply_discount(invoice, percent=10)\n"
                "    assert invoice.total == 180  # the invoice total after the discount\n"
            ),
        },
        name="billing",
    )
    index(clean_db, embedder, root)
    return root


@pytest.mark.parametrize("mode", MODES)
def test_code_ranks_above_the_tests_that_exercise_it(
    searcher: Searcher, code_and_its_test: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "apply a discount to the invoice total"
    monkeypatch.setattr(search.ranking, "TEST_CODE_WEIGHT", 1.0)
    unweighted = searcher.search(query, project_id="default", mode=mode, limit=2).results
    assert unweighted[0].file_path == "tests/test_invoice.py"  # what the prior is there to fix
    monkeypatch.undo()
    top = searcher.search(query, project_id="default", mode=mode, limit=2).results
    assert [r.file_path for r in top] == ["billing/invoice.py", "tests/test_invoice.py"]


def test_a_query_about_tests_or_a_path_filter_still_finds_tests_first(
    searcher: Searcher, code_and_its_test: Path
) -> None:
    top = searcher.search("test that applies a discount to the invoice total", project_id="default")
    assert top.results[0].file_path == "tests/test_invoice.py"
    top = searcher.search("apply a discount to the invoice total", project_id="default", path="tests/")
    assert [r.file_path for r in top.results] == ["tests/test_invoice.py"]


@pytest.mark.parametrize(
    ("path", "is_test"),
    [
        ("tests/test_invoice.py", True),
        ("pkg/invoice_test.go", True),
        ("web/src/__tests__/cart.js", True),
        ("web/src/cart.spec.ts", True),
        ("src/test/java/org/acme/CartTest.java", True),
        ("spec/models/cart_spec.rb", True),
        ("conftest.py", True),
        ("src/attestation.py", False),
        ("numpy/testing/utils.py", False),
        ("latest/contest.py", False),
        ("docs/testing.md", False),
    ],
)
def test_test_code_is_recognised_by_its_path(path: str, is_test: bool) -> None:
    assert search.is_test_path(path) is is_test


@pytest.fixture
def name_of_common_words(make_repo: Any, clean_db: Engine, embedder: StaticEmbedder) -> Path:
    """A crate about backtraces: "rust", "lib" and "backtrace" are in every file, apart; one file
    reads the RUST_LIB_BACKTRACE variable, and another talks about the environment."""
    files = {
        f"src/part_{i}.rs": f"/// The rust lib keeps a backtrace for error number {i}.\n"
        f"pub fn backtrace_{i}(lib: &Lib) -> Backtrace {{ lib.rust_backtrace({i}) }}\n"
        for i in range(12)
    }
    files["src/enabled.rs"] = (
        'fn enabled() -> bool {\n    match env::var_os("RUST_LIB_BACKTRACE") {\n'
        '        Some(s) => s != "0",\n        None => false,\n    }\n}\n'
    )
    files["src/docs.rs"] = (
        "/// Read the environment once at start-up, for every setting.\npub fn start() {}\n"
    )
    root = make_repo(files)
    index(clean_db, embedder, root)
    return root


def test_an_identifier_made_of_common_words_finds_the_chunk_that_names_it(
    searcher: Searcher, name_of_common_words: Path
) -> None:
    # Each word alone is in most chunks, so none selects candidates; the name, as a phrase, does.
    for query in ("RUST_LIB_BACKTRACE environment", "where is RUST_LIB_BACKTRACE read"):
        top = searcher.search(query, project_id="default", mode="lexical", limit=3).results
        assert top and top[0].file_path == "src/enabled.rs", (query, [r.file_path for r in top])


def test_the_scope_clause_written_for_the_word_index_changes_the_plan_not_the_results(
    searcher: Searcher, big_repo: Path, clean_db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project holding most of the table gets its scope as `... IS TRUE` (no index narrows it);
    any other gets the plain clause. Both must find the same chunks, filters included."""
    from mcp_server.index.search import retrieval
    from mcp_server.index.search.query import SearchFilters
    from mcp_server.index.term_stats import TermStats

    with clean_db.connect() as conn:
        repos = repositories.readable(conn, "default", repositories.project_repositories(conn, "default"))
        scope = retrieval.Scope.build(conn, "default", repos, SearchFilters(None, None, ()))
        assert scope is not None
        dominant = retrieval._lexical_scope(conn, scope, TermStats(rows=10**9))
        minor = retrieval._lexical_scope(conn, scope, TermStats(rows=1))
        assert dominant == f"({scope.where}) IS TRUE" and minor == scope.where
        narrow = retrieval.Scope.build(conn, "default", repos, SearchFilters(None, "special/**", ()))
        assert narrow is not None and "file_ids" in narrow.params
        assert retrieval._lexical_scope(conn, narrow, TermStats(rows=10**9)) == narrow.where

    def lexical(**filters: Any) -> list[tuple[str, int]]:
        found = searcher.search("checksum record", project_id="default", mode="lexical", limit=20, **filters)
        return [(r.file_path, r.start_line) for r in found.results]

    for filters in ({}, {"path": "special/**"}, {"language": "python"}, {"path": "**/area_3.py"}):
        monkeypatch.setattr(retrieval, "DOMINANT_PROJECT_SHARE", 0.0)
        always = lexical(**filters)
        monkeypatch.setattr(retrieval, "DOMINANT_PROJECT_SHARE", 2.0)
        assert lexical(**filters) == always and always, filters
