"""Bad input 6 and 7: a repository is untrusted input.

Paths inside it (symlinks out of it, devices, FIFOs, sockets, unreadable or undecodable names, a
200-level tree) and files in it (binaries with text extensions, invalid UTF-8, multi-megabyte
single-line files, a 2 GB sparse file, files that change or vanish during the run) never hang,
crash or fail a run: the run completes and indexes the rest, and nothing outside the repository
is read.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from fake_embedding_server import FakeEmbeddingServer
from reliability.support import (
    TERMINAL,
    lexical_hits,
    many_functions,
    service,
    wait_for,
    wait_for_status,
    write_repo,
)

from mcp_server.indexer.walker import WalkStats, walk_repository

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

IS_ROOT = os.geteuid() == 0
MAX_FILE_BYTES = 5_000_000
DEPTH = 200


def _minified(marker: str, size: int) -> str:
    """One line of `size` characters of varied identifiers, like a minified bundle."""
    parts, total, i = [marker], len(marker), 0
    while total < size:
        part = f"var q{i:x}zv=w.k{(i * 7919) % 1000003:x}j(q{i:x}zv,{i});"
        parts.append(part)
        total += len(part)
        i += 1
    return "".join(parts)[:size]


def _hostile_repository(root: Path, outside: Path) -> Path:
    outside.mkdir()
    (outside / "secret.py").write_text("OUTSIDESECRET = 'never index me'\n")
    write_repo(
        root,
        {
            "good.py": "def wellbehaved():\n    return 'goodmarker'\n",
            # Binary content behind a text extension, and a legacy 8-bit encoding.
            "elf.py": b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64,
            "latin1.py": "# caf\xe9 latinmarker\ndef menu():\n    return 'cr\xe8me br\xfbl\xe9e'\n".encode(
                "latin-1"
            ),
            "broken_utf8.py": b"def brokenmarker():\n    return '\xff\xfe\xc3\x28 ok'\n",
            # Minified single-line files under and over CODEBASE_MAX_FILE_BYTES.
            "bundle.js": _minified("minifiedundermarker;", 3_000_000),
            "huge_bundle.js": _minified("minifiedovermarker;", MAX_FILE_BYTES + 100_000),
        },
    )
    with open(root / "sparse.py", "wb") as handle:  # 2 GB, no blocks on disk
        handle.truncate(2 * 1024**3)
    # Symlinks: out of the repository (file and directory), inside it, dangling, a loop.
    (root / "escape.py").symlink_to(outside / "secret.py")
    (root / "escape_dir").symlink_to(outside)
    (root / "etc_passwd.py").symlink_to("/etc/passwd")
    (root / "inside_link.py").symlink_to(root / "good.py")
    (root / "dangling.py").symlink_to(root / "nowhere.py")
    (root / "loop").symlink_to(root)
    # Special files: opening a FIFO blocks, reading a device never ends.
    os.mkfifo(root / "pipe.py")
    if IS_ROOT:
        os.mknod(root / "zero.py", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(root / "sock.py"))
    server.close()
    # Names: not UTF-8, with a line break.
    with open(os.path.join(os.fsencode(root), b"latin\xe9name.py"), "wb") as handle:
        handle.write(b"def undecodablename():\n    return 1\n")
    (root / "new\nline.py").write_text("def newlinename():\n    return 'newlinemarker'\n")
    # A very deep tree.
    deep = root.joinpath(*["d"] * DEPTH)
    deep.mkdir(parents=True)
    (deep / "bottom.py").write_text("def deepest():\n    return 'deepestmarker'\n")
    # An unreadable directory (root reads it anyway).
    locked = root / "locked"
    locked.mkdir()
    (locked / "hidden.py").write_text("def lockedaway():\n    return 'lockedmarker'\n")
    locked.chmod(0)
    return root


@pytest.fixture
def hostile(tmp_path: Path) -> Any:
    root = _hostile_repository(tmp_path / "repo", tmp_path / "outside")
    yield root
    (root / "locked").chmod(0o755)


def test_the_walker_skips_what_it_must_and_never_blocks(hostile: Path) -> None:
    stats = WalkStats()
    began = time.monotonic()
    found = {f.relative_path for f in walk_repository(hostile, max_file_bytes=MAX_FILE_BYTES, stats=stats)}
    elapsed = time.monotonic() - began
    assert elapsed < 5, f"the walk took {elapsed:.1f} s"
    assert {"good.py", "latin1.py", "broken_utf8.py", "bundle.js", "inside_link.py", "new\nline.py"} <= found
    assert "/".join(["d"] * DEPTH) + "/bottom.py" in found
    never = {"elf.py", "huge_bundle.js", "sparse.py", "escape.py", "etc_passwd.py", "dangling.py", "pipe.py"}
    never |= {"zero.py", "sock.py"}
    assert not never & found
    assert not any(p.startswith(("escape_dir", "loop")) for p in found)
    assert stats.skipped["too_large"] == 2  # the sparse file and the bundle over the limit
    assert stats.skipped["symlink_outside"] == 3
    assert stats.skipped["special_file"] == (3 if IS_ROOT else 2)
    assert stats.skipped["undecodable_name"] == 1
    assert stats.skipped["binary"] == 1
    if not IS_ROOT:
        assert stats.skipped["unreadable"] == 1 and "locked/hidden.py" not in found


def test_an_index_run_over_a_hostile_repository_completes_and_indexes_the_rest(
    monkeypatch: pytest.MonkeyPatch, settings: Any, hostile: Path
) -> None:
    monkeypatch.setenv("CODEBASE_MAX_FILE_BYTES", str(MAX_FILE_BYTES))
    svc = service()
    began = time.monotonic()
    job = svc.start_indexing(str(hostile), project_id="hostile")["job_id"]
    final = wait_for_status(svc, job, TERMINAL, timeout=60)
    print(
        f"\nbad input 6/7: hostile repository indexed in {time.monotonic() - began:.1f} s: "
        f"{final['progress_message']}"
    )
    assert final["status"] == "completed", final["error_message"]
    for marker in (
        "goodmarker",
        "latinmarker",
        "brokenmarker",
        "deepestmarker",
        "newlinemarker",
    ):
        assert lexical_hits(svc, marker, "hostile"), f"{marker} should be searchable"
    # Minified files are skipped whatever their size: their one line would be one giant chunk.
    assert "minified" in final["progress_message"]
    for marker in ("OUTSIDESECRET", "minifiedundermarker", "minifiedovermarker", "undecodablename"):
        assert not lexical_hits(svc, marker, "hostile"), f"{marker} must not be indexed"
    assert not lexical_hits(svc, "root", "hostile", limit=5) or all(
        "/etc/passwd" not in h["content"] and ":x:0:0:" not in h["content"]
        for h in lexical_hits(svc, "root", "hostile")
    )
    paths = {h["file_path"] for h in svc.search("wellbehaved", project_id="hostile", limit=20)["results"]}
    assert not any(p.startswith(("escape", "loop/")) for p in paths)


@pytest.mark.timeout(120)
def test_files_that_change_or_vanish_during_a_run_do_not_fail_it(
    monkeypatch: pytest.MonkeyPatch, slow_embedder: FakeEmbeddingServer, tmp_path: Path
) -> None:
    """The embedder is slow, so the walk pauses at its first batch; meanwhile files not yet read
    vanish, grow past the size limit, turn into a FIFO, or change."""
    monkeypatch.setenv("CODEBASE_CHUNK_PACK_LINES", "0")
    monkeypatch.setenv("CODEBASE_INDEXER_WORKERS", "1")
    files = many_functions("churnmarker", files=120, functions=20)
    repo = write_repo(tmp_path / "repo", files)
    names = sorted(files)
    slow_embedder.delay_seconds = 0.3
    before = slow_embedder.requests
    svc = service()
    job = svc.start_indexing(str(repo), project_id="churn")["job_id"]
    wait_for(lambda: slow_embedder.requests > before, timeout=30, what="the first embedding batch")
    late = names[-30:]  # read after the first batch of 1,024 chunks
    for name in late[:10]:
        (repo / name).unlink()
    for name in late[10:15]:
        (repo / name).write_text("x = '" + "y" * 1_100_000 + "'\n")  # over the default limit
    for name in late[15:17]:
        (repo / name).unlink()
        os.mkfifo(repo / name)
    for name in late[17:20]:
        (repo / name).write_text("def rewritten():\n    return 'changedmarker'\n")
    (repo / "pkg" / "appeared.py").write_text("def appeared():\n    return 'appearedmarker'\n")
    slow_embedder.delay_seconds = 0
    final = wait_for_status(svc, job, TERMINAL, timeout=90)
    assert final["status"] == "completed", final["error_message"]
    # 10 vanished; 5 too large now and 2 FIFOs skipped; 3 rewritten are indexed as they are now.
    assert final["files_indexed"] == len(names) - 17, final
    assert lexical_hits(svc, "changedmarker", "churn")
    indexed = {h["file_path"] for h in lexical_hits(svc, "churnmarker", "churn", limit=100)}
    assert not indexed & set(late[:20])
