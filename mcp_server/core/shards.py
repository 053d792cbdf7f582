"""Which files a shard of a sharded run owns, and how many shards `auto` means.

A sharded run splits one repository's run across N indexer processes (local) or the pods of an
Indexed Job (Kubernetes), all writing the same new generation; the last to finish publishes it
(`IndexStore.finish_shard`). Every shard walks the whole tree (the walk costs about 1/40 of the
run) and keeps the files whose path hashes to its index, so the parts are disjoint, cover the
tree, and a re-run gives each file the same shard whatever else changed: a retried shard finds
its own earlier rows to reuse.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

MAX_SHARDS = 64  # the CRD's and the jobs table's bound


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # 0-based, like JOB_COMPLETION_INDEX
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ValueError(f"shards must be between 1 and {MAX_SHARDS}, got {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard index {self.index} is not in 0..{self.count - 1}")

    def owns(self, relative_path: str) -> bool:
        return self.count == 1 or shard_of(relative_path, self.count) == self.index

    def __str__(self) -> str:
        return f"shard {self.index + 1} of {self.count}"


def shard_of(relative_path: str, count: int) -> int:
    """The shard a path belongs to: a stable hash of its bytes (blake2b, not Python's salted
    hash()), so every process and every re-run agrees."""
    digest = hashlib.blake2b(relative_path.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def auto_count(files: int, *, files_per_shard: int) -> int:
    """`shards: auto`: one shard per `files_per_shard` files, at least 1, at most MAX_SHARDS."""
    return max(1, min(MAX_SHARDS, math.ceil(files / files_per_shard)))
