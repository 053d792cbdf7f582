"""File-descriptor based access to a repository that may change under us.

Why: a path is looked up again at every use, so a directory swapped for a symlink between listing
and opening (`zzz/` -> `/etc`) leads a path-based walker out of the repository. Here every
directory is opened relative to its already-open parent with `O_NOFOLLOW | O_DIRECTORY`, every
file relative to its open directory with `O_NOFOLLOW` and checked with `fstat` after the open, so
whatever is swapped in, what is opened is inside the repository or nothing is opened at all.
"""

from __future__ import annotations

import errno
import os
import stat

DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
FILE_FLAGS = (
    os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
)


class NotRegular(OSError):
    """The name is (now) something other than a regular file."""

    def __init__(self, info: os.stat_result) -> None:
        super().__init__(errno.EINVAL, "not a regular file")
        self.info = info


class FileTooLarge(OSError):
    """A file over the size limit it was opened under."""

    def __init__(self, size: int) -> None:
        super().__init__(errno.EFBIG, "file too large")
        self.size = size


def open_directory(name: str, *, dir_fd: int) -> int:
    """Open the directory `name` inside the open directory `dir_fd`; never follows a symlink."""
    return os.open(name, DIRECTORY_FLAGS, dir_fd=dir_fd)


def open_regular(
    name: str, *, dir_fd: int, expect: os.stat_result | None = None
) -> tuple[int, os.stat_result]:
    """Open the regular file `name` inside `dir_fd` without following a symlink or blocking.

    Checks the type before opening (a device is never opened) and with `fstat` after it; with
    `expect`, also that it is still the file that was listed (same device and inode)."""
    before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegular(before)
    fd = os.open(name, FILE_FLAGS, dir_fd=dir_fd)
    try:
        info = os.fstat(fd)
        same = (info.st_dev, info.st_ino) == (before.st_dev, before.st_ino)
        if expect is not None:
            same = same and (info.st_dev, info.st_ino) == (expect.st_dev, expect.st_ino)
        if not stat.S_ISREG(info.st_mode) or not same:
            raise NotRegular(info)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_limited(fd: int, limit: int) -> bytes | None:
    """Up to `limit` bytes of an open file; None if it holds more (it grew since its fstat)."""
    parts: list[bytes] = []
    size = 0
    while True:
        part = os.read(fd, min(1 << 20, limit + 1 - size))
        if not part:
            return b"".join(parts)
        parts.append(part)
        size += len(part)
        if size > limit:
            return None


def open_beneath(root_fd: int, relative: str) -> tuple[int, str]:
    """(open fd of the parent directory, last name) of a normalised path inside `root_fd`.

    Every directory on the way is opened with O_NOFOLLOW, so a symlink anywhere on the path ends the
    lookup with ELOOP or ENOTDIR instead of leading out. The caller closes the returned fd."""
    parts = [p for p in relative.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(errno.EINVAL, "not a normalised relative path", relative)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            child = open_directory(part, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def read_small_regular_file(root_fd: int, relative: str, *, limit: int) -> bytes | None:
    """The bytes of a small regular file inside the tree (an ignore file), or None when it is
    missing, not a regular file (a FIFO at `.git/info/exclude` is never opened), behind a symlink
    or unreadable. Raises FileTooLarge when it is larger than `limit` (it is not read)."""
    try:
        parent, name = open_beneath(root_fd, relative)
    except OSError:
        return None
    try:
        fd, info = open_regular(name, dir_fd=parent)
    except OSError:
        return None
    finally:
        os.close(parent)
    try:
        if info.st_size > limit:
            raise FileTooLarge(info.st_size)
        return read_limited(fd, limit)
    except FileTooLarge:
        raise
    except OSError:
        return None
    finally:
        os.close(fd)
