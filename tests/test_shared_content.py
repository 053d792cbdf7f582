"""Content shared across the repositories of a project (a second clone, a worktree, a branch):
a file another repository already holds with the same path and bytes has its rows copied, not
parsed and embedded again, and each repository keeps rows of its own, so deleting one never takes
anything from another. The embedder records what it embeds, so "nothing was embedded" is checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from indexing import index_run
from sqlalchemy import event, text
from sqlalchemy.engine import Engine

from mcp_server.embeddings import StaticEmbedder
from mcp_server.index.catalogue import IndexCatalogue
from mcp_server.index.navigation import Navigator
from mcp_server.index.search import Searcher
from mcp_server.index.store import SHARED_LOOKUP
from mcp_server.indexer.pipeline import COPY_BATCH_FILES, RunCancelled, RunCounters
from tests.test_index_runs import RecordingEmbedder

pytestmark = pytest.mark.timeout(120)

_STATIC = StaticEmbedder()


def run(
    engine: Engine,
    root: Path,
    embedder: Any,
    *,
    project: str = "default",
    force: bool = False,
    pack_lines: int = 40,
) -> RunCounters:
    return index_run(engine, root, embedder, project_id=project, force=force, pack_lines=pack_lines).run()


def hits(engine: Engine, query: str, root: Path, *, mode: str = "hybrid") -> list[tuple[str, int, int, str]]:
    response = Searcher(engine, _STATIC).search(
        query, project_id="default", mode=mode, limit=20, repository=str(root)
    )
    return [(r.file_path, r.start_line, r.end_line, r.repository) for r in response.results]


def same_hits(engine: Engine, query: str, first: Path, second: Path, *, mode: str = "hybrid") -> None:
    a = [(p, s, e) for p, s, e, _ in hits(engine, query, first, mode=mode)]
    b = [(p, s, e, repo) for p, s, e, repo in hits(engine, query, second, mode=mode)]
    assert a, f"{query!r} finds nothing in {first}"
    assert [(p, s, e) for p, s, e, _ in b] == a
    assert {repo for *_, repo in b} == {str(second)}


FILES = {
    f"pkg/module_{i}.py": f"class Widget{i}:\n    def render_{i}(self):\n        return 'marker{i}'\n"
    for i in range(8)
} | {
    "README.md": "# Title\n\nSome words about readmemarker.\n",
    "empty.txt": "",
}


@pytest.fixture
def first(make_repo: Any, clean_db: Engine) -> Path:
    root: Path = make_repo(FILES, name="first")
    counters = run(clean_db, root, RecordingEmbedder())
    assert (counters.files_indexed, counters.files_copied) == (10, 0)
    return root


def clone(first: Path) -> Path:
    second = first.parent / "second"
    shutil.copytree(first, second, symlinks=True)
    return second


def test_a_second_clone_embeds_nothing_and_answers_like_the_first(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder)
    assert embedder.texts == []
    assert (counters.files_indexed, counters.files_copied, counters.chunks_embedded) == (10, 10, 0)
    assert counters.chunks_copied == counters.chunks_created > 0
    for query in ("marker3", "Widget5 render", "readmemarker"):
        same_hits(clean_db, query, first, second)
        same_hits(clean_db, query, first, second, mode="lexical")
    definition = Navigator(clean_db).find_definition("Widget4", project_id="default", repository=str(second))
    assert [(d["file_path"], d["start_line"], d["repository"]) for d in definition["definitions"]] == [
        ("pkg/module_4.py", 1, str(second))
    ]


def test_a_clone_with_two_changed_files_embeds_only_those(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    (second / "pkg" / "module_1.py").write_text("def changed_one():\n    return 'clonemarker1'\n")
    (second / "pkg" / "new_file.py").write_text("def brand_new():\n    return 'clonemarker2'\n")
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder)
    assert {t.split("\n", 1)[0].split()[0] for t in embedder.texts} == {"pkg/module_1.py", "pkg/new_file.py"}
    assert (counters.files_indexed, counters.files_copied, counters.files_changed) == (11, 9, 11)
    assert [p for p, *_ in hits(clean_db, "clonemarker1", second, mode="lexical")] == ["pkg/module_1.py"]
    assert hits(clean_db, "clonemarker1", first, mode="lexical") == []
    assert [p for p, *_ in hits(clean_db, "marker1", first, mode="lexical")] == ["pkg/module_1.py"]


def test_a_branch_that_changes_files_copies_them_from_the_repository_that_has_them(
    clean_db: Engine, first: Path
) -> None:
    second = clone(first)
    run(clean_db, second, RecordingEmbedder())
    (first / "pkg" / "module_2.py").write_text("def on_a_branch():\n    return 'branchmarker'\n")
    run(clean_db, first, RecordingEmbedder())
    # Switching the second checkout to that branch: the file's new version is already indexed.
    shutil.copy(first / "pkg" / "module_2.py", second / "pkg" / "module_2.py")
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder)
    assert embedder.texts == []
    assert (counters.files_copied, counters.files_unchanged) == (1, 9)
    assert [p for p, *_ in hits(clean_db, "branchmarker", second, mode="lexical")] == ["pkg/module_2.py"]
    assert hits(clean_db, "marker2", second, mode="lexical") == []


def test_another_project_does_not_reuse_the_content(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder, project="other")
    assert counters.files_copied == 0
    assert len({t.split("\n", 1)[0].split()[0] for t in embedder.texts}) == 9  # the empty file has no chunk


def test_other_chunking_settings_do_not_reuse_the_content(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder, pack_lines=5)
    assert counters.files_copied == 0
    assert embedder.texts


def test_deleting_the_first_repository_keeps_the_second_ones_results(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    run(clean_db, second, RecordingEmbedder())
    before = {q: hits(clean_db, q, second) for q in ("marker3", "Widget5 render", "readmemarker")}
    assert IndexCatalogue(clean_db).delete_repository(project_id="default", root_path=str(first))
    with clean_db.connect() as conn:
        repositories = conn.execute(text("SELECT root_path FROM repositories")).scalars().all()
    assert repositories == [str(second)]
    for query, expected in before.items():
        assert expected and hits(clean_db, query, second) == expected
    definition = Navigator(clean_db).find_definition("Widget4", project_id="default", repository=str(second))
    assert [d["file_path"] for d in definition["definitions"]] == ["pkg/module_4.py"]
    # And the second one's next run has nothing to copy from, and nothing to do.
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder)
    assert (counters.files_unchanged, embedder.texts) == (10, [])


def test_deleting_the_second_repository_keeps_the_first_ones_results(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    run(clean_db, second, RecordingEmbedder())
    before = hits(clean_db, "marker6", first)
    assert IndexCatalogue(clean_db).delete_repository(project_id="default", root_path=str(second))
    assert before and hits(clean_db, "marker6", first) == before


def test_a_forced_reindex_of_a_clone_embeds_everything_again(clean_db: Engine, first: Path) -> None:
    second = clone(first)
    run(clean_db, second, RecordingEmbedder())
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder, force=True)
    assert counters.files_copied == 0
    assert len({t.split("\n", 1)[0].split()[0] for t in embedder.texts}) == 9
    same_hits(clean_db, "marker3", first, second)


def test_a_repository_published_before_chunking_was_recorded_is_not_copied_from(
    clean_db: Engine, first: Path
) -> None:
    with clean_db.begin() as conn:
        conn.execute(text("UPDATE repositories SET chunking = NULL"))
    embedder = RecordingEmbedder()
    counters = run(clean_db, clone(first), embedder)
    assert counters.files_copied == 0
    assert len({t.split("\n", 1)[0].split()[0] for t in embedder.texts}) == 9


def test_the_lookup_is_one_query_per_batch_of_files(clean_db: Engine, make_repo: Any) -> None:
    count = COPY_BATCH_FILES + 44
    first = make_repo({f"m/file_{i}.py": f"VALUE_{i} = {i}\n" for i in range(count)}, name="first")
    run(clean_db, first, RecordingEmbedder())
    lookups: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith(SHARED_LOOKUP.split(" WHERE ")[0]):
            lookups.append(statement)

    event.listen(clean_db, "before_cursor_execute", record)
    try:
        counters = run(clean_db, clone(first), RecordingEmbedder())
    finally:
        event.remove(clean_db, "before_cursor_execute", record)
    assert counters.files_copied == count
    assert len(lookups) == 2


def test_a_clone_run_killed_before_publishing_is_finished_by_its_retry_without_embedding(
    clean_db: Engine, first: Path
) -> None:
    second = clone(first)

    def cancel_at_publish(counters: RunCounters, message: str) -> bool:
        return not message.startswith("publishing")

    killed = index_run(clean_db, second, RecordingEmbedder(), progress=cancel_at_publish)
    with pytest.raises(RunCancelled):
        killed.run()
    assert killed.counters.files_copied == 10
    embedder = RecordingEmbedder()
    counters = run(clean_db, second, embedder)
    assert (embedder.texts, counters.files_indexed) == ([], 10)
    same_hits(clean_db, "marker3", first, second)
