"""Fetching source.git repositories for real: file:// remotes, a local HTTP remote that wants a
token, commit SHAs, and a remote that is down (loopback only; nothing leaves the machine)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import git_remotes
import pytest

from mcp_server.core.errors import InvalidInput, SourceUnavailable
from mcp_server.core.validation import redact_userinfo, validate_git_source
from mcp_server.indexer import git_source
from mcp_server.indexer.git_cache import GitCache

TOKEN = git_remotes.TOKEN


def clone(url: str, ref: str | None, into: Path, **kwargs: object) -> Path:
    """Fetch as the Kubernetes clone step does (a tree that stays), into `into`/checkout."""
    with git_source.fetch(url, ref, cache=GitCache(into / "cache"), into=into / "checkout", **kwargs) as f:  # type: ignore[arg-type]
        return f.path


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, str, str]:
    """A repository with two commits on main: (path, first sha, second sha)."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    git("config", "user.email", "t@example.invalid", cwd=work)
    git("config", "user.name", "t", cwd=work)
    (work / "a.py").write_text("def first():\n    return 1\n")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    (work / "b.py").write_text("def second():\n    return 2\n")
    git("add", ".", cwd=work)
    git("commit", "--quiet", "-m", "second", cwd=work)
    second = git("rev-parse", "HEAD", cwd=work)
    bare = tmp_path / "remote.git"
    git("clone", "--quiet", "--bare", str(work), str(bare), cwd=tmp_path)
    git("update-server-info", cwd=bare)  # for the dumb HTTP server below
    return bare, first, second


def test_a_commit_sha_is_checked_out_where_clone_branch_would_refuse_it(
    remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    bare, first, _ = remote
    refused = subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", "--branch", first, f"file://{bare}", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0  # what the indexer did before: `--branch <sha>` fails
    checkout = clone(f"file://{bare}", first, tmp_path / "into")
    assert git("rev-parse", "HEAD", cwd=checkout) == first
    assert (checkout / "a.py").is_file() and not (checkout / "b.py").exists()


def test_a_branch_and_the_default_branch_clone_shallow(remote: tuple[Path, str, str], tmp_path: Path) -> None:
    bare, _, second = remote
    for ref, into in ((None, "default"), ("main", "branch")):
        checkout = clone(f"file://{bare}", ref, tmp_path / into)
        assert git("rev-parse", "HEAD", cwd=checkout) == second


def test_a_missing_ref_is_the_requests_fault_not_the_networks(
    remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    bare, _, _ = remote
    with pytest.raises(InvalidInput, match="no-such-branch"):
        clone(f"file://{bare}", "no-such-branch", tmp_path / "into", sleep=pytest.fail)


def test_a_remote_that_is_down_is_retried_with_backoff_and_reported_as_a_network_error(
    tmp_path: Path,
) -> None:
    waits: list[float] = []
    with pytest.raises(SourceUnavailable, match=r"network error while fetching .*\(after 4 attempts\)"):
        clone("http://127.0.0.1:1/repo.git", None, tmp_path / "into", sleep=waits.append)
    assert waits == [1.0, 2.0, 4.0]


@pytest.fixture
def token_server(remote: tuple[Path, str, str]) -> Iterator[str]:
    with git_remotes.token_server(remote[0]) as url:
        yield url


def test_a_token_from_the_mounted_secret_reaches_git_and_nothing_else(
    token_server: str, remote: tuple[Path, str, str], tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput):  # without credentials the server says 401: not retried
        clone(token_server, None, tmp_path / "anonymous", sleep=pytest.fail)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text(TOKEN + "\n")
    checkout = clone(
        token_server,
        remote[1],
        tmp_path / "with-token",
        credentials=git_source.credentials_from_secret(secret),
    )
    assert git("rev-parse", "HEAD", cwd=checkout) == remote[1]
    stored = b"".join(f.read_bytes() for f in (tmp_path / "with-token").rglob("*") if f.is_file())
    assert TOKEN.encode() not in stored  # not in the cache, the config or the checkout the indexer reads


def test_urls_with_credentials_are_refused_and_redacted() -> None:
    for url in (
        f"https://user:{TOKEN}@github.com/acme/app.git",
        f"https://{TOKEN}@github.com/acme/app.git",
        f"ssh://git:{TOKEN}@github.com/acme/app.git",
    ):
        with pytest.raises(InvalidInput) as refused:
            validate_git_source(url, None)
        message = str(refused.value)
        assert TOKEN not in message and "secretRef" in message and "CODEBASE_GIT_TOKEN" in message
    assert validate_git_source("ssh://git@github.com/acme/app.git", None)[0].startswith("ssh://git@")
    assert redact_userinfo(f"https://u:{TOKEN}@h/r.git") == "https://***@h/r.git"


def test_an_ssh_source_needs_the_hosts_key_in_the_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "ssh-privatekey").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n")
    url = "ssh://git@127.0.0.1/r.git"
    if git_source.shutil.which("ssh") is None:
        with pytest.raises(InvalidInput, match="ssh client"):
            git_source.credential_env(url, git_source.credentials_from_secret(secret), tmp_path)
        return
    with pytest.raises(InvalidInput, match="known_hosts"):
        git_source.credential_env(url, git_source.credentials_from_secret(secret), tmp_path)
    (secret / "known_hosts").write_text("127.0.0.1 ssh-ed25519 AAAA\n")
    env = git_source.credential_env(url, git_source.credentials_from_secret(secret), tmp_path)
    assert "StrictHostKeyChecking=yes" in env["GIT_SSH_COMMAND"] and env["GIT_ALLOW_PROTOCOL"] == "ssh"
    key = tmp_path / "id"
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_a_missing_repository_is_reported_in_gits_words_not_its_closing_advice(tmp_path: Path) -> None:
    """Seen on the real node: git's last line is advice ("... and the repository exists.")."""
    missing = tmp_path / "no-such-repository.git"
    with pytest.raises(InvalidInput) as caught:
        clone(f"file://{missing}", None, tmp_path)
    message = str(caught.value)
    assert f"git could not fetch file://{missing}: fatal: " in message, message
    assert "repository exists" not in message


def _settings_credentials(*hosts: str) -> git_source.Credentials:
    from mcp_server.core.settings import GitSettings, load_settings

    overrides = {"CODEBASE_GIT_TOKEN": TOKEN, "CODEBASE_GIT_TOKEN_HOSTS": ",".join(hosts)}
    credentials = git_source.credentials_from_settings(load_settings(GitSettings, overrides=overrides).git)
    assert credentials is not None and TOKEN not in repr(credentials)
    return credentials


def test_a_token_from_the_settings_reaches_git_through_askpass_only_and_only_on_its_hosts(
    token_server: str, remote: tuple[Path, str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[list[str], dict[str, str]]] = []
    real_run = subprocess.run

    def recording_run(command: list[str], **kwargs: object) -> object:
        if "env" in kwargs:  # git_source's calls (the test's own `git` helper passes none)
            calls.append((list(command), dict(kwargs["env"])))  # type: ignore[arg-type]
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(git_source.subprocess, "run", recording_run)
    checkout = clone(token_server, None, tmp_path / "listed", credentials=_settings_credentials("127.0.0.1"))
    assert git("rev-parse", "HEAD", cwd=checkout) == remote[2]
    assert calls and not any(TOKEN in " ".join(argv) for argv, _ in calls)
    askpass = Path(calls[-1][1]["GIT_ASKPASS"])
    assert not askpass.exists()  # removed once the fetch was over (it only ever read the environment)
    stored = b"".join(f.read_bytes() for f in (tmp_path / "listed").rglob("*") if f.is_file())
    assert TOKEN.encode() not in stored

    calls.clear()
    with pytest.raises(InvalidInput, match="CODEBASE_GIT_TOKEN_HOSTS") as refused:
        clone(token_server, None, tmp_path / "unlisted", credentials=_settings_credentials("github.com"))
    assert TOKEN not in str(refused.value)
    assert calls and all("CODEBASE_GIT_TOKEN" not in env and "GIT_ASKPASS" not in env for _, env in calls)


def test_a_token_never_goes_over_plain_http_off_loopback(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="plain http"):
        git_source.credential_env(
            "http://git.example.com/r.git", _settings_credentials("git.example.com"), tmp_path
        )
    env = git_source.credential_env(
        "https://git.example.com/r.git", _settings_credentials("git.example.com"), tmp_path
    )
    assert env["CODEBASE_GIT_TOKEN"] == TOKEN and env["GIT_ALLOW_PROTOCOL"] == "https"


def test_a_token_without_the_hosts_it_may_go_to_is_a_configuration_error() -> None:
    from mcp_server.core.errors import ConfigurationError
    from mcp_server.core.settings import GitSettings, load_settings

    with pytest.raises(ConfigurationError, match="CODEBASE_GIT_TOKEN_HOSTS") as caught:
        load_settings(GitSettings, overrides={"CODEBASE_GIT_TOKEN": TOKEN})
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://-oProxyCommand=touch%20pwned/r.git",
        "git@-oProxyCommand=x:r.git",
        "https://host\x01name/r.git",
        "file://other-host/srv/r.git",
        "file:///srv/../etc/r.git",
        "ext::sh -c touch% pwned",
    ],
)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        validate_git_source(url, None)


@pytest.mark.parametrize(
    "ref", ["--upload-pack=x", "a..b", "x.lock", "a//b", "a/.hidden", "main@{1}", "tab\tref"]
)
def test_hostile_refs_are_refused(ref: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid branch, tag or commit"):
        validate_git_source("https://github.com/a/b.git", ref)
