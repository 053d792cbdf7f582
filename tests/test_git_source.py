"""Fetching source.git repositories for real: file:// remotes, a local HTTP remote that wants a
token, commit SHAs, and a remote that is down (loopback only; nothing leaves the machine)."""

from __future__ import annotations

import base64
import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_server.core.errors import InvalidInput, SourceUnavailable
from mcp_server.core.validation import redact_userinfo, validate_git_source
from mcp_server.indexer import git_source
from mcp_server.indexer.git_cache import GitCache

TOKEN = "ghp_s3cr3t-t0ken"


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


class _TokenGitServer(http.server.SimpleHTTPRequestHandler):
    """git's dumb HTTP protocol (plain files) behind Basic authentication."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def token_server(remote: tuple[Path, str, str]) -> Iterator[str]:
    bare = remote[0]

    def handler(*args: object, **kwargs: object) -> _TokenGitServer:
        return _TokenGitServer(*args, directory=str(bare.parent), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{bare.name}"
    server.shutdown()
    server.server_close()


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
