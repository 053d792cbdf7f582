"""Find the files of a repository worth indexing, streaming, and say why the others were skipped.

A repository is untrusted input, and it may change while it is walked. The walker therefore:

* walks by file descriptor (``safe_fs``): every directory is opened relative to its open parent
  with ``O_NOFOLLOW | O_DIRECTORY`` and listed with ``scandir(fd)``, every file is opened relative
  to its directory with ``O_NOFOLLOW`` and checked with ``fstat`` after the open (same inode as
  listed, still regular), so a directory or file swapped for a symlink mid-walk is skipped as
  ``changed_during_walk`` and nothing outside the repository is ever opened;
* never follows directory symlinks (this also rules out symlink loops); a file symlink only when
  its target, looked up from the root's descriptor one directory at a time without following any
  further link, is a regular file inside the root;
* reads a file with several hard links only when all of them are inside the repository, once, at
  its last name in walk order (a hard link to ``/etc/shadow`` is never read);
* never opens anything but regular files: FIFOs, sockets and devices are skipped from their
  ``lstat``, and files are opened non-blocking;
* never reads a file over the size limit (the decision uses the stat size, so a sparse
  2 GB file costs one lstat) and, unless asked for the contents, reads at most 8 KiB of the others
  to spot binaries;
* reads ignore files only when they are regular files under 100 KB, keeps their first 1,000
  patterns and drops patterns whose matching could backtrack without bound (more than two ``*``
  in one path segment), with a warning that names the pattern;
* turns every filesystem error on an entry into a skip with a reason, never an exception.

What is skipped: ``.gitignore`` and ``.codebaseignore`` rules at every level (nested files,
negations, anchored and directory-only patterns, via pathspec's GitIgnoreSpec; a
``.codebaseignore`` wins over the ``.gitignore`` beside it) and ``.git/info/exclude``; the default
ignores below (version-control and tool directories, virtualenvs, build output, lock files,
minified and source-map files); binaries by extension or content; names that are not UTF-8.
``extra_ignores`` are gitignore lines that win over all of these, so ``!build/`` brings a
default-ignored directory back.

The order is deterministic: files come out sorted by relative path (code-point order).

About 480 lines, kept whole: one descriptor-relative walk whose safety depends on every step
(open, stat, ignore, descend) using the same checked descriptors.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from mcp_server.core.errors import InvalidRepositoryPath
from mcp_server.indexer import safe_fs
from mcp_server.indexer.file_reading import BINARY_EXTENSIONS, HEAD_BYTES, looks_binary
from mcp_server.indexer.ignore_rules import (
    BUILD_OUTPUT_DIRECTORIES,
    DEFAULT_IGNORED_DIRECTORIES,
    DEFAULT_IGNORED_FILES,
    DEFAULT_IGNORED_SUFFIXES,
    ENVIRONMENT_MARKERS,
    IGNORE_FILES,
    IgnoreFiles,
    is_source_package,
)
from mcp_server.indexer.languages import language_for_path
from mcp_server.indexer.types import SourceFile

log = logging.getLogger(__name__)

# Skip reasons, as counted in WalkStats.skipped.
IGNORED = "ignored"  # .gitignore, extra_ignores or a default ignore
BINARY = "binary"  # a binary extension, a NUL byte or mostly control bytes in the first 8 KiB
TOO_LARGE = "too_large"  # stat size over max_file_bytes
SYMLINK_OUTSIDE = "symlink_outside"  # a symlink (file or directory) resolving outside the root
SYMLINK_DIRECTORY = "symlink_directory"  # a symlink to a directory inside the root: not followed
BROKEN_SYMLINK = "broken_symlink"  # dangling, or a loop
SPECIAL_FILE = "special_file"  # FIFO, socket, device
UNREADABLE = "unreadable"  # permission denied, vanished while walking, I/O error
UNDECODABLE_NAME = "undecodable_name"  # a file or directory name that is not valid UTF-8
CHANGED_DURING_WALK = "changed_during_walk"  # swapped (e.g. for a symlink) between listing and opening
HARDLINK = "hardlink"  # several hard links, not all inside the repository (or another name of one indexed)

SKIP_REASONS = (
    IGNORED,
    BINARY,
    TOO_LARGE,
    SYMLINK_OUTSIDE,
    SYMLINK_DIRECTORY,
    BROKEN_SYMLINK,
    SPECIAL_FILE,
    UNREADABLE,
    UNDECODABLE_NAME,
    CHANGED_DURING_WALK,
    HARDLINK,
)

_MAX_WARNINGS = 20
_EXAMPLES_PER_REASON = 5

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass
class WalkStats:
    """What a walk yielded and skipped; pass one to ``walk_repository`` and read it afterwards."""

    files: int = 0
    bytes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    # A few relative paths per reason, for messages such as "12 files too large (e.g. data/x.csv)".
    examples: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def warn(self, message: str) -> None:
        """Something about the repository the summary should mention (an ignore file not used)."""
        if message not in self.warnings and len(self.warnings) < _MAX_WARNINGS:
            self.warnings.append(message)
            log.warning("%s", message)

    def record_skip(self, reason: str, relative_path: str) -> None:
        self.skipped[reason] += 1
        examples = self.examples.setdefault(reason, [])
        if len(examples) < _EXAMPLES_PER_REASON:
            examples.append(relative_path)


def walk_repository(
    root: Path,
    *,
    max_file_bytes: int,
    extra_ignores: Sequence[str] = (),
    stats: WalkStats | None = None,
    read_contents: bool | Callable[[str], bool] = False,
) -> Iterator[SourceFile]:
    """Yield the indexable files under ``root``, sorted by relative path; see the module doc.

    Raises InvalidRepositoryPath when ``root`` is not a readable directory. Paths in the result
    are under the root with its symlinks resolved. With ``read_contents``, each SourceFile carries
    its bytes, read through the descriptor that was checked (what the indexer must use: a path
    opened again later may lead somewhere else). A predicate on the relative path reads the bytes
    of only the files it accepts (a watcher's sync: the rest are known unchanged).
    """
    root_text = os.path.realpath(root)
    try:
        root_fd = os.open(root_text, safe_fs.DIRECTORY_FLAGS)
    except NotADirectoryError:
        raise InvalidRepositoryPath(f"{root} is not a directory") from None
    except OSError as error:
        raise InvalidRepositoryPath(f"{root} cannot be read: {error.strerror}") from error
    try:
        root_entries = _sorted_entries(root_fd)
    except OSError as error:
        os.close(root_fd)
        raise InvalidRepositoryPath(f"{root} cannot be read: {error.strerror}") from error
    walker = _Walker(
        root_text,
        root_fd,
        max_file_bytes,
        extra_ignores,
        stats if stats is not None else WalkStats(),
        read_contents=read_contents,
    )
    return walker.walk(root_entries)


@dataclass(slots=True)
class _Frame:
    """A directory being listed: its sorted entries and the ignore rules that apply inside it."""

    entries: list[os.DirEntry[str]]
    prefix: str  # relative path of the directory with a trailing "/", "" for the root
    rules: tuple[tuple[str, GitIgnoreSpec], ...]  # (directory prefix, its .gitignore), root first
    ancestors: frozenset[tuple[int, int]]  # (device, inode) of the directories above
    fd: int  # the open directory; entries are opened relative to it
    position: int = 0


class _Walker:
    def __init__(
        self,
        root: str,
        root_fd: int,
        max_file_bytes: int,
        extra_ignores: Sequence[str],
        stats: WalkStats,
        *,
        read_contents: bool | Callable[[str], bool],
    ) -> None:
        self.root = root
        self.root_fd = root_fd
        self.root_prefix = root.rstrip(os.sep) + os.sep
        self.max_file_bytes = max_file_bytes
        self.stats = stats
        self.ignore_files = IgnoreFiles(root_fd, stats.warn)
        self.extra = (
            self.ignore_files.compile(list(extra_ignores), "extra_ignores") if extra_ignores else None
        )
        self.read_contents = read_contents
        # (device, inode) -> the names met so far of a file with several hard links.
        self.links: dict[tuple[int, int], list[str]] = {}

    # -- the walk --------------------------------------------------------------------------------

    def walk(self, root_entries: list[os.DirEntry[str]]) -> Iterator[SourceFile]:
        stack: list[_Frame] = []
        try:
            rules: tuple[tuple[str, GitIgnoreSpec], ...] = ()
            exclude = self.ignore_files.read_file(".git/info/exclude")
            if exclude is not None:
                rules += (("", exclude),)
            rules += tuple(("", spec) for spec in self.ignore_files.files_of(self.root_fd, "", root_entries))
            try:
                info = os.fstat(self.root_fd)
                ancestors = frozenset({(info.st_dev, info.st_ino)})
            except OSError:
                ancestors = frozenset()
            stack.append(_Frame(root_entries, "", rules, ancestors, self.root_fd))
            while stack:
                frame = stack[-1]
                if frame.position >= len(frame.entries):
                    os.close(stack.pop().fd)
                    continue
                entry = frame.entries[frame.position]
                frame.position += 1
                found = self._visit(entry, frame)
                if isinstance(found, _Frame):
                    stack.append(found)
                elif found is not None:
                    self.stats.files += 1
                    self.stats.bytes += found.size
                    yield found
            for names in self.links.values():  # some of their links are outside the repository
                for name in names:
                    self.stats.record_skip(HARDLINK, name)
            self.links.clear()
        finally:
            for frame in stack:
                os.close(frame.fd)

    def _visit(self, entry: os.DirEntry[str], frame: _Frame) -> SourceFile | _Frame | None:
        name = entry.name
        relative = frame.prefix + name
        if not _is_utf8(name):
            self.stats.record_skip(UNDECODABLE_NAME, os.fsencode(relative).decode("utf-8", "replace"))
            return None
        try:
            is_symlink = entry.is_symlink()
            is_dir = not is_symlink and entry.is_dir(follow_symlinks=False)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        if is_dir:
            return self._enter_directory(entry, relative, frame)
        # A `.git` file is the pointer of a worktree or submodule checkout (a git source's run
        # indexes a worktree): version control, like a `.git` directory.
        if name == ".git" or self._ignored(relative, frame, is_dir=False):
            self.stats.record_skip(IGNORED, relative)
            return None
        if is_symlink:
            return self._symlink(name, relative, frame)
        try:
            listed = entry.stat(follow_symlinks=False)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        return self._regular_file(frame.fd, name, relative, listed, via_symlink=False)

    def _enter_directory(self, entry: os.DirEntry[str], relative: str, frame: _Frame) -> _Frame | None:
        name = entry.name
        verdict = self._extra_verdict(relative + "/")
        if verdict is True or (
            verdict is None
            and (name in DEFAULT_IGNORED_DIRECTORIES or self._ignored(relative, frame, is_dir=True))
        ):
            self.stats.record_skip(IGNORED, relative + "/")
            return None
        try:
            fd = safe_fs.open_directory(name, dir_fd=frame.fd)
        except OSError as error:
            # ELOOP/ENOTDIR: it was listed as a directory and is now a symlink or a file.
            swapped = error.errno in (errno.ELOOP, errno.ENOTDIR)
            self.stats.record_skip(CHANGED_DURING_WALK if swapped else UNREADABLE, relative + "/")
            return None
        keep = False
        try:
            info = os.fstat(fd)
            identity = (info.st_dev, info.st_ino)
            if identity in frame.ancestors:  # a bind mount of a directory above: a loop
                self.stats.record_skip(SYMLINK_DIRECTORY, relative + "/")
                return None
            entries = _sorted_entries(fd)
            names = {child.name for child in entries}
            if verdict is None and (
                not ENVIRONMENT_MARKERS.isdisjoint(names)
                or (name in BUILD_OUTPUT_DIRECTORIES and not is_source_package(names))
            ):
                self.stats.record_skip(IGNORED, relative + "/")
                return None
            rules = frame.rules
            if not names.isdisjoint(IGNORE_FILES):
                own = self.ignore_files.files_of(fd, relative + "/", entries)
                rules = (*rules, *((relative + "/", spec) for spec in own))
            keep = True
            return _Frame(entries, relative + "/", rules, frame.ancestors | {identity}, fd)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative + "/")
            return None
        finally:
            if not keep:
                os.close(fd)

    def _symlink(self, name: str, relative: str, frame: _Frame) -> SourceFile | None:
        """A symlink is followed only to a regular file inside the repository, looked up from the
        root's descriptor one directory at a time without following any further link."""
        try:
            target = os.readlink(name, dir_fd=frame.fd)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        inside = self._inside(frame.prefix, target)
        if inside is None:
            self.stats.record_skip(SYMLINK_OUTSIDE, relative)
            return None
        if inside == "":
            self.stats.record_skip(SYMLINK_DIRECTORY, relative)
            return None
        try:
            parent, last = safe_fs.open_beneath(self.root_fd, inside)
        except OSError:  # dangling, or a symlink on the way: not followed
            self.stats.record_skip(BROKEN_SYMLINK, relative)
            return None
        try:
            info = os.stat(last, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):  # a link to a link (or a loop): not followed
                self.stats.record_skip(BROKEN_SYMLINK, relative)
                return None
            if stat.S_ISDIR(info.st_mode):
                self.stats.record_skip(SYMLINK_DIRECTORY, relative)
                return None
            return self._regular_file(parent, last, relative, info, via_symlink=True)
        except OSError:
            self.stats.record_skip(BROKEN_SYMLINK, relative)
            return None
        finally:
            os.close(parent)

    def _inside(self, prefix: str, target: str) -> str | None:
        """The normalised path, relative to the root, that a link target names; "" for the root
        itself, None when it lies outside."""
        if target.startswith("/"):
            normalised = os.path.normpath(target)
            if normalised == self.root:
                return ""
            if not normalised.startswith(self.root_prefix):
                return None
            return normalised[len(self.root_prefix) :]
        normalised = os.path.normpath(prefix + target)
        if normalised == ".":
            return ""
        if normalised == ".." or normalised.startswith(("../", "/")):
            return None
        return normalised

    def _regular_file(
        self, dir_fd: int, name: str, relative: str, listed: os.stat_result, *, via_symlink: bool
    ) -> SourceFile | None:
        base = relative.rpartition("/")[2]
        dot = base.rfind(".")
        if dot > 0 and base[dot:].lower() in BINARY_EXTENSIONS:
            self.stats.record_skip(BINARY, relative)
            return None
        if not stat.S_ISREG(listed.st_mode):
            self.stats.record_skip(SPECIAL_FILE, relative)
            return None
        if listed.st_size > self.max_file_bytes:
            self.stats.record_skip(TOO_LARGE, relative)
            return None
        try:
            fd, info = safe_fs.open_regular(name, dir_fd=dir_fd, expect=listed)
        except safe_fs.NotRegular as swapped:
            mode = swapped.info.st_mode
            changed = stat.S_ISREG(mode) or stat.S_ISLNK(mode) or stat.S_ISDIR(mode)
            self.stats.record_skip(CHANGED_DURING_WALK if changed else SPECIAL_FILE, relative)
            return None
        except OSError as error:
            swapped_for_link = error.errno == errno.ELOOP
            self.stats.record_skip(CHANGED_DURING_WALK if swapped_for_link else UNREADABLE, relative)
            return None
        try:
            if info.st_nlink > 1 and not self._last_link(info, relative, via_symlink=via_symlink):
                return None
            if info.st_size > self.max_file_bytes:
                self.stats.record_skip(TOO_LARGE, relative)
                return None
            whole = self.read_contents(relative) if callable(self.read_contents) else self.read_contents
            data = safe_fs.read_limited(fd, self.max_file_bytes) if whole else os.read(fd, HEAD_BYTES)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        finally:
            os.close(fd)
        if data is None:  # grew past the limit since its fstat
            self.stats.record_skip(TOO_LARGE, relative)
            return None
        head = data[:HEAD_BYTES]
        if looks_binary(head):
            self.stats.record_skip(BINARY, relative)
            return None
        first_line = head.split(b"\n", 1)[0] if head.startswith(b"#!") else None
        return SourceFile(
            path=self.root_prefix + relative,
            relative_path=relative,
            size=len(data) if whole else info.st_size,
            language=language_for_path(relative, first_line),
            data=data if whole else None,
        )

    def _last_link(self, info: os.stat_result, relative: str, *, via_symlink: bool) -> bool:
        """The hard-link rule: a file with several links is read once, at the last of its names,
        and only when all of them were met inside the repository (a link to /etc/shadow has one
        name here and one outside, so it is never read)."""
        if via_symlink:
            self.stats.record_skip(HARDLINK, relative)
            return False
        key = (info.st_dev, info.st_ino)
        names = self.links.setdefault(key, [])
        names.append(relative)
        if len(names) < info.st_nlink:
            return False
        del self.links[key]
        for other in names[:-1]:
            self.stats.record_skip(HARDLINK, other)
        return True

    # -- ignore rules ------------------------------------------------------------------------------

    def _extra_verdict(self, path: str) -> bool | None:
        if self.extra is None:
            return None
        return self.extra.check_file(path).include

    def _ignored(self, relative: str, frame: _Frame, *, is_dir: bool) -> bool:
        """Whether gitignore rules, extra_ignores or the default file ignores exclude a path."""
        candidate = relative + "/" if is_dir else relative
        verdict = self._extra_verdict(candidate)
        if verdict is not None:
            return verdict
        if not is_dir:
            name = relative.rpartition("/")[2]
            if name in DEFAULT_IGNORED_FILES or name.endswith(DEFAULT_IGNORED_SUFFIXES):
                return True
        # The deepest .gitignore with a matching pattern decides, as in git.
        for prefix, spec in reversed(frame.rules):
            included = spec.check_file(candidate[len(prefix) :]).include
            if included is not None:
                return included
        return False


def _sorted_entries(directory_fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(directory_fd) as iterator:
        entries = list(iterator)
    entries.sort(key=_sort_key)
    return entries


def _sort_key(entry: os.DirEntry[str]) -> str:
    # A directory sorts as "name/" so that depth-first order equals sorted relative paths
    # ("a/b.txt" < "a/b/x": "." < "/").
    try:
        is_dir = entry.is_dir(follow_symlinks=False)
    except OSError:
        is_dir = False
    return entry.name + "/" if is_dir else entry.name


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # surrogate escapes stand for bytes that are not UTF-8
        return False
    return True
