"""Watch mode: real file-system events on a real tree keep the index fresh (runners/watch.py)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings
from mcp_server.frontends.operations import CodebaseService
from mcp_server.index.store import IndexStore
from mcp_server.runners.watch import RepositoryWatcher, indexed_repositories, watch_state

pytestmark = pytest.mark.timeout(180)
PROJECT = "watched"


def _until(condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Watching:
    def __init__(self, service: CodebaseService, watcher: RepositoryWatcher) -> None:
        self.service = service
        self.watcher = watcher
        self.stop = threading.Event()
        self.thread = threading.Thread(target=watcher.run, args=(self.stop,), daemon=True)

    def start(self) -> Watching:
        syncs = self.watcher.state.syncs
        self.thread.start()
        _until(lambda: self.watcher.state.syncs > syncs, "the initial sync")
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()

    def paths_with(self, word: str) -> set[str]:
        return _paths_with(self.service, word)

    def until_found(self, word: str, expected: set[str]) -> None:
        _until_found(self.service, word, expected)


def _paths_with(service: CodebaseService, word: str) -> set[str]:
    hits = service.search(word, project_id=PROJECT, mode="lexical", limit=50)["results"]
    return {h["file_path"] for h in hits if word in h["content"]}


def _until_found(service: CodebaseService, word: str, expected: set[str]) -> None:
    _until(lambda: _paths_with(service, word) == expected, f"{word!r} in exactly {sorted(expected)}")


@pytest.fixture
def watching(settings: Settings, clean_db: Engine, make_repo: Any) -> Iterator[Callable[[Path], Watching]]:
    started: list[Watching] = []

    def _watch(root: Path) -> Watching:
        service = CodebaseService(settings, engine=clean_db)
        watcher = RepositoryWatcher(
            settings=settings,
            engine=clean_db,
            embedder=service.embedder,
            root=root,
            project_id=PROJECT,
            check_seconds=3600,
        )
        started.append(Watching(service, watcher).start())
        return started[-1]

    yield _watch
    for watching_one in started:
        watching_one.close()


def test_edits_new_files_deletes_and_renames_become_searchable(make_repo: Any, watching: Any) -> None:
    root = make_repo({"app.py": "def alpha_handler():\n    return 1\n", "lib/util.py": "x = 'kept'\n"})
    w = watching(root)
    w.until_found("alpha_handler", {"app.py"})

    (root / "app.py").write_text("def bravo_handler():\n    return 2\n")
    w.until_found("bravo_handler", {"app.py"})
    assert w.paths_with("alpha_handler") == set()

    (root / "new.py").write_text("def charlie_handler():\n    pass\n")
    w.until_found("charlie_handler", {"new.py"})

    os.rename(root / "new.py", root / "renamed.py")
    w.until_found("charlie_handler", {"renamed.py"})

    (root / "renamed.py").unlink()
    w.until_found("charlie_handler", set())
    assert w.paths_with("kept") == {"lib/util.py"}, "files nobody touched stay indexed"


def test_a_directory_moved_in_and_out_is_followed(make_repo: Any, watching: Any, tmp_path: Path) -> None:
    root = make_repo({"a.py": "a = 1\n"})
    outside = tmp_path / "outside"
    (outside / "pkg").mkdir(parents=True)
    (outside / "pkg" / "mod.py").write_text("def delta_function():\n    pass\n")
    w = watching(root)
    shutil.move(str(outside / "pkg"), str(root / "pkg"))
    w.until_found("delta_function", {"pkg/mod.py"})
    shutil.move(str(root / "pkg"), str(outside / "pkg"))
    w.until_found("delta_function", set())


def test_a_symlink_inside_pointing_outside_is_never_followed(
    make_repo: Any, watching: Any, tmp_path: Path
) -> None:
    secret = tmp_path / "elsewhere"
    secret.mkdir()
    (secret / "private.py").write_text("echo_private_marker = 1\n")
    root = make_repo({"a.py": "a = 1\n"})
    w = watching(root)
    (root / "link").symlink_to(secret, target_is_directory=True)
    (secret / "private.py").write_text("echo_private_marker = 2\n")  # an event behind the link
    (root / "b.py").write_text("foxtrot_marker = 1\n")  # a later event inside: the sync ran
    w.until_found("foxtrot_marker", {"b.py"})
    assert w.paths_with("echo_private_marker") == set()


def test_a_restarted_watcher_catches_up_with_what_changed_meanwhile(make_repo: Any, watching: Any) -> None:
    root = make_repo({"a.py": "golf_marker = 1\n", "b.py": "hotel_marker = 1\n"})
    first = watching(root)
    first.until_found("golf_marker", {"a.py"})
    first.close()
    (root / "a.py").write_text("india_marker = 1\n")
    (root / "b.py").unlink()
    second = watching(root)  # nothing sends events for what happened while no one watched
    second.until_found("india_marker", {"a.py"})
    assert second.paths_with("hotel_marker") == set()


def test_a_burst_of_writes_is_one_sync_not_one_per_file(make_repo: Any, watching: Any) -> None:
    root = make_repo({"seed.py": "x = 1\n"})
    w = watching(root)
    before = w.watcher.state.syncs
    for i in range(40):  # like a branch switch: many files at once (40: one page of results)
        (root / f"f{i}.py").write_text(f"juliet_{i} = {i}\n")
    _until(lambda: len(w.paths_with("juliet")) == 40, "all 40 files indexed", timeout=60)
    state = watch_state(PROJECT, str(root))
    assert state is w.watcher.state
    _until(lambda: not state.changes_pending, "no changes pending")
    assert w.watcher.state.syncs - before <= 3, w.watcher.state.syncs - before


def test_a_sync_waits_for_a_run_of_the_same_repository(
    settings: Settings, clean_db: Engine, make_repo: Any, watching: Any
) -> None:
    root = make_repo({"a.py": "kilo_marker = 1\n"})
    w = watching(root)
    store = IndexStore(clean_db)
    with store.repository_lock(project_id=PROJECT, root_path=str(root)):
        (root / "a.py").write_text("lima_marker = 1\n")

        def waiting_for_the_lock() -> bool:
            with clean_db.connect() as conn:
                waiting = conn.execute(
                    text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                ).scalar_one()
            return bool(waiting)

        _until(waiting_for_the_lock, "the sync to wait for the run lock")
        assert w.paths_with("lima_marker") == set()
    w.until_found("lima_marker", {"a.py"})


def test_the_server_watches_every_indexed_local_repository(clean_db: Engine, make_repo: Any) -> None:
    with clean_db.begin() as conn:
        conn.execute(text("INSERT INTO projects VALUES ('p', 'm', 8, now())"))
        conn.execute(
            text(
                "INSERT INTO repositories (project_id, root_path, active_generation) VALUES "
                "('p', '/srv/a', 1), ('p', 'https://example.invalid/r.git', 1), ('p', '/srv/never', 0)"
            )
        )
    assert indexed_repositories(clean_db) == [("p", "/srv/a")]


def test_serve_watch_follows_every_repository_already_indexed(
    settings: Settings, clean_db: Engine, make_repo: Any
) -> None:
    from mcp_server.runners.watch import WatchAll

    root = make_repo({"a.py": "mike_marker = 1\n"})
    service = CodebaseService(settings, engine=clean_db)
    RepositoryWatcher(
        settings=settings,
        engine=clean_db,
        embedder=service.embedder,
        root=root,
        project_id=PROJECT,
        check_seconds=3600,
    ).sync(None)  # indexed before the server started
    everything = WatchAll(settings=settings, engine=clean_db, embedder=service.embedder, rescan_seconds=0.2)
    everything.start()
    try:
        _until(lambda: watch_state(PROJECT, str(root)), "a watcher for the indexed repository")
        (root / "a.py").write_text("november_marker = 1\n")
        _until_found(service, "november_marker", {"a.py"})
    finally:
        everything.stop.set()
