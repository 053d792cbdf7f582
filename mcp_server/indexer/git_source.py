"""Fetching a git source: any ref (branch, tag or commit SHA, full or short), credentials that
never travel in a URL, and network errors retried and reported as such.

`fetch` is the one way a git source reaches the indexer: a local run (`indexer run`, the source in
the job row) and the Kubernetes Job's `clone` init container (`indexer clone`) both call it, and
both go through the cache in `git_cache` (in a pod it lives in the pod's /tmp, so there every run
is a first clone). What it guarantees:

- **Credentials never in a URL, an argv, a row or a log line.** A URL with userinfo is refused
  upstream (`core.validation.validate_git_source`). A token (CODEBASE_GIT_TOKEN locally, the
  `token` key of source.git.secretRef on Kubernetes) reaches git only through GIT_ASKPASS, a
  script that prints it from the git process's environment; a local token goes only to the hosts
  in CODEBASE_GIT_TOKEN_HOSTS (an assistant chooses the URL), and never over plain http except to
  loopback. An ssh key is copied to a private (0600) file because ssh refuses the group-readable
  files a Secret volume holds. Whatever git prints is redacted before use. Without a token, git's
  own credential helpers and ssh keys apply.
- **No prompts, no exotic transports.** GIT_TERMINAL_PROMPT=0 and ssh's BatchMode (a missing
  credential is an error, never a hang); GIT_ALLOW_PROTOCOL is the URL's own scheme (no `ext::`).
- **Transient errors are not the request's fault.** DNS, connection and server errors are retried
  with backoff and end as `SourceUnavailable` (exit code 1, "failed"; the message says to retry);
  a wrong URL, a missing ref or refused credentials end as `InvalidInput` (exit code 2, "refused
  its input").
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from mcp_server.core.errors import InvalidInput, SourceUnavailable
from mcp_server.core.settings import GitSettings
from mcp_server.core.validation import git_url_host, redact_userinfo
from mcp_server.indexer.git_cache import Fetched, GitCache, GitFailed

log = logging.getLogger(__name__)

GIT_TIMEOUT_SECONDS = 1800
ATTEMPTS = 4
FIRST_BACKOFF_SECONDS = 1.0
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
    "empty reply from server",  # curl: the server closed the connection without answering
    "recv failure",
    "send failure",
    "transfer closed",
    "returned error: 5",
    "returned error: 429",
    "gnutls_handshake",
    "ssl_error",
    "tls connection",
    "could not read from remote repository",  # ssh: with a known host this is the connection
)
_AUTH_MARKERS = ("could not read username", "could not read password", "authentication failed")
# Secret keys (kubernetes.io/basic-auth and kubernetes.io/ssh-auth use these names too).
TOKEN_KEYS = ("token", "password")
USERNAME_KEY = "username"
SSH_KEY = "ssh-privatekey"
KNOWN_HOSTS = "known_hosts"
SECRET_SOURCE = "source.git.secretRef"
SETTINGS_SOURCE = "CODEBASE_GIT_TOKEN"
_ASKPASS = (
    "#!/bin/sh\n"
    'case "$1" in\n'
    '  Username*) printf "%s\\n" "$CODEBASE_GIT_USERNAME" ;;\n'
    '  *) printf "%s\\n" "$CODEBASE_GIT_TOKEN" ;;\n'
    "esac\n"
)


@dataclass(frozen=True, repr=False)
class Credentials:
    """What git may authenticate with; `source` names where it came from, for messages."""

    source: str
    token: str | None = None
    username: str = "x-access-token"
    hosts: frozenset[str] | None = None  # None: any host (the Secret a request named for itself)
    ssh_key: str | None = None
    known_hosts: Path | None = None

    def __repr__(self) -> str:  # never the token or the key
        return f"Credentials(source={self.source!r}, token={'***' if self.token else None})"


def credentials_from_secret(directory: Path) -> Credentials:
    """The keys of a mounted Secret (source.git.secretRef)."""
    token = next((t for t in (_read(directory, k) for k in TOKEN_KEYS) if t), None)
    known_hosts = directory / KNOWN_HOSTS
    return Credentials(
        source=SECRET_SOURCE,
        token=token,
        username=_read(directory, USERNAME_KEY) or "x-access-token",
        ssh_key=_read(directory, SSH_KEY),
        known_hosts=known_hosts if known_hosts.is_file() else None,
    )


def credentials_from_settings(settings: GitSettings) -> Credentials | None:
    if settings.token is None:
        return None
    return Credentials(
        source=SETTINGS_SOURCE,
        token=settings.token.get_secret_value(),
        username=settings.username,
        hosts=frozenset(settings.token_hosts),
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
    try:
        return (directory / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _protocol(url: str) -> str:
    return "ssh" if is_ssh(url) else url.split("://", 1)[0].lower()


def credential_env(url: str, credentials: Credentials | None, scratch: Path) -> dict[str, str]:
    """The environment of the git processes that fetch `url`: prompts off, the URL's protocol only,
    and `credentials` where they may go."""
    env: dict[str, str] = {
        "GIT_TERMINAL_PROMPT": "0",
        "GCM_INTERACTIVE": "never",
        "GIT_ALLOW_PROTOCOL": _protocol(url),
    }
    if is_ssh(url):
        if shutil.which("ssh") is None:
            raise InvalidInput("ssh:// and git@ sources need an ssh client, which is not installed here")
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        if credentials is not None and credentials.source == SECRET_SOURCE:
            if credentials.ssh_key is None:
                raise InvalidInput(f"{SECRET_SOURCE} has no {SSH_KEY!r} key for an ssh source")
            if credentials.known_hosts is None:
                raise InvalidInput(
                    f"{SECRET_SOURCE} has no {KNOWN_HOSTS!r} key: ssh sources need the host's key"
                )
            private = scratch / "id"
            private.write_text(credentials.ssh_key + "\n", encoding="utf-8")
            private.chmod(stat.S_IRUSR | stat.S_IWUSR)
            options += [
                "-i",
                str(private),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                f"UserKnownHostsFile={credentials.known_hosts}",
            ]
        env["GIT_SSH_COMMAND"] = " ".join(["ssh", *options])
        return env
    if credentials is None or url.startswith("file://"):
        return env
    if credentials.token is None:
        if credentials.source == SECRET_SOURCE:
            raise InvalidInput(f"{SECRET_SOURCE} has no {TOKEN_KEYS[0]!r} key for an https source")
        return env
    host = git_url_host(url).lower()
    if credentials.hosts is not None and host not in credentials.hosts:
        return env  # not a host the token is for: git's own helpers, or anonymous
    if url.lower().startswith("http://") and not _is_loopback(host):
        raise InvalidInput(
            f"refusing to send the token of {credentials.source} to {host} over plain http; use https"
        )
    askpass = scratch / "askpass"
    askpass.write_text(_ASKPASS, encoding="utf-8")
    askpass.chmod(stat.S_IRWXU)
    env.update(
        {
            "GIT_ASKPASS": str(askpass),
            "CODEBASE_GIT_USERNAME": credentials.username,
            "CODEBASE_GIT_TOKEN": credentials.token,
        }
    )
    return env


class _Git:
    """git_cache's GitRunner: git with this fetch's environment; remote commands retried."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        shown: str,
        secret: str | None,
        attempts: int,
        backoff: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.env, self.shown, self.secret = env, shown, secret
        self.attempts, self.backoff, self.sleep = attempts, backoff, sleep

    def local(self, *args: str) -> str:
        ok, output = self._run(args)
        if not ok:
            raise GitFailed(output)
        return output

    def remote(self, *args: str) -> str:
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            ok, output = self._run(args)
            if ok:
                return output
            if not is_transient(output):
                raise GitFailed(output)
            if attempt == self.attempts:
                raise SourceUnavailable(
                    f"network error while fetching {self.shown} (after {self.attempts} attempts): "
                    f"{output}; the previous index is unchanged, retry the job"
                )
            log.warning(
                "fetching %s failed (attempt %d of %d), retrying in %.0f s: %s",
                self.shown,
                attempt,
                self.attempts,
                delay,
                output,
            )
            self.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _run(self, args: tuple[str, ...]) -> tuple[bool, str]:
        """(True, stdout), or (False, git's reason for the failure)."""
        try:
            proc = subprocess.run(
                ["git", *args],
                capture_output=True,
                text=True,
                timeout=GIT_TIMEOUT_SECONDS,
                env=self.env,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False, f"timed out after {GIT_TIMEOUT_SECONDS} s (connection timed out)"
        if proc.returncode == 0:
            return True, proc.stdout
        text = redact(proc.stderr or proc.stdout)
        if self.secret:
            text = text.replace(self.secret, "***")
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:", "ssh:"))]
        # The first such line says why ("... does not appear to be a git repository"); the ones
        # after it are consequences ("Could not read from remote repository.", which alone would
        # read as a network error) and advice.
        return False, (fatal or lines or [f"exit code {proc.returncode}"])[0][:500]


@contextmanager
def fetch(
    url: str,
    ref: str | None,
    *,
    cache: GitCache,
    name: str | None = None,
    into: Path | None = None,
    credentials: Credentials | None = None,
    attempts: int = ATTEMPTS,
    backoff: float = FIRST_BACKOFF_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Fetched]:
    """`url` (already validated) at `ref` (the default branch when None), checked out.

    With `name` (a local run: the job id) the tree is the cache's `checkouts/<name>` and is removed
    when the block ends; with `into` (the Kubernetes clone step) it is `into` and stays.
    """
    if shutil.which("git") is None:
        raise InvalidInput("git sources need the `git` executable, which is not installed")
    if (name is None) == (into is None):
        raise ValueError("fetch needs exactly one of name and into")
    shown = redact_userinfo(url)
    at = f" at {ref}" if ref else ""
    scratch = Path(tempfile.mkdtemp(prefix="codebase-mcp-git-auth-"))
    try:
        git = _Git(
            {**os.environ, **credential_env(url, credentials, scratch)},
            shown=shown,
            secret=credentials.token if credentials else None,
            attempts=attempts,
            backoff=backoff,
            sleep=sleep,
        )
        with ExitStack() as stack:
            target = into if into is not None else stack.enter_context(cache.hold(url, str(name), git))
            try:
                fetched = cache.fetch_into(url, ref, target, git)
            except GitFailed as exc:
                raise InvalidInput(
                    f"git could not fetch {shown}{at}: {exc.reason}{_hint(exc.reason)}"
                ) from None
            finally:
                shutil.rmtree(scratch, ignore_errors=True)  # the token and key files: fetching is over
            log.info("fetched %s%s: commit %s", shown, at, fetched.commit)
            yield fetched
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _hint(reason: str) -> str:
    if any(marker in reason.lower() for marker in _AUTH_MARKERS):
        return (
            " (the server wants credentials: set CODEBASE_GIT_TOKEN and list the host in "
            "CODEBASE_GIT_TOKEN_HOSTS, configure a git credential helper, or on Kubernetes name a "
            "Secret in source.git.secretRef)"
        )
    return ""
