"""Which directories may be indexed when CODEBASE_ALLOWED_ROOTS is not set.

An assistant (or a prompt injected into it) chooses `repo_path`. Without an allow-list, everything
the server's user can read is reachable, so the directories that hold the machine's and the user's
secrets as a whole are refused by default: `/`, the system trees (`/etc`, `/proc`, `/sys`, `/dev`,
`/boot`, `/root`, `/var`, `/usr`, ... and everything inside them), the home directory itself and
the directories that hold homes (`/home`, `/Users`). A project inside the home directory is fine,
also when the home directory is itself inside a system tree (root's `/root`). Setting
CODEBASE_ALLOWED_ROOTS replaces this rule by the allow-list: whatever is inside a listed root may be
indexed, and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path

from mcp_server.core.errors import InvalidRepositoryPath

# Refused, and so is everything inside them.
SYSTEM_TREES = (
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/boot",
    "/root",
    "/var",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/run",
    "/snap",
    "/lost+found",
    "/private/etc",
    "/private/var",
    "/System",
    "/Library",
)
# Refused themselves; what is inside may be indexed.
CONTAINERS = ("/", "/home", "/Users", "/tmp", "/mnt", "/media", "/opt", "/srv")


def home_directory() -> Path | None:
    home = os.environ.get("HOME")
    if not home or not os.path.isabs(home):
        return None
    try:
        return Path(home).resolve()
    except OSError:
        return None


def refusal(resolved: Path) -> str | None:
    """Why `resolved` (an absolute path with symlinks resolved) may not be indexed by default."""
    home = home_directory()
    if home is not None and resolved == home:
        return "is your home directory"
    if home is not None and home in resolved.parents:
        return None  # a project inside the home directory
    text = str(resolved)
    if text in CONTAINERS:
        return "holds other directories' data as a whole"
    for tree in SYSTEM_TREES:
        if text == tree or text.startswith(tree + "/"):
            return f"is a system directory ({tree})"
    return None


def check_default_policy(resolved: Path, shown: str) -> None:
    """Raise InvalidRepositoryPath when no allowed roots are configured and `resolved` is refused."""
    reason = refusal(resolved)
    if reason is not None:
        raise InvalidRepositoryPath(
            f"repo_path {shown!r} {reason} and is not indexed by default: index a project directory "
            "instead, or set CODEBASE_ALLOWED_ROOTS to the directories that may be indexed"
        )
