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
"""

from __future__ import annotations

import codecs
import errno
import logging
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from mcp_server.core.errors import InvalidRepositoryPath
from mcp_server.indexer import safe_fs
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

HEAD_BYTES = 8192
# Ignore files: larger ones are not read; patterns past the cap or too complex are dropped (warned).
MAX_IGNORE_FILE_BYTES = 100_000
# Ignore files read at every level, in this order: .codebaseignore (gitignore syntax) is for rules
# that matter to the index but not to git, and wins over .gitignore where both match.
IGNORE_FILES = (".gitignore", ".codebaseignore")
MAX_IGNORE_PATTERNS = 1_000
MAX_PATTERN_CHARS = 256
MAX_STARS_PER_SEGMENT = 2
MAX_DOUBLE_STARS = 4
_STAR_RUN = re.compile(r"\*+")
_MAX_WARNINGS = 20
_EXAMPLES_PER_REASON = 5

# Directories that are never source: version control, caches, virtualenvs, dependency and
# build output of the common toolchains.
DEFAULT_IGNORED_DIRECTORIES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".bzr",
        "CVS",
        "_darcs",
        ".jj",
        "node_modules",
        "bower_components",
        ".pnpm-store",
        ".yarn",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".eggs",
        ".venv",
        "venv",
        ".direnv",
        ".next",
        ".nuxt",
        ".svelte-kit",
        ".parcel-cache",
        ".turbo",
        ".angular",
        ".gradle",
        ".idea",
        ".terraform",
        ".cache",
        "htmlcov",
    }
)
# Build-output names that are skipped unless the directory is a source package of that name
# (Python's build/__init__.py, Go's go/build): a name alone is not enough to drop source.
BUILD_OUTPUT_DIRECTORIES = frozenset({"build", "dist", "target"})
# Any directory holding one of these is an environment or a cache (pyvenv.cfg: virtualenvs of
# any name such as env/; conda-meta: conda environments; CACHEDIR.TAG: the cache directory spec).
_ENVIRONMENT_MARKERS = frozenset({"pyvenv.cfg", "conda-meta", "CACHEDIR.TAG"})

# Generated files: huge, and nobody searches them for how the code works.
DEFAULT_IGNORED_FILES = frozenset(
    {
        "package-lock.json",
        "npm-shrinkwrap.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "bun.lock",
        "bun.lockb",
        "Cargo.lock",
        "poetry.lock",
        "Pipfile.lock",
        "pdm.lock",
        "uv.lock",
        "composer.lock",
        "Gemfile.lock",
        "Podfile.lock",
        "pubspec.lock",
        "mix.lock",
        "flake.lock",
        "packages.lock.json",
        "go.sum",
        ".DS_Store",
    }
)
DEFAULT_IGNORED_SUFFIXES = (".min.js", ".min.css", ".min.mjs", ".js.map", ".css.map", ".map", ".svg")

BINARY_EXTENSIONS = frozenset(
    {
        # images
        ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".ico", ".icns", ".tif", ".tiff", ".webp",
        ".avif", ".heic", ".psd", ".xcf", ".raw", ".cr2", ".nef", ".svgz",
        # audio and video
        ".mp3", ".wav", ".ogg", ".oga", ".flac", ".aac", ".m4a", ".opus", ".mid", ".midi",
        ".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".wmv", ".flv", ".mpg", ".mpeg",
        # archives and packages
        ".zip", ".tar", ".gz", ".tgz", ".bz2", ".tbz2", ".xz", ".txz", ".zst", ".lz", ".lz4",
        ".lzma", ".7z", ".rar", ".jar", ".war", ".ear", ".aar", ".whl", ".egg", ".nupkg",
        ".deb", ".rpm", ".apk", ".ipa", ".dmg", ".iso", ".img", ".msi", ".cab", ".gem",
        # compiled code and objects
        ".exe", ".dll", ".so", ".dylib", ".a", ".lib", ".o", ".obj", ".ko", ".elf", ".bin",
        ".class", ".pyc", ".pyo", ".pyd", ".wasm", ".node", ".beam", ".dex", ".pdb", ".idb",
        ".ilk", ".exp", ".out", ".rlib", ".rmeta", ".gch", ".pch",
        # documents and fonts
        ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp",
        ".epub", ".ttf", ".otf", ".woff", ".woff2", ".eot",
        # data, databases, models
        ".sqlite", ".sqlite3", ".db", ".mdb", ".parquet", ".avro", ".orc", ".feather",
        ".arrow", ".npy", ".npz", ".pkl", ".pickle", ".joblib", ".h5", ".hdf5", ".onnx",
        ".pt", ".pth", ".safetensors", ".ckpt", ".tflite", ".pb", ".tfrecord", ".gguf",
        ".mo", ".swf", ".fla", ".blend", ".fbx", ".glb", ".stl", ".jks", ".keystore", ".p12",
        ".pfx", ".der",
    }
)  # fmt: skip

# Bytes that text files do not contain (besides \t \n \f \r, backspace and ESC).
_CONTROL_BYTES = bytes(b for b in range(32) if b not in (8, 9, 10, 12, 13, 27)) + b"\x7f"
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


def read_source_text(path: Path | str, *, max_bytes: int | None = None) -> str | None:
    """The text of a file, or None when it is gone, not a regular file, too large or binary.

    See ``read_source_bytes`` for the filesystem rules and ``decode_source`` for encodings.
    """
    data = read_source_bytes(path, max_bytes=max_bytes)
    return None if data is None else decode_source(data)


def read_source_bytes(path: Path | str, *, max_bytes: int | None = None) -> bytes | None:
    """The bytes of a regular file, or None when it is gone, not a regular file or too large.

    Never raises for filesystem reasons (files vanish or change between walking and reading)
    and never blocks on a FIFO swapped in after the walk.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if max_bytes is not None and info.st_size > max_bytes:
            return None
        limit = max_bytes + 1 if max_bytes is not None else None
        parts: list[bytes] = []
        size = 0
        while True:
            part = os.read(fd, 1 << 20 if limit is None else min(1 << 20, limit - size))
            if not part:
                break
            parts.append(part)
            size += len(part)
            if limit is not None and size >= limit:
                return None  # grew past the limit since it was listed
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(parts)


def decode_source(data: bytes) -> str | None:
    """Bytes to text, or None for binary data.

    * A byte-order mark decides (UTF-8, UTF-16, UTF-32).
    * A NUL byte, or more than 30% control bytes, means binary (as Perl's ``-B`` judges).
    * Valid UTF-8 is decoded as such. UTF-8 with a few stray bytes (at most 1% of the text
      replaced) is decoded with U+FFFD for them. Anything else is a legacy 8-bit encoding and is
      decoded as Latin-1: its ASCII (the code) stays exact, its accents become approximate, which
      beats dropping the file.
    """
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            return None if "\x00" in text else text
    if _looks_binary(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", "replace")
    if text.count("\ufffd") * 100 <= len(text):
        return text
    return data.decode("latin-1")


def _looks_binary(head: bytes) -> bool:
    if not head:
        return False
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False  # UTF-16 text is full of NUL bytes; decode_source handles it
    if b"\x00" in head:
        return True
    control = len(head) - len(head.translate(None, _CONTROL_BYTES))
    return control * 10 > len(head) * 3


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
        self.extra = self._compile(list(extra_ignores), "extra_ignores") if extra_ignores else None
        self.read_contents = read_contents
        # (device, inode) -> the names met so far of a file with several hard links.
        self.links: dict[tuple[int, int], list[str]] = {}

    # -- the walk --------------------------------------------------------------------------------

    def walk(self, root_entries: list[os.DirEntry[str]]) -> Iterator[SourceFile]:
        stack: list[_Frame] = []
        try:
            rules: tuple[tuple[str, GitIgnoreSpec], ...] = ()
            exclude = self._read_ignore_file(".git/info/exclude")
            if exclude is not None:
                rules += (("", exclude),)
            rules += tuple(("", spec) for spec in self._ignore_files_of(self.root_fd, "", root_entries))
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
        if self._ignored(relative, frame, is_dir=False):
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
                not _ENVIRONMENT_MARKERS.isdisjoint(names)
                or (name in BUILD_OUTPUT_DIRECTORIES and not _is_source_package(names))
            ):
                self.stats.record_skip(IGNORED, relative + "/")
                return None
            rules = frame.rules
            if not names.isdisjoint(IGNORE_FILES):
                own = self._ignore_files_of(fd, relative + "/", entries)
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
        if _looks_binary(head):
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

    def _ignore_files_of(
        self, dir_fd: int, prefix: str, entries: Iterable[os.DirEntry[str]]
    ) -> list[GitIgnoreSpec]:
        """The directory's .gitignore, then its .codebaseignore (which wins where both match)."""
        found = {child.name: child for child in entries if child.name in IGNORE_FILES}
        specs = []
        for name in IGNORE_FILES:
            child = found.get(name)
            if child is None:
                continue
            try:
                if not child.is_file(follow_symlinks=False):
                    continue  # like git, which does not follow a symlinked .gitignore
            except OSError:
                continue
            spec = self._ignore_spec(self._read_ignore_bytes(dir_fd, name, prefix + name), prefix + name)
            if spec is not None:
                specs.append(spec)
        return specs

    def _read_ignore_file(self, relative: str) -> GitIgnoreSpec | None:
        try:
            data = safe_fs.read_small_regular_file(self.root_fd, relative, limit=MAX_IGNORE_FILE_BYTES)
        except safe_fs.FileTooLarge as error:
            self.stats.warn(
                f"{relative} ignored: {error.size} bytes, over the {MAX_IGNORE_FILE_BYTES}-byte limit"
            )
            return None
        return self._ignore_spec(data, relative)

    def _read_ignore_bytes(self, dir_fd: int, name: str, shown: str) -> bytes | None:
        try:
            fd, info = safe_fs.open_regular(name, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if info.st_size > MAX_IGNORE_FILE_BYTES:
                self.stats.warn(
                    f"{shown} ignored: {info.st_size} bytes, over the {MAX_IGNORE_FILE_BYTES}-byte limit"
                )
                return None
            return safe_fs.read_limited(fd, MAX_IGNORE_FILE_BYTES)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _ignore_spec(self, data: bytes | None, shown: str) -> GitIgnoreSpec | None:
        if data is None:
            return None
        lines = data.decode("utf-8", "replace").splitlines()
        return self._compile(lines, shown) if lines else None

    def _compile(self, lines: list[str], shown: str) -> GitIgnoreSpec:
        """Patterns whose matching could cost more than a few microseconds a path (pathspec compiles
        them to backtracking regular expressions: `*a*a*a*a*a*b` took a minute a path) are dropped
        with a warning naming them, and so are patterns past the first MAX_IGNORE_PATTERNS."""
        kept: list[str] = []
        for line in lines:
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            if len(kept) >= MAX_IGNORE_PATTERNS:
                self.stats.warn(f"{shown}: patterns after the first {MAX_IGNORE_PATTERNS} were ignored")
                break
            if _too_complex(pattern):
                self.stats.warn(f"{shown}: pattern {pattern[:80]!r} ignored: too complex to match safely")
                continue
            kept.append(line)
        return _compile(kept)


def _too_complex(pattern: str) -> bool:
    if len(pattern) > MAX_PATTERN_CHARS:
        return True
    segments = pattern.split("/")
    if sum(1 for segment in segments if segment == "**") > MAX_DOUBLE_STARS:
        return True
    return any(
        segment != "**" and len(_STAR_RUN.findall(segment)) > MAX_STARS_PER_SEGMENT for segment in segments
    )


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


def _is_source_package(names: set[str]) -> bool:
    return "__init__.py" in names or any(name.endswith(".go") for name in names)


def _compile(lines: Iterable[str]) -> GitIgnoreSpec:
    lines = list(lines)
    try:
        return GitIgnoreSpec.from_lines(lines)
    except ValueError:
        # One malformed line must not void the whole file: git skips it and so do we.
        good = []
        for line in lines:
            try:
                GitIgnoreSpec.from_lines([line])
            except ValueError:
                continue
            good.append(line)
        return GitIgnoreSpec.from_lines(good)
