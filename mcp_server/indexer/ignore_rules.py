"""What the walker leaves out: ignore files (their limits and safe compiling) and the defaults.

Ignore files are untrusted input: they are read only when regular and small, at most
MAX_IGNORE_PATTERNS patterns are kept, and patterns whose matching could backtrack without bound
are dropped with a warning (pathspec compiles them to regular expressions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable

from pathspec import GitIgnoreSpec

from mcp_server.indexer import safe_fs

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
ENVIRONMENT_MARKERS = frozenset({"pyvenv.cfg", "conda-meta", "CACHEDIR.TAG"})

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


def too_complex(pattern: str) -> bool:
    if len(pattern) > MAX_PATTERN_CHARS:
        return True
    segments = pattern.split("/")
    if sum(1 for segment in segments if segment == "**") > MAX_DOUBLE_STARS:
        return True
    return any(
        segment != "**" and len(_STAR_RUN.findall(segment)) > MAX_STARS_PER_SEGMENT for segment in segments
    )


def is_source_package(names: set[str]) -> bool:
    return "__init__.py" in names or any(name.endswith(".go") for name in names)


def compile_lines(lines: Iterable[str]) -> GitIgnoreSpec:
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


class IgnoreFiles:
    """Reads and compiles one repository's ignore files under the limits above; what it drops it
    reports through `warn`, naming the file and the pattern."""

    def __init__(self, root_fd: int, warn: Callable[[str], None]) -> None:
        self.root_fd = root_fd
        self.warn = warn

    def files_of(self, dir_fd: int, prefix: str, entries: Iterable[os.DirEntry[str]]) -> list[GitIgnoreSpec]:
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
            spec = self._spec(self._read_bytes(dir_fd, name, prefix + name), prefix + name)
            if spec is not None:
                specs.append(spec)
        return specs

    def read_file(self, relative: str) -> GitIgnoreSpec | None:
        try:
            data = safe_fs.read_small_regular_file(self.root_fd, relative, limit=MAX_IGNORE_FILE_BYTES)
        except safe_fs.FileTooLarge as error:
            self.warn(f"{relative} ignored: {error.size} bytes, over the {MAX_IGNORE_FILE_BYTES}-byte limit")
            return None
        return self._spec(data, relative)

    def _read_bytes(self, dir_fd: int, name: str, shown: str) -> bytes | None:
        try:
            fd, info = safe_fs.open_regular(name, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if info.st_size > MAX_IGNORE_FILE_BYTES:
                self.warn(
                    f"{shown} ignored: {info.st_size} bytes, over the {MAX_IGNORE_FILE_BYTES}-byte limit"
                )
                return None
            return safe_fs.read_limited(fd, MAX_IGNORE_FILE_BYTES)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _spec(self, data: bytes | None, shown: str) -> GitIgnoreSpec | None:
        if data is None:
            return None
        lines = data.decode("utf-8", "replace").splitlines()
        return self.compile(lines, shown) if lines else None

    def compile(self, lines: list[str], shown: str) -> GitIgnoreSpec:
        """Patterns whose matching could cost more than a few microseconds a path (pathspec compiles
        them to backtracking regular expressions: `*a*a*a*a*a*b` took a minute a path) are dropped
        with a warning naming them, and so are patterns past the first MAX_IGNORE_PATTERNS."""
        kept: list[str] = []
        for line in lines:
            pattern = line.strip()
            if not pattern or pattern.startswith("#"):
                continue
            if len(kept) >= MAX_IGNORE_PATTERNS:
                self.warn(f"{shown}: patterns after the first {MAX_IGNORE_PATTERNS} were ignored")
                break
            if too_complex(pattern):
                self.warn(f"{shown}: pattern {pattern[:80]!r} ignored: too complex to match safely")
                continue
            kept.append(line)
        return compile_lines(kept)
