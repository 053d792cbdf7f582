"""The git cache for real, against file:// remotes made in the test: every kind of ref, a later
run that fetches instead of cloning, work trees that go away, and remotes that fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from git_remotes import Remote, git, hanging_up_server, make_remote

from mcp_server.core.errors import InvalidInput, SourceUnavailable
from mcp_server.indexer import git_source
from mcp_server.indexer.git_cache import GitCache, _flock

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "remote")


@pytest.fixture
def cache(tmp_path: Path) -> GitCache:
    return GitCache(tmp_path / "home" / "git")


def _fetch_only(url: str, ref: str | None, cache: GitCache, **kwargs: object) -> None:
    with git_source.fetch(url, ref, cache=cache, name="job", **kwargs):  # type: ignore[arg-type]
        pass


def _files(tree: Path) -> set[str]:
    return {str(p.relative_to(tree)) for p in tree.rglob("*.py")}


def _objects(cache: GitCache, url: str) -> int:
    counts = dict(
        line.split(": ") for line in git("count-objects", "-v", cwd=cache.repository(url)).splitlines()
    )
    return int(counts["count"]) + int(counts["in-pack"])


@pytest.mark.parametrize(
    ("ref", "commit_of", "files"),
    [
        (None, "main", {"a.py", "b.py"}),
        ("main", "main", {"a.py", "b.py"}),
        ("feature/x", "feature/x", {"a.py", "b.py", "c.py"}),
        ("v1", "v1", {"a.py"}),  # an annotated tag
        ("light", "light", {"a.py", "b.py"}),  # a lightweight tag
        ("full-sha-of-v1", "v1", {"a.py"}),
        ("short-sha-of-v1", "v1", {"a.py"}),  # servers refuse short ids: found in the full history
    ],
)
def test_every_kind_of_ref_is_checked_out_at_its_commit(
    remote: Remote, cache: GitCache, ref: str | None, commit_of: str, files: set[str]
) -> None:
    expected = remote.rev(commit_of)
    asked = {"full-sha-of-v1": expected, "short-sha-of-v1": expected[:8]}.get(str(ref), ref)
    with git_source.fetch(remote.url, asked, cache=cache, name="job") as fetched:
        assert fetched.commit == expected
        assert git("rev-parse", "HEAD", cwd=fetched.path) == expected
        assert _files(fetched.path) == files
        assert (fetched.path / ".git").is_file()  # a worktree: the objects stay in the cache
    assert not fetched.path.exists()


def test_a_named_ref_is_fetched_shallow(remote: Remote, cache: GitCache) -> None:
    with git_source.fetch(remote.url, "main", cache=cache, name="job"):
        pass
    repo = cache.repository(remote.url)
    assert git("rev-parse", "--is-shallow-repository", cwd=repo) == "true"
    assert git("rev-list", "--count", "refs/codebase/named/main", cwd=repo) == "1"


def test_a_later_run_fetches_only_the_new_commit_into_the_same_cache(remote: Remote, cache: GitCache) -> None:
    with git_source.fetch(remote.url, "main", cache=cache, name="first") as first:
        assert first.commit == remote.rev("main")
    marker = cache.repository(remote.url) / "codebase-test-marker"
    marker.write_text("the same repository, not a fresh clone")
    before = _objects(cache, remote.url)

    new = remote.commit({"pkg/new.py": "def third():\n    return 3\n"}, "third")
    with git_source.fetch(remote.url, "main", cache=cache, name="second") as second:
        assert second.commit == new and "pkg/new.py" in _files(second.path)
    assert marker.is_file()
    # The commit, the root tree, pkg/ and new.py: a.py and b.py were not sent again.
    assert _objects(cache, remote.url) - before == 4

    with git_source.fetch(remote.url, "main", cache=cache, name="third") as third:
        assert third.commit == new  # nothing new: the same commit, nothing transferred
    assert _objects(cache, remote.url) - before == 4


def test_a_commit_already_in_the_cache_needs_no_remote(
    remote: Remote, cache: GitCache, tmp_path: Path
) -> None:
    sha = remote.rev("v1")
    with git_source.fetch(remote.url, sha, cache=cache, name="first"):
        pass
    shutil.move(remote.bare, tmp_path / "gone.git")  # the remote is unreachable from now on
    with git_source.fetch(remote.url, sha, cache=cache, name="second", sleep=pytest.fail) as fetched:
        assert fetched.commit == sha and _files(fetched.path) == {"a.py"}


def test_a_work_tree_left_by_a_killed_run_is_pruned_and_a_live_one_is_not(
    remote: Remote, cache: GitCache
) -> None:
    checkouts = cache.entry(remote.url) / "checkouts"
    # A run killed mid-way: its tree is there, nobody holds its lock.
    with git_source.fetch(remote.url, "main", cache=cache, into=checkouts / "killed"):
        pass
    assert (checkouts / "killed").is_dir()
    with git_source.fetch(remote.url, "main", cache=cache, name="live") as live:
        with git_source.fetch(remote.url, "v1", cache=cache, name="other") as other:
            assert live.path.is_dir() and _files(live.path) == {"a.py", "b.py"}  # still there
            assert _files(other.path) == {"a.py"}
        assert not (checkouts / "killed").exists()
    trees = git("worktree", "list", "--porcelain", cwd=cache.repository(remote.url))
    assert "checkouts" not in trees  # git's own bookkeeping of the removed trees is gone too
    assert sorted(p.name for p in checkouts.iterdir()) == []


def test_a_missing_ref_is_refused_input_and_not_retried(remote: Remote, cache: GitCache) -> None:
    for ref in ("no-such-branch", "abcdef12"):  # a name, and what looks like a short SHA
        with pytest.raises(InvalidInput, match=f"git could not fetch .* at {ref}: .*{ref}"):
            _fetch_only(remote.url, ref, cache, sleep=pytest.fail)
    with pytest.raises(InvalidInput, match="the remote has no commit"):
        _fetch_only(remote.url, "0" * 40, cache, sleep=pytest.fail)


def test_a_remote_that_hangs_up_is_a_network_error_retried_with_backoff(cache: GitCache) -> None:
    waits: list[float] = []
    with hanging_up_server() as url, pytest.raises(SourceUnavailable) as caught:
        _fetch_only(url, None, cache, sleep=waits.append)
    message = str(caught.value)
    assert message.startswith(f"network error while fetching {url} (after 4 attempts)"), message
    assert "retry" in message
    assert waits == [1.0, 2.0, 4.0]


def test_a_remote_that_refuses_connections_is_a_network_error(cache: GitCache) -> None:
    with pytest.raises(SourceUnavailable, match="network error"):
        _fetch_only("http://127.0.0.1:1/r.git", None, cache, sleep=lambda _: None)


def test_git_is_never_asked_for_another_transport(
    remote: Remote, cache: GitCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str]] = []
    real_run = subprocess.run

    def recording_run(*args: object, **kwargs: object) -> object:
        if "env" in kwargs:  # git_source's calls (the test's own `git` helper passes none)
            seen.append(dict(kwargs["env"]))  # type: ignore[arg-type]
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(git_source.subprocess, "run", recording_run)
    with git_source.fetch(remote.url, None, cache=cache, name="job"):
        pass
    assert seen and all(
        env["GIT_ALLOW_PROTOCOL"] == "file" and env["GIT_TERMINAL_PROMPT"] == "0" for env in seen
    )


def _remotes(tmp_path: Path, count: int) -> list[Remote]:
    return [make_remote(tmp_path / f"remote-{i}") for i in range(count)]


def _age(cache: GitCache, url: str, seconds_ago: float) -> None:
    stamp = time.time() - seconds_ago
    os.utime(cache.entry(url) / "used", (stamp, stamp))


def test_eviction_removes_the_least_recently_used_repositories_until_the_cache_fits(
    tmp_path: Path, cache: GitCache
) -> None:
    remotes = _remotes(tmp_path, 3)
    for age, remote in zip((300, 100, 200), remotes, strict=True):
        _fetch_only(remote.url, "main", cache)
        _age(cache, remote.url, age)
    sizes = {
        r.url: sum(f.stat().st_blocks * 512 for f in cache.entry(r.url).rglob("*") if f.is_file())
        for r in remotes
    }
    # Room for two: the oldest (used 300 s ago) goes, the other two stay.
    removed = cache.evict(sizes[remotes[1].url] + sizes[remotes[2].url] + 4096)
    assert removed == [cache.entry(remotes[0].url)]
    assert [cache.entry(r.url).is_dir() for r in remotes] == [False, True, True]
    assert not list(cache.root.glob(".evicted-*"))
    # Room for none: everything goes but the repository a run just used.
    assert cache.evict(0, keep=remotes[1].url) == [cache.entry(remotes[2].url)]
    assert [p.name for p in cache.root.iterdir()] == [cache.entry(remotes[1].url).name]
    # An evicted repository is simply fetched again.
    with git_source.fetch(remotes[0].url, "main", cache=cache, name="again") as fetched:
        assert _files(fetched.path) == {"a.py", "b.py"}


def test_eviction_never_removes_a_repository_in_use(tmp_path: Path, cache: GitCache) -> None:
    busy, idle = _remotes(tmp_path, 2)
    _fetch_only(idle.url, "main", cache)
    with git_source.fetch(busy.url, "main", cache=cache, name="reading") as fetched:
        _age(cache, busy.url, 1_000)  # the oldest, but a run still reads its work tree
        assert cache.evict(0) == [cache.entry(idle.url)]
        assert _files(fetched.path) == {"a.py", "b.py"}
    assert cache.evict(0) == [cache.entry(busy.url)]  # once the run is done


def _blocked_on(path: Path) -> bool:
    """Whether some process waits for a flock on `path` (Linux lists waiters with '->')."""
    inode = os.stat(path).st_ino
    return any(
        "->" in line and line.split()[-3].endswith(f":{inode}")
        for line in Path("/proc/locks").read_text().splitlines()
    )


def test_a_run_waiting_on_an_entry_that_is_evicted_takes_the_new_entrys_lock(
    remote: Remote, cache: GitCache
) -> None:
    """The eviction renames the entry away while holding its lock; a waiter that then gets that
    lock must not write a repository at the old path under a lock nobody else can see."""
    _fetch_only(remote.url, "main", cache)
    lock = cache.entry(remote.url) / "lock"
    got: list[tuple[int, int]] = []

    def waiter() -> None:
        with _flock(lock) as held:
            assert held
            got.append((os.stat(lock).st_ino, os.stat(lock.parent).st_ino))

    with _flock(lock):
        thread = threading.Thread(target=waiter)
        thread.start()
        deadline = time.monotonic() + 10
        while not _blocked_on(lock) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _blocked_on(lock), "the waiter never blocked on the lock"
        os.rename(cache.entry(remote.url), cache.root / ".evicted-by-hand")
    thread.join(10)
    assert got and got[0][1] == os.stat(cache.entry(remote.url)).st_ino  # the new entry's lock
    _fetch_only(remote.url, "v1", cache)  # and the cache works there again
