"""The cache of git sources under `$CODEBASE_MCP_HOME/git`: one bare, shallow repository per URL,
and one `git worktree` checkout per run.

    git/<sha256(url)[:24]>/
        repo.git/             bare; `origin` is the URL; refs/codebase/* keep what runs asked for
        lock                  flock: one process writes the repository at a time
        used                  its mtime: when a run last fetched from this entry
        checkouts/<name>/     a run's work tree (a `.git` *file* points back at repo.git)
        checkouts/<name>.lock flock held by that run while it reads the tree

Why this shape:
- **A later run fetches, it does not clone.** The refs under refs/codebase/ keep the commits of
  earlier runs, so git tells the server what it has and receives only the new objects; a run of a
  commit SHA that is already here contacts no server at all.
- **Shallow.** Every fetch is `--depth 1`: the index wants one tree, not the history. A short SHA
  (which servers do not accept in a fetch) and a server that refuses a fetch by id are the
  exceptions: then every branch and tag is fetched with their history, once.
- **A worktree, not a copy.** Files are written once, from the local object store; a run's tree is
  removed when it ends, and a tree left by a killed run is removed by the next run on that URL
  (its lock is free). Runs of two refs of one URL share the objects and run side by side: only
  the fetch and the worktree bookkeeping hold the URL's lock, not the indexing.
- **Bounded.** After a run, whole entries go, least recently used first, until the cache is
  within CODEBASE_GIT_CACHE_MAX_MB (`evict`). An entry is removed only with its lock and every
  checkout's lock taken, by renaming it away first; a process that was waiting on the lock of an
  entry that went finds its lock file gone and takes the new entry's (`_flock`).

The git commands go through a `GitRunner` (git_source's, which owns the environment, credentials,
retries and the classification of errors), so this module is only about the layout.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

KEPT = "refs/codebase"
FULL_SHA_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
SHORT_SHA_RE = re.compile(r"^[0-9a-f]{4,39}$")


class GitFailed(Exception):
    """A git command failed for a reason that is not the network's; `reason` is git's own line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GitRunner(Protocol):
    def local(self, *args: str) -> str:
        """Run git on this machine only; its stdout, or GitFailed."""

    def remote(self, *args: str) -> str:
        """Run git against the remote: retried while the network fails (then SourceUnavailable),
        GitFailed for anything else."""


@dataclass(frozen=True)
class Fetched:
    path: Path  # the checkout
    commit: str  # the commit it holds


def cache_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:24]


@contextmanager
def _flock(path: Path, *, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on `path` (created 0600, its directory too); yields False when not
    blocking and taken. A lock taken on a file that was meanwhile renamed away or removed (an
    evicted entry) is let go and taken again on the file now at `path`."""
    while True:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(fd).st_ino:
                continue  # closes (the finally below) and tries again
            yield True
            return
        finally:
            os.close(fd)  # releases the lock


def _tree_bytes(root: Path) -> int:
    total = 0
    for directory, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
    return total


def _last_used(entry: Path) -> float:
    for marker in (entry / "used", entry):
        with contextlib.suppress(OSError):
            return marker.stat().st_mtime
    return 0.0


class GitCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, url: str) -> Path:
        return self.root / cache_key(url)

    def repository(self, url: str) -> Path:
        return self.entry(url) / "repo.git"

    @contextmanager
    def hold(self, url: str, name: str, git: GitRunner) -> Iterator[Path]:
        """The path of a run's work tree, `checkouts/<name>`: locked as in use while the block
        runs (so no other run prunes it) and removed when it ends."""
        checkouts = self.entry(url) / "checkouts"
        target = checkouts / name
        with contextlib.ExitStack() as held:
            # Taken under the URL's lock, so an eviction sees every checkout that is in use.
            with _flock(self.entry(url) / "lock"):
                held.enter_context(_flock(checkouts / f"{name}.lock"))
            try:
                yield target
            finally:
                self._remove(url, target, git)

    def fetch_into(self, url: str, ref: str | None, target: Path, git: GitRunner) -> Fetched:
        """Fetch `url` at `ref` into the cache and check it out at `target` (which must not exist).
        The Kubernetes clone step calls this directly: its pod, not this process, ends the tree."""
        entry = self.entry(url)
        repo = self.repository(url)
        with _flock(entry / "lock"):
            (entry / "used").touch()
            if not (repo / "HEAD").is_file():
                shutil.rmtree(repo, ignore_errors=True)  # a half-made one from a killed run
                git.local("init", "--quiet", "--bare", str(repo))
                git.local("-C", str(repo), "remote", "add", "origin", "--", url)
            self._prune(url, git)
            commit = self._fetch(str(repo), ref, git)
            git.local(
                "-C", str(repo), "worktree", "add", "--quiet", "--detach", "--force", str(target), commit
            )
        return Fetched(path=target, commit=commit)

    def evict(self, max_bytes: int, *, keep: str | None = None) -> list[Path]:
        """Remove whole entries, least recently used first, until the cache holds at most
        `max_bytes`; never `keep`'s (the URL a run just used) nor one in use (its lock or a
        checkout's lock held). Returns the entries removed."""
        if not self.root.is_dir():
            return []
        for left in self.root.glob(".evicted-*"):  # by an eviction that was killed mid-way
            shutil.rmtree(left, ignore_errors=True)
        entries = [
            (_last_used(entry), _tree_bytes(entry), entry)
            for entry in self.root.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        ]
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, entry in sorted(entries):
            if total <= max_bytes:
                break
            if keep is not None and entry == self.entry(keep):
                continue
            if self._remove_entry(entry):
                total -= size
                removed.append(entry)
        return removed

    def _remove_entry(self, entry: Path) -> bool:
        trash = self.root / f".evicted-{entry.name}-{os.getpid()}"
        with _flock(entry / "lock", blocking=False) as free, contextlib.ExitStack() as checkouts:
            if not free:
                return False
            for lock in sorted((entry / "checkouts").glob("*.lock")):
                if not checkouts.enter_context(_flock(lock, blocking=False)):
                    return False
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(entry, trash)  # whoever waits on its lock now finds the file gone
        shutil.rmtree(trash, ignore_errors=True)
        return True

    # --- fetching -------------------------------------------------------------------------------

    def _fetch(self, repo: str, ref: str | None, git: GitRunner) -> str:
        if ref is None:
            self._fetch_shallow(repo, f"+HEAD:{KEPT}/head", git)
            return self._commit(repo, f"{KEPT}/head", git)
        if FULL_SHA_RE.fullmatch(ref):
            if self._find(repo, ref, git) is None:
                try:
                    self._fetch_shallow(repo, ref, git)  # by id: protocol v2 servers allow reachable commits
                except GitFailed:
                    self._fetch_everything(repo, git)  # a server that refuses fetching by id
                if self._find(repo, ref, git) is None:
                    raise GitFailed(f"the remote has no commit {ref}")
            git.local("-C", repo, "update-ref", f"{KEPT}/commits/{ref}", ref)
            return ref
        try:
            self._fetch_shallow(repo, f"+{ref}:{KEPT}/named/{ref}", git)
            return self._commit(repo, f"{KEPT}/named/{ref}", git)
        except GitFailed as not_a_name:
            if not SHORT_SHA_RE.fullmatch(ref):
                raise
            # A short SHA: servers take only full ids, so find it among what is here, then in
            # every branch and tag with their history.
            commit = self._find(repo, ref, git)
            if commit is None:
                self._fetch_everything(repo, git)
                commit = self._find(repo, ref, git)
            if commit is None:
                raise GitFailed(f"no branch, tag or commit {ref!r} ({not_a_name.reason})") from None
            git.local("-C", repo, "update-ref", f"{KEPT}/commits/{commit}", commit)
            return commit

    def _fetch_shallow(self, repo: str, refspec: str, git: GitRunner) -> None:
        """One commit deep where the server can (git's dumb HTTP protocol cannot: then whole)."""
        command = ("-C", repo, "fetch", "--quiet", "--no-tags", "origin")
        try:
            git.remote(*command[:4], "--depth", "1", *command[4:], refspec)
        except GitFailed as exc:
            if "shallow" not in exc.reason.lower():
                raise
            git.remote(*command, refspec)

    def _fetch_everything(self, repo: str, git: GitRunner) -> None:
        deepen = git.local("-C", repo, "rev-parse", "--is-shallow-repository").strip() == "true"
        git.remote(
            "-C",
            repo,
            "fetch",
            "--quiet",
            *(["--unshallow"] if deepen else []),
            "--tags",
            "origin",
            f"+refs/heads/*:{KEPT}/all/heads/*",
        )

    def _commit(self, repo: str, name: str, git: GitRunner) -> str:
        # `name` never starts with '-' (core.validation refuses such refs).
        return git.local("-C", repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}").strip()

    def _find(self, repo: str, name: str, git: GitRunner) -> str | None:
        """The commit `name` (a SHA, full or short) if this repository has it."""
        try:
            return self._commit(repo, name, git)
        except GitFailed:
            return None

    # --- work trees -----------------------------------------------------------------------------

    def _prune(self, url: str, git: GitRunner) -> None:
        """Remove the work trees of runs that ended without removing theirs (killed): their lock
        is free. Called with the URL's lock held."""
        checkouts = self.entry(url) / "checkouts"
        if checkouts.is_dir():
            for tree in checkouts.iterdir():
                if tree.suffix == ".lock" or not tree.is_dir():
                    continue
                with _flock(checkouts / f"{tree.name}.lock", blocking=False) as free:
                    if free:
                        shutil.rmtree(tree, ignore_errors=True)
                        (checkouts / f"{tree.name}.lock").unlink(missing_ok=True)
        git.local("-C", str(self.repository(url)), "worktree", "prune")

    def _remove(self, url: str, target: Path, git: GitRunner) -> None:
        with _flock(self.entry(url) / "lock"):
            shutil.rmtree(target, ignore_errors=True)
            (target.parent / f"{target.name}.lock").unlink(missing_ok=True)
            if (self.repository(url) / "HEAD").is_file():
                with contextlib.suppress(GitFailed):  # the next run prunes
                    git.local("-C", str(self.repository(url)), "worktree", "prune")
