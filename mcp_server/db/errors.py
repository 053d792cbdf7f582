"""Database failures, classified once for every runner and front end.

Two questions, each with one answer here:
- **Is the database away for now?** (`DATABASE_ERRORS`): PostgreSQL restarting, failing over or
  unreachable. Retry later; never a reason to fail a job or to print a traceback.
- **What should a person do about it?** (`database_failure_message`, `unavailable_message`): a full
  disk, the server's shared memory and a lost connection have different remedies, so they are told
  apart by the server's own words (`is_disk_full`, `is_out_of_shared_memory`).
"""

from __future__ import annotations

import re

from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.core.errors import DatabaseUnavailable

DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, DatabaseUnavailable)

_URL_CREDENTIALS_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]*@")


def redact_urls(text: str) -> str:
    """`text` with the user and password of every URL in it replaced by `***` (error messages
    that quote a URL: a connection string, an embedding server's address)."""
    return _URL_CREDENTIALS_RE.sub(r"\g<scheme>***@", text)


def first_line(error: object) -> str:
    """The first line of a database error: the driver's own (`.orig`) when SQLAlchemy wraps it."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def is_disk_full(text: str) -> bool:
    return "No space left on device" in text or "could not extend file" in text


def is_out_of_shared_memory(text: str) -> bool:
    return "shared memory" in text


def describe_database_error(error: BaseException) -> str:
    """'the database is unreachable (<its first line>)', for one log line instead of a traceback."""
    return f"the database is unreachable ({first_line(error)[:300]})"


def database_failure_message(error: object, where: str) -> str:
    """What the job row says when the database failed the run, with the remedy; `where` names
    what holds the data (a directory, or "the database server")."""
    first = first_line(error)
    text = str(getattr(error, "orig", None) or error)
    if is_out_of_shared_memory(first):
        # Seen on the real node: a container's 64 MB /dev/shm and the parallel vector index build.
        return (
            f"the database server ran out of shared memory ({first}); in a container, give its "
            "/dev/shm more room (the Helm chart's postgresql.sharedMemorySize, an emptyDir with "
            "medium Memory) and retry; the previous index is unchanged"
        )
    if is_disk_full(text):
        return (
            f"out of disk space: the disk holding {where} is full ({first}); "
            "free some space there and retry; the previous index is unchanged"
        )
    return (
        "lost the connection to the database (PostgreSQL restarted or unreachable?): "
        f"{redact_urls(first)}; the previous index is unchanged, retry the job"
    )


def unavailable_message(error: BaseException) -> str:
    """One line for a person at a command line: the database is away, and why when it says so."""
    detail = first_line(error)
    if is_disk_full(str(getattr(error, "orig", None) or error)):
        detail = f"the disk holding the database is full ({detail})"
    return f"the database is unavailable: {redact_urls(detail)}"
