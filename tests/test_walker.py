"""The repository walker on real temporary directories: ignores, binaries, sizes, links, odd files."""

from __future__ import annotations

import os
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import unprivileged

from mcp_server.core.errors import InvalidRepositoryPath
from mcp_server.indexer import walker
from mcp_server.indexer.file_reading import decode_source, read_source_text
from mcp_server.indexer.walker import WalkStats, walk_repository

pytestmark = pytest.mark.timeout(30)

MAX = 100_000


def write(root: Path, relative: str, content: str | bytes = "x = 1\n") -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def walk(root: Path, extra_ignores: Sequence[str] = ()) -> tuple[list[str], WalkStats]:
    stats = WalkStats()
    sources = walk_repository(root, max_file_bytes=MAX, extra_ignores=extra_ignores, stats=stats)
    return [source.relative_path for source in sources], stats


# -- ignore rules ---------------------------------------------------------------------------------


def test_root_gitignore_ignores_files_and_directories(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\nsecret/\n")
    write(tmp_path, "app.py")
    write(tmp_path, "debug.log", "log\n")
    write(tmp_path, "secret/keys.py")
    write(tmp_path, "src/deep/trace.log", "log\n")
    files, stats = walk(tmp_path)
    assert files == [".gitignore", "app.py"]
    assert stats.skipped[walker.IGNORED] == 3


def test_nested_gitignore_applies_below_its_directory_only(tmp_path: Path) -> None:
    write(tmp_path, "pkg/.gitignore", "generated.py\n")
    write(tmp_path, "pkg/generated.py")
    write(tmp_path, "pkg/sub/generated.py")
    write(tmp_path, "generated.py")
    files, _ = walk(tmp_path)
    assert files == ["generated.py", "pkg/.gitignore"]


def test_negation_in_a_nested_gitignore_reincludes_a_file(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.txt\n")
    write(tmp_path, "docs/.gitignore", "!keep.txt\n")
    write(tmp_path, "docs/keep.txt", "kept\n")
    write(tmp_path, "docs/drop.txt", "dropped\n")
    write(tmp_path, "keep.txt", "root one stays ignored\n")
    files, _ = walk(tmp_path)
    assert files == [".gitignore", "docs/.gitignore", "docs/keep.txt"]


def test_anchored_pattern_matches_only_at_its_own_level(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "/config.py\n")
    write(tmp_path, "config.py")
    write(tmp_path, "app/config.py")
    files, _ = walk(tmp_path)
    assert files == [".gitignore", "app/config.py"]


def test_directory_only_pattern_does_not_ignore_a_file_of_that_name(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "cache/\n")
    write(tmp_path, "cache/data.py")
    write(tmp_path, "lib/cache", "a file named cache\n")
    files, _ = walk(tmp_path)
    assert files == [".gitignore", "lib/cache"]


def test_codebaseignore_adds_rules_at_every_level_and_wins_over_the_gitignore_beside_it(
    tmp_path: Path,
) -> None:
    write(tmp_path, ".gitignore", "*.gen.py\n")
    write(tmp_path, ".codebaseignore", "fixtures/\n!keep.gen.py\n")
    write(tmp_path, "keep.gen.py")
    write(tmp_path, "drop.gen.py")
    write(tmp_path, "fixtures/big.py")
    write(tmp_path, "pkg/.codebaseignore", "local_only.py\n")
    write(tmp_path, "pkg/local_only.py")
    write(tmp_path, "pkg/mod.py")
    write(tmp_path, "local_only.py")
    files, _ = walk(tmp_path)
    assert files == [
        ".codebaseignore",
        ".gitignore",
        "keep.gen.py",
        "local_only.py",
        "pkg/.codebaseignore",
        "pkg/mod.py",
    ]


def test_git_info_exclude_is_honoured(tmp_path: Path) -> None:
    write(tmp_path, ".git/info/exclude", "local_notes.md\n")
    write(tmp_path, "local_notes.md", "notes\n")
    write(tmp_path, "main.py")
    files, _ = walk(tmp_path)
    assert files == ["main.py"]


def test_default_ignores_skip_tool_directories_virtualenvs_and_lock_files(tmp_path: Path) -> None:
    for relative in (
        ".git/config",
        "node_modules/left-pad/index.js",
        "__pycache__/mod.cpython-311.py",
        ".venv/lib/site.py",
        "env/pyvenv.cfg",
        "env/lib/site.py",
        "dist/bundle.js",
        "target/debug/build.rs",
        ".mypy_cache/x.json",
        "package-lock.json",
        "yarn.lock",
        "static/app.min.js",
        "static/app.js.map",
    ):
        write(tmp_path, relative, "x\n")
    write(tmp_path, "src/main.py")
    write(tmp_path, "environment/settings.py")  # "env" only when it is a virtualenv
    files, stats = walk(tmp_path)
    assert files == ["environment/settings.py", "src/main.py"]
    assert stats.skipped[walker.IGNORED] == 12


def test_a_git_file_of_a_worktree_or_submodule_is_skipped_like_a_git_directory(tmp_path: Path) -> None:
    write(tmp_path, ".git", "gitdir: /home/me/cache/repo.git/worktrees/job\n")
    write(tmp_path, "vendor/lib/.git", "gitdir: ../../.git/modules/lib\n")
    write(tmp_path, "vendor/lib/lib.py")
    write(tmp_path, "app.py")
    files, stats = walk(tmp_path)
    assert files == ["app.py", "vendor/lib/lib.py"]
    assert stats.skipped[walker.IGNORED] == 2


def test_a_source_package_named_build_is_kept(tmp_path: Path) -> None:
    write(tmp_path, "src/build/__init__.py")
    write(tmp_path, "go/build/build.go", "package build\n")
    write(tmp_path, "build/output.txt", "artifact\n")
    files, _ = walk(tmp_path)
    assert files == ["go/build/build.go", "src/build/__init__.py"]


def test_extra_ignores_add_patterns_and_can_bring_back_a_default_ignore(tmp_path: Path) -> None:
    write(tmp_path, "build/gen.py")
    write(tmp_path, "fixtures/big.json", "{}\n")
    write(tmp_path, "main.py")
    files, _ = walk(tmp_path, extra_ignores=["fixtures/", "!build/"])
    assert files == ["build/gen.py", "main.py"]


# -- binaries and sizes ---------------------------------------------------------------------------


def test_files_with_a_nul_byte_or_a_binary_extension_are_skipped_as_binary(tmp_path: Path) -> None:
    write(tmp_path, "data.dat", b"abc\x00def")
    write(tmp_path, "logo.png", "not even a png\n")
    write(tmp_path, "text.dat", "plain text\n")
    files, stats = walk(tmp_path)
    assert files == ["text.dat"]
    assert stats.skipped[walker.BINARY] == 2


def test_utf16_text_with_a_byte_order_mark_is_not_binary(tmp_path: Path) -> None:
    path = write(tmp_path, "notes.txt", "h\u00e9llo\n".encode("utf-16"))
    files, _ = walk(tmp_path)
    assert files == ["notes.txt"]
    assert read_source_text(path) == "h\u00e9llo\n"


def test_a_sparse_file_over_the_limit_is_skipped_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.py"
    with open(path, "wb") as handle:
        handle.truncate(2 * 1024**3)  # 2 GiB, sparse: reading it would take seconds
    write(tmp_path, "small.py")
    started = time.perf_counter()
    files, stats = walk(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert files == ["small.py"]
    assert stats.skipped[walker.TOO_LARGE] == 1
    assert stats.examples[walker.TOO_LARGE] == ["huge.py"]


def test_source_files_carry_size_language_and_absolute_path(tmp_path: Path) -> None:
    write(tmp_path, "pkg/mod.py", "print(1)\n")
    write(tmp_path, "scripts/run", "#!/usr/bin/env bash\necho hi\n")
    write(tmp_path, "README", "read me\n")
    sources = {s.relative_path: s for s in walk_repository(tmp_path, max_file_bytes=MAX)}
    assert sources["pkg/mod.py"].language == "python"
    assert sources["pkg/mod.py"].size == 9
    assert Path(sources["pkg/mod.py"].path) == tmp_path.resolve() / "pkg" / "mod.py"
    assert sources["scripts/run"].language == "bash"
    assert sources["README"].language == "text"


# -- symlinks and special files -------------------------------------------------------------------


def test_symlinks_that_leave_the_repository_are_not_followed(tmp_path: Path) -> None:
    repo, outside = tmp_path / "repo", tmp_path / "outside"
    write(outside, "secret.py", "TOKEN = 1\n")
    write(repo, "main.py")
    (repo / "link_file.py").symlink_to(outside / "secret.py")
    (repo / "link_dir").symlink_to(outside, target_is_directory=True)
    files, stats = walk(repo)
    assert files == ["main.py"]
    assert stats.skipped[walker.SYMLINK_OUTSIDE] == 2


def test_a_file_symlink_inside_the_repository_is_followed(tmp_path: Path) -> None:
    write(tmp_path, "real.py")
    (tmp_path / "alias.py").symlink_to("real.py")
    files, _ = walk(tmp_path)
    assert files == ["alias.py", "real.py"]


def test_directory_symlinks_are_not_followed_even_inside_the_repository(tmp_path: Path) -> None:
    write(tmp_path, "pkg/mod.py")
    (tmp_path / "pkg_alias").symlink_to("pkg", target_is_directory=True)
    files, stats = walk(tmp_path)
    assert files == ["pkg/mod.py"]
    assert stats.skipped[walker.SYMLINK_DIRECTORY] == 1


def test_symlink_loops_and_dangling_links_end_the_walk_quickly(tmp_path: Path) -> None:
    write(tmp_path, "main.py")
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "dangling").symlink_to("missing.py")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)
    files, stats = walk(tmp_path)
    assert files == ["main.py"]
    assert stats.skipped[walker.BROKEN_SYMLINK] == 3
    assert stats.skipped[walker.SYMLINK_DIRECTORY] == 1


@pytest.mark.timeout(10)
def test_a_fifo_is_skipped_without_being_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")  # opening it for reading would block forever
    write(tmp_path, "main.py")
    files, stats = walk(tmp_path)
    assert files == ["main.py"]
    assert stats.skipped[walker.SPECIAL_FILE] == 1
    assert read_source_text(tmp_path / "pipe.py") is None


def test_a_unix_socket_is_skipped_as_a_special_file(tmp_path: Path) -> None:
    import socket

    path = tmp_path / "s.sock"
    if len(os.fsencode(path)) > 100:
        pytest.skip("socket path too long for AF_UNIX")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(os.fspath(path))
        files, stats = walk(tmp_path)
    assert files == []
    assert stats.skipped[walker.SPECIAL_FILE] == 1


def test_unreadable_directories_and_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    write(tmp_path, "locked/inside.py")
    write(tmp_path, "private.py")
    write(tmp_path, "main.py")
    (tmp_path / "locked").chmod(0)
    (tmp_path / "private.py").chmod(0)
    # In a child without the capability to read past file modes (the tests run as root in CI).
    code = f"""
from pathlib import Path
from mcp_server.indexer import walker
stats = walker.WalkStats()
sources = walker.walk_repository(Path({str(tmp_path)!r}), max_file_bytes={MAX}, stats=stats)
print(sorted(source.relative_path for source in sources))
print(stats.skipped[walker.UNREADABLE])
"""
    try:
        result = unprivileged.run_python(code)
    finally:
        (tmp_path / "locked").chmod(0o755)
        (tmp_path / "private.py").chmod(0o644)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['main.py']", "2"]


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses names that are not UTF-8")
def test_names_that_are_not_utf8_are_skipped(tmp_path: Path) -> None:
    os.makedirs(os.path.join(os.fsencode(tmp_path), b"dir\xff"))
    with open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.py"), "w") as handle:
        handle.write("x = 1\n")
    write(tmp_path, "main.py")
    files, stats = walk(tmp_path)
    assert files == ["main.py"]
    assert stats.skipped[walker.UNDECODABLE_NAME] == 2


# -- order, errors, speed -------------------------------------------------------------------------


def test_files_come_out_sorted_by_relative_path(tmp_path: Path) -> None:
    for relative in ("b.py", "a/b.py", "a.py", "a/b/c.py", "a/b.txt", "A.py", "a-b.py"):
        write(tmp_path, relative)
    files, _ = walk(tmp_path)
    assert files == sorted(files)
    assert files == walk(tmp_path)[0]


def test_walking_is_lazy_and_lists_a_directory_only_when_it_gets_there(tmp_path: Path) -> None:
    write(tmp_path, "a.py")
    write(tmp_path, "sub/b.py")
    iterator = walk_repository(tmp_path, max_file_bytes=MAX)
    assert next(iterator).relative_path == "a.py"
    write(tmp_path, "sub/c.py")  # sub/ has not been listed yet, so the walk sees the new file
    assert [s.relative_path for s in iterator] == ["sub/b.py", "sub/c.py"]


def test_a_root_that_is_not_a_directory_is_an_invalid_repository_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidRepositoryPath):
        walk_repository(tmp_path / "missing", max_file_bytes=MAX)
    with pytest.raises(InvalidRepositoryPath):
        walk_repository(write(tmp_path, "file.py"), max_file_bytes=MAX)


@pytest.mark.timeout(120)
def test_the_python_standard_library_walks_in_seconds() -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    list(walk_repository(stdlib, max_file_bytes=1_000_000))  # warm the directory cache
    started = time.perf_counter()
    stats = WalkStats()
    count = sum(1 for _ in walk_repository(stdlib, max_file_bytes=1_000_000, stats=stats))
    elapsed = time.perf_counter() - started
    assert count > 1000
    assert elapsed < 20, f"{count} files in {elapsed:.1f}s"


# -- reading --------------------------------------------------------------------------------------


def test_read_source_text_returns_none_for_vanished_files_and_directories(tmp_path: Path) -> None:
    assert read_source_text(tmp_path / "gone.py") is None
    assert read_source_text(tmp_path) is None


def test_read_source_text_refuses_a_file_that_grew_past_the_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "grown.py", "x" * 100)
    assert read_source_text(path, max_bytes=99) is None
    assert read_source_text(path, max_bytes=100) == "x" * 100


def test_decoding_keeps_utf8_and_tolerates_a_few_stray_bytes() -> None:
    assert decode_source("na\u00efve = 1\n".encode()) == "na\u00efve = 1\n"
    assert decode_source(b"\xef\xbb\xbfx = 1\n") == "x = 1\n"
    mostly_utf8 = ("a" * 500).encode() + b"\xff" + "\u00e9".encode()
    assert decode_source(mostly_utf8) == "a" * 500 + "\ufffd\u00e9"


def test_decoding_falls_back_to_latin1_for_legacy_8bit_text() -> None:
    legacy = "# R\u00e9sum\u00e9 \u00e0 la fran\u00e7aise\n".encode("latin-1")
    assert decode_source(legacy) == "# R\u00e9sum\u00e9 \u00e0 la fran\u00e7aise\n"


def test_decoding_rejects_binary_data() -> None:
    assert decode_source(b"text\x00more") is None
    assert decode_source(bytes(range(1, 32)) * 10) is None
