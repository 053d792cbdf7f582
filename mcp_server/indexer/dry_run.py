"""A dry run: what indexing a repository would do, from one walk, without reading file contents.

The walk is the indexer's own (the same ignore files, limits, symlink and secret rules), so the
files it lists are exactly the ones a run would read. Contents are not read (only the head the
walker needs to tell text from binary), which keeps the answer within seconds on large trees.
The time estimate scales measured rates (bench/index_speed.py on 2 cores: about 320 files/s with
the static embedder; the transformer embeds about 13 chunks/s) to this machine's cores.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mcp_server.indexer import secrets
from mcp_server.indexer.walker import IGNORED, WalkStats, walk_repository

# Measured on the 2-core reference machine (docs/design.md, bench/index_speed.py).
_REFERENCE_CORES = 2
_STATIC_FILES_PER_SECOND = 320.0
_TRANSFORMER_CHUNKS_PER_SECOND = 13.0
_HTTP_CHUNKS_PER_SECOND = 200.0  # a local embedding server; remote APIs vary widely
# Averages over the standard library's indexed files: what one chunk and one token stand for.
_BYTES_PER_CHUNK = 1_600
_BYTES_PER_TOKEN = 4
LARGEST_DIRECTORIES = 10


def plan_index(
    root: Path,
    *,
    max_file_bytes: int,
    extra_ignores: Sequence[str] = (),
    embedding_backend: str,
    scan_secrets: bool = True,
) -> dict[str, Any]:
    stats = WalkStats()
    languages: Counter[str] = Counter()
    directories: Counter[str] = Counter()
    secret_files = 0
    files = total_bytes = 0
    for source in walk_repository(
        root, max_file_bytes=max_file_bytes, extra_ignores=extra_ignores, stats=stats
    ):
        if scan_secrets and secrets.secret_by_name(source.relative_path):
            secret_files += 1
            continue
        files += 1
        total_bytes += source.size
        languages[source.language or "text"] += 1
        head, _, rest = source.relative_path.partition("/")
        directories[head + "/" if rest else "."] += source.size
    skipped = {reason: count for reason, count in stats.skipped.items() if reason != IGNORED}
    if secret_files:
        skipped[secrets.SECRET_FILE] = secret_files
    chunks = max(files, total_bytes // _BYTES_PER_CHUNK)
    scale = max(1, min(os.cpu_count() or 1, 8)) / _REFERENCE_CORES
    if embedding_backend == "static":
        seconds = files / (_STATIC_FILES_PER_SECOND * scale)
    elif embedding_backend == "transformer":
        seconds = chunks / (_TRANSFORMER_CHUNKS_PER_SECOND * scale)
    else:
        seconds = files / (_STATIC_FILES_PER_SECOND * scale) + chunks / _HTTP_CHUNKS_PER_SECOND
    plan: dict[str, Any] = {
        "dry_run": True,
        "repository": str(root),
        "files_to_index": files,
        "bytes": total_bytes,
        "by_language": dict(languages.most_common()),
        "skipped": dict(sorted(skipped.items(), key=lambda item: (-item[1], item[0]))),
        "ignored_paths": stats.skipped.get(IGNORED, 0),
        "largest_directories": [
            {"directory": name, "bytes": size} for name, size in directories.most_common(LARGEST_DIRECTORIES)
        ],
        "estimated_chunks": chunks,
        "estimated_seconds": round(seconds, 1),
        "embedding_backend": embedding_backend,
    }
    if embedding_backend in ("ollama", "openai"):
        plan["estimated_tokens"] = total_bytes // _BYTES_PER_TOKEN
    return plan
