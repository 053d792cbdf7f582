"""Watch mode: keep an indexed repository fresh by following its file-system events.

Each burst of events (a save, a `git checkout` of thousands of files) is debounced into one sync:
an incremental run of the same pipeline as a re-index (`IndexRun`), told which paths changed so
that every other file the walk meets is carried over unread. The walk still runs whole, so
deletions, renames and directories moved in or out are seen, and the walker's rules (ignore
files, symlinks never followed out of the tree, secrets) apply exactly as in a job.

Events can be lost (inotify queue overflow, a watcher that was not running, network file
systems), so a watcher starts with a full incremental check and repeats one when `.git/HEAD` or
`.git/index` moves and every `check_seconds` in any case.

Syncs run in the watching process, not as jobs: a job would pay a process start and show up in
the job list for every save. A run lock per repository (`IndexStore.repository_lock`) keeps a
sync and a job's indexer from ever interleaving on one repository.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import watchfiles
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.settings import Settings
from mcp_server.embeddings.base import Embedder
from mcp_server.index.store import IndexStore
from mcp_server.indexer import secrets
from mcp_server.indexer.pipeline import IndexRun, RunCounters

log = logging.getLogger(__name__)

# Events closer together than this are one burst (a save writes a temporary file and renames it;
# a checkout writes thousands of files).
DEBOUNCE_MS = 100
# The part of .git that says the work tree may have changed under us wholesale.
_GIT_MARKERS = frozenset({".git/HEAD", ".git/index"})
_NOISE = watchfiles.DefaultFilter()


@dataclass(slots=True)
class WatchState:
    """What a watcher knows about its repository, shown with search results and statuses."""

    project_id: str
    root: str
    pending: set[str] = field(default_factory=set)
    full_check_pending: bool = False
    syncing: bool = False
    last_sync_at: datetime | None = None
    last_sync_seconds: float | None = None
    last_error: str | None = None
    syncs: int = 0

    @property
    def changes_pending(self) -> bool:
        return bool(self.pending) or self.full_check_pending or self.syncing


# Watchers of this process, by (project, repository root): what `changes_pending` is read from.
_WATCHED: dict[tuple[str, str], WatchState] = {}
_WATCHED_LOCK = threading.Lock()


def watch_state(project_id: str, root: str) -> WatchState | None:
    with _WATCHED_LOCK:
        return _WATCHED.get((project_id, root))


class RepositoryWatcher:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        embedder: Embedder,
        root: Path,
        project_id: str,
        check_seconds: float,
        on_sync: Callable[[WatchState, RunCounters], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = IndexStore(engine)
        self.embedder = embedder
        # The repository as the index names it (what a job for the same path uses), and the real
        # directory whose events are followed.
        self.repository_key = str(root)
        self.root = os.path.realpath(root)
        self.project_id = project_id
        self.check_seconds = check_seconds
        self.on_sync = on_sync
        self.state = WatchState(project_id=project_id, root=self.repository_key)
        self._git_stamp = self._git_markers()

    # --- one sync --------------------------------------------------------------------------------

    def sync(self, changed: frozenset[str] | None) -> RunCounters:
        """Bring the index up to date: `changed` paths only, or everything when None."""
        started = time.monotonic()
        self.state.syncing = True
        try:
            run = IndexRun(
                store=self.store,
                embedder=self.embedder,
                project_id=self.project_id,
                root=Path(self.repository_key),
                repository_key=self.repository_key,
                force=False,
                max_file_bytes=self.settings.indexing.max_file_bytes,
                extra_ignores=self.settings.indexing.extra_ignores,
                changed_paths=changed,
                # A handful of changed files parse faster here than a pool starts.
                workers=1 if changed is not None else self.settings.indexing.workers,
                pack_lines=self.settings.indexing.chunk_pack_lines,
                scan_secrets=secrets.filter_applies(
                    self.repository_key, self.settings.indexing.index_secrets_roots
                ),
            )
            counters = run.run()
        except Exception as exc:  # a watcher outlives one bad sync; the next event or check retries
            self.state.last_error = str(exc)
            log.warning("watch %s: sync failed: %s", self.root, exc)
            raise
        finally:
            self.state.syncing = False
        self.state.last_error = None
        self.state.last_sync_at = datetime.now(UTC)
        self.state.last_sync_seconds = time.monotonic() - started
        self.state.syncs += 1
        if self.on_sync is not None:
            self.on_sync(self.state, counters)
        return counters

    # --- following events ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Watch until `stop` is set; a failed sync is logged and retried by the next one."""
        with _WATCHED_LOCK:
            _WATCHED[(self.project_id, self.repository_key)] = self.state
        try:
            self._safely(None)  # whatever changed while nobody watched
            for changes in watchfiles.watch(
                self.root,
                watch_filter=self._wanted,
                debounce=DEBOUNCE_MS,
                step=20,
                stop_event=stop,
                rust_timeout=int(self.check_seconds * 1000),
                yield_on_timeout=True,
                ignore_permission_denied=True,
            ):
                if stop.is_set():
                    break
                self._on_changes(changes)
        finally:
            with _WATCHED_LOCK:
                _WATCHED.pop((self.project_id, self.repository_key), None)

    def _on_changes(self, changes: set[tuple[watchfiles.Change, str]]) -> None:
        relative = {self._relative(path) for _, path in changes}
        relative.discard(None)
        stamp = self._git_markers()
        if not changes or stamp != self._git_stamp or relative & _GIT_MARKERS:
            # A timeout (the periodic check) or a moved HEAD: check everything.
            self._git_stamp = stamp
            self.state.full_check_pending = True
            self._safely(None)
            return
        paths = frozenset(p for p in relative if p is not None and not p.startswith(".git/"))
        if paths:
            self.state.pending |= paths
            self._safely(paths)

    def _safely(self, changed: frozenset[str] | None) -> None:
        try:
            self.sync(changed)
        except Exception:
            return
        if changed is None:
            self.state.full_check_pending = False
            self.state.pending.clear()
        else:
            self.state.pending -= changed

    def _relative(self, path: str) -> str | None:
        relative = os.path.relpath(path, self.root)
        if relative == "." or relative.startswith(".." + os.sep) or relative == "..":
            return None  # outside the tree (a followed symlink): never indexed through it
        return relative.replace(os.sep, "/")

    def _wanted(self, change: watchfiles.Change, path: str) -> bool:
        relative = self._relative(path)
        if relative is None:
            return False
        if relative.startswith(".git/") or relative == ".git":
            return relative in _GIT_MARKERS
        return _NOISE(change, path)

    def _git_markers(self) -> tuple[tuple[int, int, int] | None, ...]:
        stamp: list[tuple[int, int, int] | None] = []
        for marker in sorted(_GIT_MARKERS):
            try:
                info = os.stat(os.path.join(self.root, marker))
            except OSError:
                stamp.append(None)
                continue
            stamp.append((info.st_mtime_ns, info.st_size, info.st_ino))
        return tuple(stamp)


def indexed_repositories(engine: Engine) -> list[tuple[str, str]]:
    """(project, root) of every published local repository (git URLs are not watched)."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT project_id, root_path FROM repositories WHERE active_generation > 0 ORDER BY id")
        ).all()
    return [(r.project_id, r.root_path) for r in rows if r.root_path.startswith("/")]


class WatchAll:
    """`serve --watch`: a watcher thread for every indexed local repository, new ones included."""

    def __init__(
        self, *, settings: Settings, engine: Engine, embedder: Embedder, rescan_seconds: float
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.embedder = embedder
        self.rescan_seconds = rescan_seconds
        self.stop = threading.Event()
        self._threads: dict[tuple[str, str], threading.Thread] = {}

    def start(self) -> None:
        threading.Thread(target=self._loop, name="watch-all", daemon=True).start()

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                for project_id, root in indexed_repositories(self.engine):
                    thread = self._threads.get((project_id, root))
                    if (thread is None or not thread.is_alive()) and os.path.isdir(root):
                        self._threads[(project_id, root)] = self._start_one(project_id, root)
            except Exception as exc:  # the database may be away for a moment
                log.warning("watch: cannot list repositories: %s", exc)
            self.stop.wait(self.rescan_seconds)

    def _start_one(self, project_id: str, root: str) -> threading.Thread:
        watcher = RepositoryWatcher(
            settings=self.settings,
            engine=self.engine,
            embedder=self.embedder,
            root=Path(root),
            project_id=project_id,
            check_seconds=self.settings.jobs.watch_check_seconds,
        )
        thread = threading.Thread(target=watcher.run, args=(self.stop,), name=f"watch {root}", daemon=True)
        thread.start()
        log.info("watching %s (project %s)", root, project_id)
        return thread
