"""Validation of everything that crosses a boundary: repository paths, project ids, job ids.

The MCP tools, the CLI, the operator (IndexingRequest specs) and the indexer all call these, so a
path or id is judged the same way wherever it enters.
"""

from __future__ import annotations

import os
import re
import stat
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from mcp_server.core import path_policy
from mcp_server.core.errors import InvalidInput, InvalidProjectId, InvalidRepositoryPath
from mcp_server.core.shards import MAX_SHARDS, auto_count

# Like a Kubernetes DNS label: it is also used in object names and labels.
PROJECT_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_PATH_CHARS = 4096


def validate_project_id(project_id: str | None, *, default: str = "default") -> str:
    if project_id is None:
        return default
    if not isinstance(project_id, str):
        raise InvalidProjectId("project_id must be a string")
    if not PROJECT_ID_RE.fullmatch(project_id):
        shown = project_id if len(project_id) <= 80 else project_id[:77] + "..."
        raise InvalidProjectId(
            f"invalid project_id {shown!r}: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (like a DNS label)"
        )
    return project_id


def validate_shards(shards: object, *, count_files: Callable[[], int] | None, files_per_shard: int) -> int:
    """How many shards a run gets: a number from 1 to MAX_SHARDS, or 'auto' (one per
    `files_per_shard` files, counted by `count_files`; None when the tree cannot be read here)."""
    if shards is None:
        return 1
    if shards == "auto":
        if count_files is None:
            raise InvalidInput(
                "shards='auto' counts the files first and needs a directory this server can read; "
                "give a number of shards for a git source"
            )
        return auto_count(count_files(), files_per_shard=files_per_shard)
    if isinstance(shards, str) and shards.isdigit():
        shards = int(shards)
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise InvalidInput(f"shards must be 'auto' or a whole number from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def validate_job_id(job_id: str | uuid.UUID) -> uuid.UUID:
    if isinstance(job_id, uuid.UUID):
        return job_id
    if not isinstance(job_id, str) or len(job_id) > 64:
        raise InvalidInput("job_id must be a UUID string such as 123e4567-e89b-12d3-a456-426614174000")
    try:
        return uuid.UUID(job_id.strip())
    except ValueError:
        shown = job_id if len(job_id) <= 64 else job_id[:61] + "..."
        raise InvalidInput(f"job_id {shown!r} is not a valid UUID") from None


# On Kubernetes a directory is read from the shared workspace volume; without one only git sources
# can be indexed. The same advice from the MCP server and from the operator's admission.
NO_WORKSPACE_ADVICE = (
    "install the chart with workspace.existingClaim set (WORKSPACE_PVC_NAME), or index a git repository"
)


def check_path_syntax(raw: str) -> str:
    """Refuse what is wrong with the text itself, before touching the filesystem."""
    if not isinstance(raw, str) or not raw:
        raise InvalidRepositoryPath("repo_path must be a non-empty absolute path")
    if len(raw) > MAX_PATH_CHARS:
        raise InvalidRepositoryPath(f"repo_path is longer than {MAX_PATH_CHARS} characters")
    if "\x00" in raw or "\n" in raw or "\r" in raw:
        raise InvalidRepositoryPath("repo_path contains a NUL byte or a line break")
    if raw.startswith("~"):
        raise InvalidRepositoryPath(
            f"repo_path {raw!r} starts with '~': give the absolute path (home directories are not expanded)"
        )
    if not os.path.isabs(raw):
        raise InvalidRepositoryPath(f"repo_path {raw!r} is relative: give an absolute path")
    if ".." in Path(raw).parts:
        raise InvalidRepositoryPath(f"repo_path {raw!r} contains a '..' segment, which is not allowed")
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRepositoryPath("repo_path is not valid UTF-8") from None
    return os.path.normpath(raw)


def validate_repo_path(raw: str, *, allowed_roots: Sequence[Path] = ()) -> Path:
    """An absolute, existing, readable directory inside the allowed roots (if any).

    Returns the resolved path (symlinks followed), and applies the allowed-roots check to the
    resolved path, so a symlink inside an allowed root cannot point out of it.
    """
    normalised = check_path_syntax(raw)
    path = Path(normalised)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InvalidRepositoryPath(f"repo_path {normalised!r} does not exist") from None
    except PermissionError:
        raise InvalidRepositoryPath(
            f"repo_path {normalised!r} is not accessible (permission denied)"
        ) from None
    except OSError as exc:
        raise InvalidRepositoryPath(f"repo_path {normalised!r} cannot be read: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InvalidRepositoryPath(f"repo_path {normalised!r} is not a directory")
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidRepositoryPath(f"repo_path {normalised!r} is not readable")
    resolved = path.resolve()
    if not allowed_roots:
        path_policy.check_default_policy(resolved, normalised)
    if allowed_roots and not any(_is_within(resolved, root) for root in allowed_roots):
        roots = ", ".join(str(r) for r in allowed_roots)
        raise InvalidRepositoryPath(
            f"repo_path {normalised!r} is outside the allowed roots ({roots}); "
            "set CODEBASE_ALLOWED_ROOTS to allow it"
        )
    return resolved


def _is_within(path: Path, root: Path) -> bool:
    try:
        root_resolved = root.resolve()
    except OSError:
        return False
    return path == root_resolved or root_resolved in path.parents


# A Kubernetes object name (RFC 1123 subdomain): a Secret, a PriorityClass.
K8S_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


def validate_git_secret(name: object) -> str:
    """The name of the Secret a git job's clone step reads its credentials from."""
    if not isinstance(name, str) or not K8S_NAME_RE.fullmatch(name):
        raise InvalidInput(
            "git_secret must name a Kubernetes Secret in the server's namespace (lower-case letters, "
            "digits, '-' and '.', at most 253 characters)"
        )
    return name


GIT_URL_RE = re.compile(r"^(https://|http://|ssh://|git@|file://)[^\s]+$")
GIT_REF_RE = re.compile(r"^[A-Za-z0-9._/@-]{1,200}$")
# A host name, an IPv4 or an IPv6 address (as `git_url_host` returns it). No leading '-': ssh
# would read `-oProxyCommand=...` as an option (CVE-2017-1000117).
_HOST_RE = re.compile(r"^(?!-)([A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45})$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


# The userinfo of a URL ("user:password@" or "token@") right after the scheme.
_USERINFO_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^/@?#]*)@", re.IGNORECASE)


def redact_userinfo(url: str) -> str:
    """`url` with any user and password replaced by `***`, for logs and messages."""
    return _USERINFO_RE.sub(lambda m: f"{m.group('scheme')}***@", url)


def git_url_host(url: str) -> str:
    """The host (without user or port) a git URL names; '' for file:// URLs."""
    if url.startswith("git@"):
        return url[len("git@") :].split(":", 1)[0]
    authority = url.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def git_repository_key(url: str, ref: str | None) -> str:
    """What a git source is called in the job rows and the index: the URL, with `#ref` when a ref
    was asked for (so two refs of one repository are two repositories)."""
    return f"{url}#{ref}" if ref else url


def _valid_ref(ref: str) -> bool:
    """git's check-ref-format rules that matter here, on top of a conservative alphabet."""
    return bool(
        GIT_REF_RE.fullmatch(ref)
        and not ref.startswith(("-", "/"))
        and not ref.endswith(("/", ".", ".lock"))
        and ".." not in ref
        and "//" not in ref
        and "@{" not in ref
        and ref != "@"
        and not any(part.startswith(".") for part in ref.split("/"))
    )


def validate_git_source(
    url: str, ref: str | None, *, names: tuple[str, str] = ("source.git.url", "source.git.ref")
) -> tuple[str, str | None]:
    """A git URL (https, http, ssh, scp-like or file) and an optional ref, or InvalidInput.

    `names` are the fields the messages name (the CRD's, or the MCP tool's `git_url`/`ref`).
    """
    url_name, ref_name = names
    if (
        not isinstance(url, str)
        or not GIT_URL_RE.fullmatch(url)
        or len(url) > 2048
        or _CONTROL_RE.search(url)
    ):
        raise InvalidInput(f"{url_name} must be an https://, ssh://, git@ or file:// URL without spaces")
    userinfo = _USERINFO_RE.match(url)
    if userinfo is not None and (":" in userinfo.group("userinfo") or not url.lower().startswith("ssh://")):
        # A token or password in the URL ends up in the spec, the job row and every log line that
        # names the source; only an ssh user name (ssh://git@host/...) is allowed.
        raise InvalidInput(
            f"{url_name} {redact_userinfo(url)!r} carries credentials, which would be stored and "
            "logged with it; give them to git another way: CODEBASE_GIT_TOKEN with "
            "CODEBASE_GIT_TOKEN_HOSTS (local runs), a Secret named in source.git.secretRef "
            "(Kubernetes), or a git credential helper"
        )
    host = git_url_host(url)
    if url.startswith("file://"):
        path = url[len("file://") + len(host) :]
        if host not in ("", "localhost") or not path.startswith("/") or ".." in path.split("/"):
            raise InvalidInput(
                f"{url_name} {url!r}: a file:// URL needs an absolute path without '..' "
                "and no host but localhost"
            )
    elif not _HOST_RE.fullmatch(host) or (url.startswith("git@") and ":" not in url):
        raise InvalidInput(f"{url_name} {redact_userinfo(url)!r} does not name a valid host")
    if ref is not None and (not isinstance(ref, str) or not _valid_ref(ref)):
        raise InvalidInput(f"{ref_name} {ref!r} is not a valid branch, tag or commit name")
    return url, ref


def check_local_git_url(url: str, *, allowed_roots: Sequence[Path] = ()) -> None:
    """A file:// source is a path on this machine: the rules for repository paths apply to it
    (CODEBASE_ALLOWED_ROOTS, or the default refusal of system and home directories)."""
    if url.startswith("file://"):
        path = url[len("file://") + len(git_url_host(url)) :]
        validate_repo_path(path, allowed_roots=allowed_roots)
