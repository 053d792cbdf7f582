"""Git sources end to end on this machine: the MCP operations and the CLI start a job from a URL,
the local launcher's supervisor runs the indexer, which fetches through the cache, and the result
is searchable under the repository's key (URL#ref). Remotes are file:// repositories and loopback
servers made in the test."""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from git_remotes import TOKEN, Remote, make_remote, token_server
from sqlalchemy import text

from mcp_server.core.errors import InvalidInput
from mcp_server.core.jobs import JobStore
from mcp_server.core.settings import Settings, load_settings
from mcp_server.db.database import get_engine
from mcp_server.frontends import cli
from mcp_server.frontends.operations import CodebaseService
from mcp_server.indexer.entrypoint import run_job, work_tree_name
from mcp_server.indexer.git_cache import GitCache

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

TERMINAL = {"completed", "failed", "cancelled"}


@pytest.fixture
def remote(tmp_path: Path, settings: Settings) -> Remote:
    return make_remote(tmp_path / "remote")


def _wait(svc: CodebaseService, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = svc.get_status(job_id)
        if status["status"] in TERMINAL:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {svc.get_status(job_id)}")


def _found(svc: CodebaseService, query: str, repository: str) -> set[str]:
    results = svc.search(query, mode="lexical", limit=20, repository=repository)["results"]
    return {r["file_path"] for r in results if r["repository"] == repository}


def test_a_tag_of_a_file_url_is_indexed_searchable_under_url_hash_ref_and_a_later_run_fetches(
    remote: Remote, home: Path
) -> None:
    svc = CodebaseService(load_settings())
    started = svc.start_indexing(git_url=remote.url, ref="main")
    done = _wait(svc, started["job_id"])
    key = f"{remote.url}#main"
    assert done["status"] == "completed", done
    assert done["repo_path"] == key and f"at commit {remote.rev('main')[:12]}" in done["progress_message"]
    assert _found(svc, "second", key) == {"b.py"}
    assert [r["repository"] for r in svc.list_repositories()["repositories"]] == [key]
    cache = GitCache(home / "git")
    assert list((cache.entry(remote.url) / "checkouts").iterdir()) == []  # the run's tree is gone

    remote.commit({"third.py": "def third_function():\n    return 3\n"}, "third")
    again = _wait(svc, svc.start_indexing(git_url=remote.url, ref="main")["job_id"])
    assert again["status"] == "completed", again
    assert _found(svc, "third_function", key) == {"third.py"}
    assert "1 new or changed" in again["progress_message"]  # incremental: one new file


def test_a_git_job_trims_the_cache_to_its_bound_keeping_what_it_just_used(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: $CODEBASE_MCP_HOME/git kept every repository ever indexed, without bound."""
    first, second = make_remote(tmp_path / "first"), make_remote(tmp_path / "second")
    for remote in (first, second):  # about 0.7 MB each once packed: one fits in 1 MB, two do not
        remote.commit({"blob.txt": base64.b64encode(os.urandom(700_000)).decode()}, "a large file")
    monkeypatch.setenv("CODEBASE_GIT_CACHE_MAX_MB", "1")
    svc = CodebaseService(load_settings())
    cache = GitCache(home / "git")
    assert _wait(svc, svc.start_indexing(git_url=first.url)["job_id"])["status"] == "completed"
    assert cache.entry(first.url).is_dir()
    assert _wait(svc, svc.start_indexing(git_url=second.url)["job_id"])["status"] == "completed"
    assert cache.entry(second.url).is_dir() and not cache.entry(first.url).exists()


def test_a_sharded_git_job_fetches_one_commit_and_its_shards_complete_it(remote: Remote, home: Path) -> None:
    """Each shard process fetches for itself, each into its own work tree (one shared name made
    them wait on its lock and run one after another); all record the same commit."""
    svc = CodebaseService(load_settings())
    started = svc.start_indexing(git_url=remote.url, ref="main", shards=2)
    done = _wait(svc, started["job_id"])
    assert done["status"] == "completed", done
    assert "by 2 shards" in done["progress_message"], done
    key = f"{remote.url}#main"
    assert _found(svc, "second", key) == {"b.py"}
    with svc.engine.connect() as conn:
        commits = conn.execute(
            text("SELECT DISTINCT source_commit FROM job_shards WHERE job_id = :j"), {"j": started["job_id"]}
        ).scalars()
        assert list(commits) == [remote.rev("main")]
    # Both work trees are gone with the run.
    checkouts = GitCache(load_settings().database.git_dir).entry(remote.url) / "checkouts"
    assert [p.name for p in checkouts.iterdir() if p.is_dir()] == []


def test_a_shard_of_a_local_git_job_does_not_wait_for_the_other_shards_work_tree(
    remote: Remote, home: Path
) -> None:
    """Shard 0 holds its work tree (the lock GitCache.hold takes for the whole run); shard 1 must
    fetch and index meanwhile. With one work tree per job, shard 1 waited on shard 0's lock and
    the shards of a local run ran one after another."""
    settings = load_settings()
    jobs = JobStore(get_engine(settings))
    job = jobs.create(
        repo_path=f"{remote.url}#main",
        project_id="default",
        source_git_url=remote.url,
        source_git_ref="main",
        shards=2,
    )
    checkouts = GitCache(settings.database.git_dir).entry(remote.url) / "checkouts"
    checkouts.mkdir(parents=True, exist_ok=True)
    result: list[int] = []
    with (checkouts / f"{work_tree_name(job.id, 0)}.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # shard 0, busy indexing
        shard_1 = threading.Thread(
            target=lambda: result.append(run_job(settings, job.id, termination_log=None, shard_index=1)),
            daemon=True,
        )
        shard_1.start()
        shard_1.join(timeout=90)
        assert not shard_1.is_alive(), "shard 1 waited for shard 0's work tree"
    assert result == [0]
    assert [(p.shard, p.status) for p in jobs.shard_progress(job.id)] == [(1, "done")]


@pytest.fixture
def root_log_handlers() -> Iterator[None]:
    """cli.main points logging at the captured stderr; put back what was there after the test."""
    root = logging.getLogger()
    saved = list(root.handlers)
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)


@pytest.mark.usefixtures("root_log_handlers")
def test_the_cli_indexes_url_at_ref_and_waits(remote: Remote, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["index", f"{remote.url}@feature/x", "--wait", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    final = json.loads(next(line for line in lines if line.startswith("{")))
    assert final["status"] == "completed" and final["repo_path"] == f"{remote.url}#feature/x"
    svc = CodebaseService(load_settings())
    assert _found(svc, "feature", final["repo_path"]) == {"c.py"}


def test_a_token_from_the_settings_is_used_and_never_stored_or_logged(
    remote: Remote, home: Path, monkeypatch: pytest.MonkeyPatch, engine: Any
) -> None:
    monkeypatch.setenv("CODEBASE_GIT_TOKEN", TOKEN)  # the supervisor and the indexer inherit it
    monkeypatch.setenv("CODEBASE_GIT_TOKEN_HOSTS", "127.0.0.1")
    svc = CodebaseService(load_settings())
    with token_server(remote.bare) as url:
        done = _wait(svc, svc.start_indexing(git_url=url)["job_id"])
    assert done["status"] == "completed", done
    assert _found(svc, "second", url) == {"b.py"}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM indexing_jobs")).mappings().all()
    assert rows and TOKEN not in repr([dict(r) for r in rows])
    logs = b"".join(p.read_bytes() for p in (home / "runs").iterdir() if p.is_file())
    assert logs and TOKEN.encode() not in logs
    cached = b"".join(p.read_bytes() for p in (home / "git").rglob("*") if p.is_file())
    assert TOKEN.encode() not in cached


def test_a_missing_ref_is_refused_input_and_a_dead_remote_a_retryable_network_error(remote: Remote) -> None:
    svc = CodebaseService(load_settings())
    missing = svc.start_indexing(git_url=remote.url, ref="no-such-branch")["job_id"]
    down = svc.start_indexing(git_url="http://127.0.0.1:1/repo.git")["job_id"]  # retried: about 7 s
    refused, unreachable = _wait(svc, missing), _wait(svc, down)
    assert refused["status"] == "failed"
    assert refused["error_message"].startswith("the indexer refused its input (exit code 2): git could not")
    assert "no-such-branch" in refused["error_message"]
    assert unreachable["status"] == "failed"
    assert unreachable["error_message"].startswith("the indexer failed (exit code 1): network error")
    assert "retry the job" in unreachable["error_message"]


def test_the_front_door_refuses_what_cannot_be_indexed(
    remote: Remote, settings: Settings, tmp_path: Path
) -> None:
    svc = CodebaseService(settings)
    cases: list[tuple[dict[str, Any], str]] = [
        ({}, "exactly one of repo_path"),
        ({"repo_path": str(remote.work), "git_url": remote.url}, "exactly one of repo_path"),
        ({"repo_path": str(remote.work), "ref": "main"}, "ref goes with git_url"),
        ({"git_url": f"https://user:{TOKEN}@github.com/a/b.git"}, "carries credentials"),
        ({"git_url": "ftp://example.com/r.git"}, "git_url must be"),
        ({"git_url": remote.url, "ref": "--upload-pack=x"}, "ref '--upload-pack=x' is not a valid"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidInput, match=message) as refused:
            svc.start_indexing(**kwargs)
        assert TOKEN not in str(refused.value)
    with pytest.raises(InvalidInput, match="dry_run works on a directory"):
        svc.plan_indexing(None, git_url=remote.url)
    confined = CodebaseService(settings.replace(jobs={"allowed_roots": [tmp_path / "elsewhere"]}))
    with pytest.raises(InvalidInput, match="outside the allowed roots"):
        confined.start_indexing(git_url=remote.url)
    assert svc.list_jobs()["count"] == 0


def test_git_secret_is_for_the_kubernetes_launcher_and_a_git_url_only(remote: Remote, home: Path) -> None:
    """A Secret is a Kubernetes object: on one machine the tool says what to use instead, and it
    never starts a job that would clone without the credentials the caller meant."""
    svc = CodebaseService(load_settings())
    with pytest.raises(InvalidInput, match=r"only the kubernetes launcher.*CODEBASE_GIT_TOKEN"):
        svc.start_indexing(git_url=remote.url, git_secret="acme-git")
    with pytest.raises(InvalidInput, match="git_secret goes with git_url"):
        svc.start_indexing(str(remote.work), git_secret="acme-git")
    assert [j for j in svc.jobs.list(limit=1000) if j.source_git_url == remote.url] == []


def test_a_directory_on_the_kubernetes_launcher_needs_the_workspace_volume(
    settings: Any, clean_db: Any, tmp_path: Path
) -> None:
    """Before: the request was created, and its pod had nothing at the path. Nothing is created now;
    the operator refuses an applied request the same way (tests/test_operator_spec.py)."""
    svc = CodebaseService(settings.replace(jobs={"launcher": "kubernetes"}), engine=clean_db)
    with pytest.raises(InvalidInput, match=r"repo_path needs the workspace volume.*workspace\.existingClaim"):
        svc.start_indexing(str(tmp_path))
    assert svc.jobs.list(limit=10) == []


def test_the_kubernetes_request_names_the_secret_and_the_row_keeps_only_its_name(engine: Any) -> None:
    from mcp_server.runners.kubernetes import request_body

    jobs = JobStore(engine)
    job = jobs.create(
        repo_path="https://git.example.com/acme/private.git#v1.2",
        project_id="default",
        source_git_url="https://git.example.com/acme/private.git",
        source_git_ref="v1.2",
        source_git_secret="acme-git",
    )
    stored = jobs.get(job.id)
    assert stored.source_git_secret == "acme-git"
    assert request_body(stored, default_timeout=3600)["spec"]["source"] == {
        "git": {
            "url": "https://git.example.com/acme/private.git",
            "ref": "v1.2",
            "secretRef": {"name": "acme-git"},
        }
    }


@pytest.mark.parametrize("name", ["Acme", "-acme", "acme_git", "a" * 254, "", "../x"])
def test_a_git_secret_that_cannot_name_a_secret_is_refused(name: str) -> None:
    from mcp_server.core.validation import validate_git_secret

    with pytest.raises(InvalidInput, match="git_secret must name a Kubernetes Secret"):
        validate_git_secret(name)
