"""Find the files of a repository worth indexing, streaming, and say why the others were skipped.

A repository is untrusted input. The walker therefore:

* never leaves the repository: directory symlinks are not followed at all (this also rules out
  symlink loops), file symlinks only when they resolve inside the root;
* never opens anything but regular files: FIFOs, sockets and devices are skipped from the
  directory entry's type (opening a FIFO blocks), and files are opened non-blocking and checked
  again with fstat, in case one was swapped between listing and opening;
* never reads a file over the size limit (the decision uses the stat size, so a sparse
  2 GB file costs one lstat) and reads at most 8 KiB of the others to spot binaries;
* turns every filesystem error on an entry into a skip with a reason, never an exception.

What is skipped: ``.gitignore`` rules at every level (nested files, negations, anchored and
directory-only patterns, via pathspec's GitIgnoreSpec) and ``.git/info/exclude``; the default
ignores below (version-control and tool directories, virtualenvs, build output, lock files,
minified and source-map files); binaries by extension or content; names that are not UTF-8.
``extra_ignores`` are gitignore lines that win over all of these, so ``!build/`` brings a
default-ignored directory back.

The order is deterministic: files come out sorted by relative path (code-point order).
"""

from __future__ import annotations

import codecs
import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pathspec import GitIgnoreSpec

from mcp_server.core.errors import InvalidRepositoryPath
from mcp_server.indexer.languages import language_for_path
from mcp_server.indexer.types import SourceFile

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
)

HEAD_BYTES = 8192
_MAX_GITIGNORE_BYTES = 1 << 20
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

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

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
) -> Iterator[SourceFile]:
    """Yield the indexable files under ``root``, sorted by relative path; see the module doc.

    Raises InvalidRepositoryPath when ``root`` is not a readable directory. Paths in the result
    are under the root with its symlinks resolved.
    """
    root_text = os.path.realpath(root)
    if not os.path.isdir(root_text):
        raise InvalidRepositoryPath(f"{root} is not a directory")
    try:
        root_entries = _sorted_entries(root_text)
    except OSError as error:
        raise InvalidRepositoryPath(f"{root} cannot be read: {error.strerror}") from error
    walker = _Walker(root_text, max_file_bytes, extra_ignores, stats if stats is not None else WalkStats())
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
    position: int = 0


class _Walker:
    def __init__(
        self, root: str, max_file_bytes: int, extra_ignores: Sequence[str], stats: WalkStats
    ) -> None:
        self.root = root
        self.root_prefix = root.rstrip(os.sep) + os.sep
        self.max_file_bytes = max_file_bytes
        self.extra = _compile(extra_ignores) if extra_ignores else None
        self.stats = stats

    # -- the walk --------------------------------------------------------------------------------

    def walk(self, root_entries: list[os.DirEntry[str]]) -> Iterator[SourceFile]:
        rules: tuple[tuple[str, GitIgnoreSpec], ...] = ()
        exclude = _read_ignore_file(os.path.join(self.root, ".git", "info", "exclude"))
        if exclude is not None:
            rules += (("", exclude),)
        own = self._gitignore_of(self.root, root_entries)
        if own is not None:
            rules += (("", own),)
        try:
            info = os.stat(self.root)
            ancestors = frozenset({(info.st_dev, info.st_ino)})
        except OSError:
            ancestors = frozenset()
        stack = [_Frame(root_entries, "", rules, ancestors)]
        while stack:
            frame = stack[-1]
            if frame.position >= len(frame.entries):
                stack.pop()
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

    def _visit(self, entry: os.DirEntry[str], frame: _Frame) -> SourceFile | _Frame | None:
        name = entry.name
        relative = frame.prefix + name
        if not _is_utf8(name):
            self.stats.record_skip(UNDECODABLE_NAME, os.fsencode(relative).decode("utf-8", "replace"))
            return None
        try:
            is_symlink = entry.is_symlink()
            is_dir = not is_symlink and entry.is_dir(follow_symlinks=False)
            is_file = not is_symlink and not is_dir and entry.is_file(follow_symlinks=False)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        if is_dir:
            return self._enter_directory(entry, relative, frame)
        if self._ignored(relative, frame, is_dir=False):
            self.stats.record_skip(IGNORED, relative)
            return None
        if is_symlink:
            return self._symlink(entry, relative)
        if not is_file:
            self.stats.record_skip(SPECIAL_FILE, relative)
            return None
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        return self._regular_file(entry.path, relative, size)

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
            info = entry.stat(follow_symlinks=False)
            identity = (info.st_dev, info.st_ino)
            if identity in frame.ancestors:  # a bind mount of a directory above: a loop
                self.stats.record_skip(SYMLINK_DIRECTORY, relative + "/")
                return None
            entries = _sorted_entries(entry.path)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative + "/")
            return None
        names = {child.name for child in entries}
        if verdict is None and (
            not _ENVIRONMENT_MARKERS.isdisjoint(names)
            or (name in BUILD_OUTPUT_DIRECTORIES and not _is_source_package(names))
        ):
            self.stats.record_skip(IGNORED, relative + "/")
            return None
        rules = frame.rules
        if ".gitignore" in names:
            spec = self._gitignore_of(entry.path, entries)
            if spec is not None:
                rules = (*rules, (relative + "/", spec))
        return _Frame(entries, relative + "/", rules, frame.ancestors | {identity})

    def _symlink(self, entry: os.DirEntry[str], relative: str) -> SourceFile | None:
        target = os.path.realpath(entry.path)
        if target != self.root and not target.startswith(self.root_prefix):
            self.stats.record_skip(SYMLINK_OUTSIDE, relative)
            return None
        try:
            info = os.stat(entry.path)
        except OSError:  # dangling, a loop, or a component we may not read
            self.stats.record_skip(BROKEN_SYMLINK, relative)
            return None
        if stat.S_ISDIR(info.st_mode):
            self.stats.record_skip(SYMLINK_DIRECTORY, relative)
            return None
        if not stat.S_ISREG(info.st_mode):
            self.stats.record_skip(SPECIAL_FILE, relative)
            return None
        return self._regular_file(entry.path, relative, info.st_size)

    def _regular_file(self, path: str, relative: str, size: int) -> SourceFile | None:
        name = relative.rpartition("/")[2]
        dot = name.rfind(".")
        if dot > 0 and name[dot:].lower() in BINARY_EXTENSIONS:
            self.stats.record_skip(BINARY, relative)
            return None
        if size > self.max_file_bytes:
            self.stats.record_skip(TOO_LARGE, relative)
            return None
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since it was listed
                self.stats.record_skip(SPECIAL_FILE, relative)
                return None
            head = os.read(fd, HEAD_BYTES)
        except OSError:
            self.stats.record_skip(UNREADABLE, relative)
            return None
        finally:
            os.close(fd)
        if _looks_binary(head):
            self.stats.record_skip(BINARY, relative)
            return None
        first_line = head.split(b"\n", 1)[0] if head.startswith(b"#!") else None
        return SourceFile(
            path=path,
            relative_path=relative,
            size=size,
            language=language_for_path(relative, first_line),
        )

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

    def _gitignore_of(self, directory: str, entries: Iterable[os.DirEntry[str]]) -> GitIgnoreSpec | None:
        for child in entries:
            if child.name == ".gitignore":
                try:
                    if not child.is_file(follow_symlinks=False):
                        return None  # like git, which does not follow a symlinked .gitignore
                except OSError:
                    return None
                return _read_ignore_file(os.path.join(directory, ".gitignore"))
        return None


def _sorted_entries(directory: str) -> list[os.DirEntry[str]]:
    with os.scandir(directory) as iterator:
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


def _read_ignore_file(path: str) -> GitIgnoreSpec | None:
    try:
        with open(path, "rb") as handle:
            data = handle.read(_MAX_GITIGNORE_BYTES)
    except OSError:
        return None
    lines = data.decode("utf-8", "replace").splitlines()
    return _compile(lines) if lines else None


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
