"""Fetching a `source.git` repository: any ref (branch, tag or commit SHA), credentials from a
mounted Secret, and network errors retried and reported as such.

Used by the local indexer run and by the Kubernetes Job's `clone` init container alike, so both
runners fetch the same way. What it guarantees:

- **Credentials never in a URL, an argv or a log line.** A URL with userinfo is refused upstream
  (`core.validation.validate_git_source`); a token reaches git only through GIT_ASKPASS and the
  environment of the git process; an ssh key is copied to a private (0600) file because ssh refuses
  the group-readable files a Secret volume holds. Everything git prints is redacted before use.
- **Commit SHAs.** `git clone --branch` accepts only branches and tags; a 40 (or 64) hex digit ref
  is fetched by id (`git fetch origin <sha>`, which servers allow for reachable commits under
  protocol v2), falling back to fetching every branch and tag.
- **Transient errors are not the request's fault.** DNS, connection and server errors are retried
  with backoff and end as `SourceUnavailable` (exit code 1, "failed"); a wrong URL, a missing ref
  or refused credentials end as `InvalidInput` (exit code 2, "refused its input").
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mcp_server.core.errors import InvalidInput, SourceUnavailable
from mcp_server.core.validation import redact_userinfo

log = logging.getLogger(__name__)

CLONE_TIMEOUT_SECONDS = 1800
ATTEMPTS = 4
FIRST_BACKOFF_SECONDS = 1.0
SHA_RE = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")
# What git and ssh print when the network or the server, not the request, is at fault.
TRANSIENT_MARKERS = (
    "could not resolve host",
    "temporary failure in name resolution",
    "connection timed out",
    "operation timed out",
    "connection refused",
    "connection reset",
    "failed to connect",
    "network is unreachable",
    "no route to host",
    "early eof",
    "rpc failed",
    "the remote end hung up unexpectedly",
    "returned error: 5",
    "returned error: 429",
    "gnutls_handshake",
    "ssl_error",
    "tls connection",
    "could not read from remote repository",  # ssh: with a known host this is the connection
)
# Secret keys (kubernetes.io/basic-auth and kubernetes.io/ssh-auth use these names too).
TOKEN_KEYS = ("token", "password")
USERNAME_KEY = "username"
SSH_KEY = "ssh-privatekey"
KNOWN_HOSTS = "known_hosts"
_ASKPASS = (
    "#!/bin/sh\n"
    'case "$1" in\n'
    '  Username*) printf "%s\\n" "$CODEBASE_GIT_USERNAME" ;;\n'
    '  *) printf "%s\\n" "$CODEBASE_GIT_TOKEN" ;;\n'
    "esac\n"
)


def redact(text: str) -> str:
    """Userinfo in any URL in `text` replaced by `***`."""
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@", r"\1***@", text)


def is_ssh(url: str) -> bool:
    return url.startswith(("ssh://", "git@"))


def is_transient(stderr: str) -> bool:
    lowered = stderr.lower()
    return any(marker in lowered for marker in TRANSIENT_MARKERS)


def _read(directory: Path, name: str) -> str | None:
    path = directory / name
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def credential_env(url: str, credentials: Path | None, scratch: Path) -> dict[str, str]:
    """The environment that hands git the credentials in `credentials` (a mounted Secret)."""
    env: dict[str, str] = {"GIT_TERMINAL_PROMPT": "0"}
    if is_ssh(url):
        if shutil.which("ssh") is None:
            raise InvalidInput("ssh:// and git@ sources need an ssh client, which is not installed here")
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if credentials is not None:
            key = _read(credentials, SSH_KEY)
            known_hosts = credentials / KNOWN_HOSTS
            if key is None:
                raise InvalidInput(f"source.git.secretRef has no {SSH_KEY!r} key for an ssh source")
            if not known_hosts.is_file():
                raise InvalidInput(
                    f"source.git.secretRef has no {KNOWN_HOSTS!r} key: ssh sources need the host's key"
                )
            private = scratch / "id"
            private.write_text(key + "\n", encoding="utf-8")
            private.chmod(stat.S_IRUSR | stat.S_IWUSR)
            options += [
                "-i",
                str(private),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                f"UserKnownHostsFile={known_hosts}",
            ]
        env["GIT_SSH_COMMAND"] = " ".join(["ssh", *options])
        return env
    if credentials is not None:
        token = next((t for t in (_read(credentials, k) for k in TOKEN_KEYS) if t), None)
        if token is None:
            raise InvalidInput(f"source.git.secretRef has no {TOKEN_KEYS[0]!r} key for an https source")
        askpass = scratch / "askpass"
        askpass.write_text(_ASKPASS, encoding="utf-8")
        askpass.chmod(stat.S_IRWXU)
        env.update(
            {
                "GIT_ASKPASS": str(askpass),
                "CODEBASE_GIT_USERNAME": _read(credentials, USERNAME_KEY) or "x-access-token",
                "CODEBASE_GIT_TOKEN": token,
            }
        )
    return env


def _commands(url: str, ref: str | None, target: Path) -> list[list[str]]:
    if ref is not None and SHA_RE.fullmatch(ref):
        return [
            ["git", "init", "--quiet", str(target)],
            ["git", "-C", str(target), "remote", "add", "origin", "--", url],
            ["git", "-C", str(target), "fetch", "--quiet", "--depth", "1", "--no-tags", "origin", ref],
            ["git", "-C", str(target), "checkout", "--quiet", "--detach", "FETCH_HEAD"],
        ]
    command = ["git", "clone", "--quiet", "--depth", "1", "--no-tags"]
    if ref:
        command += ["--branch", ref]
    return [[*command, "--", url, str(target)]]


def _fallback_for_sha(ref: str, target: Path) -> list[list[str]]:
    """A server that refuses a fetch by id (protocol v0, allowReachableSHA1InWant off): fetch
    every branch and tag, then check the commit out."""
    return [
        [
            "git",
            "-C",
            str(target),
            "fetch",
            "--quiet",
            "--tags",
            "origin",
            "+refs/heads/*:refs/remotes/origin/*",
        ],
        ["git", "-C", str(target), "checkout", "--quiet", "--detach", ref],
    ]


def clone(
    url: str,
    ref: str | None,
    into: Path,
    *,
    credentials: Path | None = None,
    attempts: int = ATTEMPTS,
    backoff: float = FIRST_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Fetch `url` at `ref` into `into`/checkout and return that directory."""
    if shutil.which("git") is None:
        raise InvalidInput("source.git needs the `git` executable, which is not installed")
    shown = redact_userinfo(url)
    target = into / "checkout"
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-git-auth-") as scratch:
        env = {**os.environ, **credential_env(url, credentials, Path(scratch))}
        delay = backoff
        for attempt in range(1, attempts + 1):
            shutil.rmtree(target, ignore_errors=True)
            failure = _run_all(_commands(url, ref, target), env)
            if (
                failure is not None
                and ref is not None
                and SHA_RE.fullmatch(ref)
                and not is_transient(failure)
            ):
                failure = _run_all(_fallback_for_sha(ref, target), env)
            if failure is None:
                return target
            if not is_transient(failure):
                raise InvalidInput(f"git could not fetch {shown}{f' at {ref}' if ref else ''}: {failure}")
            if attempt == attempts:
                raise SourceUnavailable(
                    f"network error while cloning {shown} (after {attempts} attempts): {failure}; "
                    "the previous index is unchanged, retry the job"
                )
            log.warning(
                "clone of %s failed (attempt %d of %d), retrying in %.0f s: %s",
                shown,
                attempt,
                attempts,
                delay,
                failure,
            )
            sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def _run_all(commands: Sequence[Sequence[str]], env: dict[str, str]) -> str | None:
    """Run the commands in order; git's reason for the first failure, else None."""
    for command in commands:
        try:
            proc = subprocess.run(
                list(command),
                capture_output=True,
                text=True,
                timeout=CLONE_TIMEOUT_SECONDS,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"timed out after {CLONE_TIMEOUT_SECONDS} s (connection timed out)"
        if proc.returncode != 0:
            lines = [ln for ln in redact(proc.stderr or proc.stdout).strip().splitlines() if ln.strip()]
            fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:", "ssh:"))]
            # The first such line says why ("... does not appear to be a git repository"); the
            # ones after it are consequences ("Could not read from remote repository.", which
            # alone would read as a network error) and advice.
            return (fatal or lines or [f"exit code {proc.returncode}"])[0][:500]
    return None
