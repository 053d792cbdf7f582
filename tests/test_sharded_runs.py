"""Sharded runs: N shards, each indexing the files whose path hashes to it, write one generation
that the last to finish publishes. The rows (chunks with their vectors, symbols, occurrences) and
the search results are exactly those of an unsharded run, for N = 1, 3 and 7; a failed shard
leaves the previous generation searchable and, run again alone, completes the run.

The tree is a copy of this project's own sources and docs (real code no test here wrote for the
purpose). Searches are compared with the vector index dropped, so both sides rank by the exact
distance: an HNSW graph depends on the order its rows were inserted in, which sharding changes
by design, while what sharding must not change is the rows.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from indexing import index_run
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import ShardSourceMoved
from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.shards import Shard, shard_of
from mcp_server.embeddings import StaticEmbedder
from mcp_server.index.search import Searcher
from mcp_server.indexer.pipeline import IndexRun, RunCancelled, RunCounters

pytestmark = pytest.mark.timeout(300)

_STATIC = StaticEmbedder()
SOURCES = Path(__file__).resolve().parents[1]
QUERIES = [
    "where does a job move from running to completed",
    "advisory lock that serialises runs of one repository",
    "build the HNSW vector index and report its progress",
    "IndexRun",
    "validate_repo_path",
    "copy rows of a file another repository holds with the same content",
    "kill the indexer process group when the supervisor stops",
    "reciprocal rank fusion of lexical and semantic results",
    "how many shards auto picks",
    "termination message written for Kubernetes",
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "codebase"
    shutil.copytree(
        SOURCES / "mcp_server", root / "mcp_server", ignore=shutil.ignore_patterns("models", "__pycache__")
    )
    shutil.copytree(SOURCES / "docs", root / "docs", ignore=shutil.ignore_patterns("*.png"))
    return root


def _job(engine: Engine, project: str, root: Path, shards: int) -> uuid.UUID:
    jobs = JobStore(engine)
    job = jobs.create(repo_path=str(root), project_id=project, shards=shards)
    jobs.mark_running(job.id)
    return job.id


def _run(
    engine: Engine, project: str, root: Path, *, shard: Shard | None, job_id: uuid.UUID | None, **kw: Any
) -> IndexRun:
    run = index_run(engine, root, project_id=project, job_id=job_id, shard=shard, **kw)
    run.run()
    return run


def index_sharded(
    engine: Engine, project: str, root: Path, count: int, *, parallel: bool = False
) -> list[IndexRun]:
    job_id = _job(engine, project, root, count)
    shards = [Shard(k, count) for k in range(count)]
    if not parallel:
        return [_run(engine, project, root, shard=s, job_id=job_id) for s in shards]
    runs: list[IndexRun] = []
    errors: list[BaseException] = []

    def one(s: Shard) -> None:
        try:
            runs.append(_run(engine, project, root, shard=s, job_id=job_id))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(s,)) for s in shards]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return runs


def live_rows(engine: Engine, project: str) -> dict[str, Any]:
    """Everything search and navigation read of a project's live generation, without row ids."""
    live = (
        "JOIN repositories r ON r.id = f.repository_id WHERE r.project_id = :p "
        "AND f.gen_from <= r.active_generation AND r.active_generation < f.gen_to"
    )
    with engine.connect() as conn:
        chunks = conn.execute(
            text(
                "SELECT c.path, c.start_line, c.end_line, c.symbol, c.kind, c.content, c.language, "
                "c.embedding::text, c.search_tsv::text FROM chunks c JOIN files f ON f.id = c.file_id "
                f"{live} AND c.gen_from <= r.active_generation AND r.active_generation < c.gen_to"
            ),
            {"p": project},
        ).all()
        files = conn.execute(
            text(f"SELECT f.path, f.language, f.content_hash, f.size_bytes FROM files f {live}"),
            {"p": project},
        ).all()
        symbols = conn.execute(
            text(
                "SELECT f.path, s.name, s.qualified_name, s.parent, s.kind, s.start_line, s.end_line, "
                f"s.signature FROM symbols s JOIN files f ON f.id = s.file_id {live}"
            ),
            {"p": project},
        ).all()
        occurrences = conn.execute(
            text(
                "SELECT f.path, o.name, o.lines FROM symbol_occurrences o "
                f"JOIN files f ON f.id = o.file_id {live}"
            ),
            {"p": project},
        ).all()
        stats = conn.execute(
            text("SELECT lexeme, frequency FROM term_stats WHERE project_id = :p"), {"p": project}
        ).all()
    return {
        "files": sorted(map(tuple, files)),
        "chunks": sorted(map(tuple, chunks)),
        "symbols": sorted(map(tuple, symbols)),
        "occurrences": sorted((p, n, tuple(lines)) for p, n, lines in occurrences),
        "term_stats": sorted(map(tuple, stats)),
    }


def top10(engine: Engine, project: str) -> dict[str, list[tuple[str, int, int]]]:
    with engine.begin() as conn:
        for (index,) in conn.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexdef LIKE '%hnsw%'")
        ):
            conn.execute(text(f'DROP INDEX "{index}"'))
    searcher = Searcher(engine, _STATIC)
    answers = {}
    for mode in ("hybrid", "lexical", "semantic"):
        for query in QUERIES:
            results = searcher.search(query, project_id=project, mode=mode, limit=10).results
            answers[f"{mode}: {query}"] = [(r.file_path, r.start_line, r.end_line) for r in results]
    return answers


def test_shard_of_is_stable_disjoint_and_covers_every_path() -> None:
    paths = [f"src/dir{i % 13}/file_{i}.py" for i in range(5000)] + ["naïve.py", "sp ace/x", "\udcff.bin"]
    for count in (1, 3, 7):
        owners = [[k for k in range(count) if Shard(k, count).owns(p)] for p in paths]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o == [k]) for k in range(count)]
        assert min(sizes) > 0.7 * len(paths) / count, sizes  # a hash, not a skewed split
    # Fixed values: a change of the hash would move every file of a running sharded run.
    assert [shard_of("mcp_server/indexer/pipeline.py", n) for n in (2, 3, 7)] == [
        shard_of("mcp_server/indexer/pipeline.py", n) for n in (2, 3, 7)
    ]
    with pytest.raises(ValueError):
        Shard(3, 3)
    with pytest.raises(ValueError):
        Shard(0, 65)


def test_n_shards_write_exactly_the_rows_and_results_of_one_run(clean_db: Engine, tree: Path) -> None:
    _run(clean_db, "whole", tree, shard=None, job_id=None)
    expected_rows = live_rows(clean_db, "whole")
    assert len(expected_rows["chunks"]) > 500 and expected_rows["symbols"] and expected_rows["occurrences"]
    for count in (1, 3, 7):
        project = f"sharded-{count}"
        runs = index_sharded(clean_db, project, tree, count)
        assert sum(r.published for r in runs) == 1 and runs[-1].published
        parts = [r.counters.files_indexed for r in runs]
        assert sum(parts) == len(expected_rows["files"]) and (count == 1 or max(parts) < sum(parts))
        assert live_rows(clean_db, project) == expected_rows, f"{count} shards"
    expected = top10(clean_db, "whole")
    assert sum(len(v) for v in expected.values()) > 200
    for count in (1, 3, 7):
        assert top10(clean_db, f"sharded-{count}") == expected, f"{count} shards"


def test_shards_that_end_at_once_publish_exactly_once(clean_db: Engine, tree: Path) -> None:
    _run(clean_db, "whole", tree, shard=None, job_id=None)
    runs = index_sharded(clean_db, "together", tree, 4, parallel=True)
    assert sum(r.published for r in runs) == 1
    assert live_rows(clean_db, "together") == live_rows(clean_db, "whole")


def test_a_failed_shard_keeps_the_old_generation_and_a_retry_of_it_alone_publishes(
    clean_db: Engine, tree: Path, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(tree, root)
    first = index_sharded(clean_db, "p", root, 3)
    assert first[-1].published
    before = live_rows(clean_db, "p")
    # An edit in every shard's part, a new file, a deleted one.
    edited = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py"))
    by_shard = {k: [p for p in edited if shard_of(p, 3) == k][:2] for k in range(3)}
    for paths in by_shard.values():
        for rel in paths:
            (root / rel).write_text((root / rel).read_text() + "\n# shardedit marker\n")
    (root / "brand_new.py").write_text("def brand_new_function():\n    return 'shardnew'\n")
    deleted = by_shard[1][0]
    (root / deleted).unlink()

    jobs = JobStore(clean_db)
    job_id = _job(clean_db, "p", root, 3)
    _run(clean_db, "p", root, shard=Shard(0, 3), job_id=job_id)

    calls = 0

    def die_midway(counters: RunCounters, message: str) -> bool:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("killed")
        return True

    with pytest.raises(RuntimeError):
        _run(clean_db, "p", root, shard=Shard(2, 3), job_id=job_id, progress=die_midway)
    _run(clean_db, "p", root, shard=Shard(1, 3), job_id=job_id)
    # Two of three shards done, one died: nothing of the new generation is visible.
    assert live_rows(clean_db, "p") == before
    retry = _run(clean_db, "p", root, shard=Shard(2, 3), job_id=job_id)
    assert retry.published
    after = live_rows(clean_db, "p")
    paths = {row[0] for row in after["files"]}
    assert "brand_new.py" in paths and deleted not in paths
    # The same rows as a first unsharded index of the edited tree (not the word statistics: an
    # incremental run refreshes them only when the project's size moved by REFRESH_CHANGE).
    _run(clean_db, "check", root, shard=None, job_id=None)
    check = live_rows(clean_db, "check")
    assert {k: v for k, v in after.items() if k != "term_stats"} == {
        k: v for k, v in check.items() if k != "term_stats"
    }
    progress = jobs.shard_progress(job_id)
    assert [s.status for s in progress] == ["done"] * 3
    assert [s.attempts for s in progress] == [1, 1, 2]


def test_a_cancelled_sharded_run_never_publishes(clean_db: Engine, tree: Path) -> None:
    jobs = JobStore(clean_db)
    job_id = _job(clean_db, "c", tree, 2)
    _run(clean_db, "c", tree, shard=Shard(0, 2), job_id=job_id)
    jobs.cancel(job_id)
    with pytest.raises(RunCancelled):
        _run(clean_db, "c", tree, shard=Shard(1, 2), job_id=job_id)
    assert live_rows(clean_db, "c")["files"] == []
    assert jobs.get(job_id).status is JobStatus.CANCELLED


def test_shards_of_a_git_run_that_checked_out_different_commits_stop_the_run(
    clean_db: Engine, tree: Path
) -> None:
    """Every shard fetches the source itself: a branch pushed to while they start would publish a
    generation of two trees. The shard that got the other commit stops, the old index stays."""
    index_sharded(clean_db, "git", tree, 1)
    before = live_rows(clean_db, "git")
    job_id = _job(clean_db, "git", tree, 3)
    first, moved = "a" * 40, "b" * 40
    _run(clean_db, "git", tree, shard=Shard(0, 3), job_id=job_id, source_commit=first)
    _run(clean_db, "git", tree, shard=Shard(1, 3), job_id=job_id, source_commit=first)
    with pytest.raises(ShardSourceMoved, match=r"shard 3 of 3 checked out commit bbbbbbbbbbbb but shard 1"):
        _run(clean_db, "git", tree, shard=Shard(2, 3), job_id=job_id, source_commit=moved)
    assert live_rows(clean_db, "git") == before
    # The same commit (a retry after the push was undone, say) completes the run.
    assert _run(clean_db, "git", tree, shard=Shard(2, 3), job_id=job_id, source_commit=first).published


@pytest.mark.slow
def test_the_local_launcher_runs_the_shards_as_processes_and_completes_the_job(
    settings: Any, clean_db: Engine, make_repo: Any
) -> None:
    """The whole path: the tool's `shards`, the supervisor's children (`indexer run --shard K`),
    the summed progress, one published generation equal to an unsharded run's."""
    from mcp_server.frontends.operations import CodebaseService

    files = {f"pkg/mod_{i}.py": f"def function_{i}(x):\n    return x + {i}\n" for i in range(60)}
    root = make_repo(files, name="sharded")
    svc = CodebaseService(settings, engine=clean_db)
    started = svc.start_indexing(str(root), project_id="procs", shards=3)
    deadline = time.monotonic() + 120
    while (status := svc.get_status(started["job_id"]))["status"] not in ("completed", "failed", "cancelled"):
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["status"] == "completed", status
    assert status["shards"] == 3 and status["files_indexed"] == 60
    assert "by 3 shards" in status["progress_message"]
    assert [s["status"] for s in status["shard_progress"]] == ["done"] * 3
    assert sum(s["files_indexed"] for s in status["shard_progress"]) == 60
    _run(clean_db, "single", root, shard=None, job_id=None)
    assert live_rows(clean_db, "procs") == live_rows(clean_db, "single")


def test_shards_is_validated_where_it_enters(settings: Any, clean_db: Engine, make_repo: Any) -> None:
    from mcp_server.core.errors import InvalidInput
    from mcp_server.frontends.operations import CodebaseService

    root = make_repo({"a.py": "x = 1\n"}, name="v")
    svc = CodebaseService(settings, engine=clean_db)
    for bad in (0, 65, -1, "three", 2.5, True):
        with pytest.raises(InvalidInput, match="shards"):
            svc.start_indexing(str(root), project_id="v", shards=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="auto"):
        svc.start_indexing(git_url="https://example.com/r.git", project_id="v", shards="auto")
    started = svc.start_indexing(str(root), project_id="v", shards="auto")
    assert svc.jobs.get(uuid.UUID(started["job_id"])).shards == 1  # one file: one shard
    svc.cancel_job(started["job_id"])
