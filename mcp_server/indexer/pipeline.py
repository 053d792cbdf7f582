"""One indexing run: walk -> read and hash -> chunk (in worker processes) -> embed -> write.

Files stream through the pipeline: the walker yields them one by one, a bounded number are in
flight in the worker pool at once, and chunks are embedded and written in batches, so memory stays
flat on huge repositories. Unchanged files (same content hash as the live row) are read and hashed
but neither parsed nor embedded; a changed or new file that another repository of the project
(a second clone, a worktree, another branch) holds with the same path and content has its rows
copied from there, also unparsed and unembedded. Progress goes to the jobs store twice a second.

About 500 lines, kept as one module: it is one thing, the run's flow control (what is in flight,
when to embed, write and report, how a run ends), and splitting it would scatter one loop's state.
What a worker does with one file is in file_tasks.py.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from mcp_server.core.errors import CodebaseMCPError, JobNoLongerRunning
from mcp_server.core.jobs import JobPhase
from mcp_server.core.shards import Shard
from mcp_server.embeddings import embedder_for_project
from mcp_server.embeddings.base import Embedder
from mcp_server.index import term_stats
from mcp_server.index.embedding_text import embedding_text
from mcp_server.index.store import ChunkRow, FileWrite, IndexStore, RunState
from mcp_server.index.vector_indexes import DEFAULT_BUDGET, BuildBudget, VectorIndexes
from mcp_server.indexer import secrets
from mcp_server.indexer.file_reading import read_source_bytes
from mcp_server.indexer.file_tasks import (
    FileResult,
    FileTask,
    process_batch,
)
from mcp_server.indexer.types import SourceFile
from mcp_server.indexer.walker import IGNORED, WalkStats, walk_repository

log = logging.getLogger(__name__)

EMBED_BATCH_CHUNKS = 1024
FILES_PER_TASK = 16
DEFAULT_PACK_LINES = 40
# Up to this many changed files are parsed in the coordinating process before a pool is started.
INLINE_PARSE_FILES = 32
# Changed files looked up in the project's other repositories at once (one query per batch),
# and at most this many of their bytes held meanwhile.
COPY_BATCH_FILES = 256
COPY_BATCH_BYTES = 16 * 2**20
PROGRESS_INTERVAL_SECONDS = 0.5
# The estimate's priors, used until the run has measured its own rates: the static embedder's
# speed, and the HNSW build cost on 2 cores, scaled by dimension: 13.7 s per 100,000 256-d vectors
# (the standard-library tree's tail, 137,643 chunks, bench/experience.py --eta, 2026-12-03; the
# 26.8 s design notes section 4 measured on a machine at load 12 made every ETA of a first index
# too long by about 17 s at the end).
PRIOR_SECONDS_PER_CHUNK = 1 / 1500
HNSW_SECONDS_PER_CHUNK_256D = 13.7 / 100_000
PUBLISH_SECONDS = 0.5


class RunCancelled(Exception):
    """The job left the running state (cancelled, failed by the supervisor) while we worked."""


class IndexingFailed(CodebaseMCPError):
    """The run cannot continue; the message says why."""


@dataclass(slots=True)
class RunCounters:
    files_seen: int = 0
    files_total: int | None = None
    files_indexed: int = 0  # accepted files now in the index (changed + unchanged)
    files_changed: int = 0
    files_unchanged: int = 0
    files_copied: int = 0  # of files_changed: rows copied from another repository of the project
    files_removed: int = 0
    files_skipped: int = 0
    tokens_redacted: int = 0
    files_redacted: int = 0
    chunks_created: int = 0
    chunks_embedded: int = 0
    chunks_copied: int = 0  # of chunks_created
    phase: JobPhase = JobPhase.SCANNING
    # The whole run's estimate (walk, parse, embed, write, vector index): share done, seconds left.
    progress_fraction: float | None = None
    remaining_seconds: float | None = None
    skipped_reasons: dict[str, int] = field(default_factory=dict)
    # What the summary must mention besides counts (an ignore file not used, a file parsed by lines).
    warnings: list[str] = field(default_factory=list)
    # Wall time spent per stage in the coordinating process (parsing runs in workers meanwhile).
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def to_json(self) -> dict[str, object]:
        """What a shard records at its end (job_shards.counters), for the run's summary."""
        return {name: getattr(self, name) for name in (*_SUMMED, "skipped_reasons", "warnings")}

    @classmethod
    def total(cls, parts: Sequence[dict[str, object]]) -> RunCounters:
        """The counters of a whole sharded run: its shards' summed."""
        total = cls(phase=JobPhase.DONE)
        for part in parts:
            for name in _SUMMED:
                setattr(total, name, getattr(total, name) + int(part.get(name) or 0))  # type: ignore[call-overload]
            for reason, count in dict(part.get("skipped_reasons") or {}).items():  # type: ignore[call-overload]
                total.skipped_reasons[reason] = total.skipped_reasons.get(reason, 0) + int(count)
            total.warnings.extend(list(part.get("warnings") or []))  # type: ignore[call-overload]
        total.files_total = total.files_seen
        return total


_SUMMED = (
    "files_seen",
    "files_indexed",
    "files_changed",
    "files_unchanged",
    "files_copied",
    "files_removed",
    "files_skipped",
    "tokens_redacted",
    "files_redacted",
    "chunks_created",
    "chunks_embedded",
    "chunks_copied",
)


ProgressCallback = Callable[[RunCounters, str], bool]


def _ready(item: Future[list[FileResult]] | list[FileResult]) -> bool:
    return not isinstance(item, Future) or item.done()


def _worker_count(configured: int) -> int:
    if configured > 0:
        return configured
    return max(1, min(8, os.cpu_count() or 1))


class IndexRun:
    def __init__(
        self,
        *,
        store: IndexStore,
        embedder: Embedder,
        project_id: str,
        root: Path,
        force: bool,
        repository_key: str | None = None,
        max_file_bytes: int,
        extra_ignores: Sequence[str] = (),
        changed_paths: frozenset[str] | None = None,
        workers: int = 0,
        pack_lines: int = DEFAULT_PACK_LINES,
        with_symbols: bool = True,  # False only to measure what the symbol table costs (bench/)
        job_id: uuid.UUID | None = None,
        progress: ProgressCallback | None = None,
        scan_secrets: bool = True,
        share_content: bool = True,
        shard: Shard | None = None,
        source_commit: str | None = None,  # of a git source: the shards of a run must agree on it
        vector_build: BuildBudget = DEFAULT_BUDGET,
    ) -> None:
        if shard is not None and job_id is None:
            raise ValueError("a sharded run belongs to a job (its shards meet in job_shards)")
        self.store = store
        self.embedder = embedder
        self.project_id = project_id
        self.root = root
        # What identifies the repository in the index: its path, or the git URL it was cloned from.
        self.repository_key = repository_key or str(root)
        self.force = force
        self.max_file_bytes = max_file_bytes
        self.extra_ignores = tuple(extra_ignores)
        # A watcher's sync: only these relative paths may have changed since the live generation,
        # so every other file the walk finds is carried over unread (deletions are still seen).
        self.changed_paths = changed_paths
        self.workers = _worker_count(workers)
        self.pack_lines = pack_lines
        self.with_symbols = with_symbols
        self.job_id = job_id
        self.progress = progress
        # Off only for repositories the user listed in CODEBASE_INDEX_SECRETS_ROOTS.
        self.scan_secrets = scan_secrets
        # Copy a file's rows from another repository of the project that holds the same content;
        # never in a forced run, whose point is to parse and embed everything again.
        self.share_content = share_content and not force
        # One part of a sharded run: only the files whose path hashes to it; the last shard to
        # finish publishes (see shards.py). None: the whole repository, published by this run.
        self.shard = shard if shard is not None and shard.count > 1 else None
        self.source_commit = source_commit
        self.vector_build = vector_build
        self.published = False
        self.counters = RunCounters()
        self._last_progress = 0.0
        self._pending_writes: list[FileWrite] = []
        self._pending_replaced: list[int] = []
        self._pending_chunks = 0
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-writer")
        self._write: Future[int] | None = None
        self._started = time.monotonic()
        self._loop_started: float | None = None
        self._tail_started: float | None = None
        self._tail_estimate = PUBLISH_SECONDS
        self._bulk = False
        # Bytes, not files, measure how much of the walk is done: a tree's files differ in size by
        # orders of magnitude and the large ones (test suites, generated code) cluster in a few
        # directories, so a file count extrapolated from the first part ran ahead of the work.
        self._bytes_total: int | None = None
        self._bytes_seen = 0

    @property
    def chunking(self) -> str:
        """Everything besides a file's path and bytes (and the project's model, and INDEX_FORMAT)
        that decides the rows a run writes for it; recorded per repository, so rows are copied
        only between repositories where they would come out the same."""
        return (
            f"pack_lines={self.pack_lines};symbols={int(self.with_symbols)};secrets={int(self.scan_secrets)}"
        )

    # --- progress ------------------------------------------------------------------------------

    def _report(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_progress = now
        self._estimate()
        if self.progress is not None and not self.progress(self.counters, message):
            raise RunCancelled("the job is no longer running")

    def _hnsw_seconds(self, chunks: float) -> float:
        if not self._bulk:
            return 0.0  # incremental runs insert their rows into the existing graph as they write
        return chunks * HNSW_SECONDS_PER_CHUNK_256D * self.embedder.dimension / 256

    def _estimate(self) -> None:
        """Seconds left and share done over every phase, from the rates this run has measured.

        Remaining = bytes left x time per byte outside embedding (read, hash, parse, write waits)
        + chunks left to embed (chunks per byte so far x bytes left) x time per chunk + the tail
        (publish, and for a bulk run the vector index build, proportional to the chunks). Until
        the walk has counted the files nothing is claimed; the share is elapsed / (elapsed +
        remaining), so percent and ETA always agree.
        """
        c = self.counters
        now = time.monotonic()
        elapsed = now - self._started
        if self._tail_started is not None:
            # The build's own share (in the message) is not used here: after it come the word
            # statistics, ANALYZE and publishing, and extrapolating the build alone made the ETA
            # of the standard library's tail too short (p90 error 42% against 12%).
            remaining = max(0.2, self._tail_estimate - (now - self._tail_started))
        elif c.files_total is None or self._loop_started is None or c.files_seen == 0:
            return
        else:
            embed_seconds = c.seconds.get("embedding", 0.0)
            loop_seconds = max(0.0, now - self._loop_started - embed_seconds)
            if self._bytes_total and self._bytes_seen:
                done, left = float(self._bytes_seen), float(max(0, self._bytes_total - self._bytes_seen))
            else:  # a watch-mode sync (no count-only walk) or files of no bytes
                done, left = float(c.files_seen), float(max(0, c.files_total - c.files_seen))
            chunks_known = c.chunks_embedded + self._pending_chunks
            chunks_left = self._pending_chunks + chunks_known / done * left
            per_chunk = embed_seconds / c.chunks_embedded if c.chunks_embedded else PRIOR_SECONDS_PER_CHUNK
            # Copied chunks go into the graph as well, though nothing embedded them.
            tail = PUBLISH_SECONDS + self._hnsw_seconds(chunks_known + chunks_left + c.chunks_copied)
            remaining = left * loop_seconds / done + chunks_left * per_chunk + tail
        c.remaining_seconds = round(remaining, 1)
        c.progress_fraction = round(elapsed / (elapsed + remaining), 4) if elapsed + remaining > 0 else 0.0

    def _begin_tail(self, message: str) -> None:
        """From here on only publishing and the vector index build are left; tell the job so.

        Never raises (it runs where the vector index must still be rebuilt): a cancel is noticed
        by the runner, which stops this process.
        """
        if self._tail_started is None:
            self._tail_started = time.monotonic()
            graph_chunks = self.counters.chunks_embedded + self.counters.chunks_copied
            self._tail_estimate = PUBLISH_SECONDS + self._hnsw_seconds(graph_chunks)
        self.counters.phase = JobPhase.WRITING
        self._estimate()
        if self.progress is not None:
            try:
                self.progress(self.counters, message)
            except Exception:
                log.warning("could not record progress", exc_info=True)

    def _building(self, share: float) -> None:
        """The vector index build's progress (from VectorIndexes' watcher thread; never raises:
        a cancel is noticed by the runner, which stops this process)."""
        self._estimate()
        if self.progress is not None:
            try:
                self.progress(self.counters, f"building the vector index ({share:.0%})")
            except Exception:
                log.warning("could not record progress", exc_info=True)

    # --- the run -------------------------------------------------------------------------------

    def run(self) -> RunCounters:
        with self.store.repository_lock(
            project_id=self.project_id, root_path=self.repository_key, shared=self.shard is not None
        ):
            return self._locked_run()

    def _locked_run(self) -> RunCounters:
        # A project indexed with a table the package shipped before goes on with it, forced runs
        # too (StaticEmbedder.for_project says why).
        recorded = self.store.project_model(self.project_id)
        self.embedder = embedder_for_project(self.embedder, recorded[0] if recorded else None)
        model_id, dimension = self.embedder.model_id, self.embedder.dimension
        self.store.check_project_model(
            self.project_id, model_id=model_id, dimension=dimension, allow_change=self.force
        )
        if self.shard is not None:
            assert self.job_id is not None
            state = self.store.begin_shard(
                project_id=self.project_id,
                root_path=self.repository_key,
                job_id=self.job_id,
                shard=self.shard,
                source_commit=self.source_commit,
            )
        else:
            state = self.store.begin_run(project_id=self.project_id, root_path=self.repository_key)
        # A first index or a forced one writes most rows anew: build the vector graph once at the
        # end. An incremental run inserts its few changed chunks into the existing graph.
        bulk = self.force or state.empty_before
        self._bulk = bulk
        if bulk:
            VectorIndexes(self.store.engine).drop(self.project_id, dimension)
        try:
            counters = self._run(state)
        finally:
            self._writer.shutdown(wait=True, cancel_futures=True)
            # A shard that did not publish leaves the graph to the last one (building it while the
            # others still write would make each of their rows an insert into it); a failed
            # shard's runner restores it when the whole run has ended.
            if self.shard is None or self.published:
                if bulk:
                    self._begin_tail("building the vector index")
                started = time.perf_counter()
                VectorIndexes(self.store.engine, self.vector_build).ensure(
                    self.project_id, dimension, progress=self._building if bulk else None
                )
                self.counters.add_time("vector index", started)
        if not self.published:
            return counters
        if bulk:
            started = time.perf_counter()
            self.store.analyze()
            counters.add_time("analyze", started)
        started = time.perf_counter()
        term_stats.refresh(self.store.engine, self.project_id)
        counters.add_time("word statistics", started)
        return counters

    def _run(self, state: RunState) -> RunCounters:
        c = self.counters
        model_id, dimension = self.embedder.model_id, self.embedder.dimension
        self._report("scanning the repository", force=True)

        seen_paths: set[str] = set()
        c.phase = JobPhase.PARSING
        # Files are read and hashed here; only changed ones go to the parser workers, and the pool
        # starts only once enough files changed to be worth its start-up (an unchanged re-index
        # never starts it).
        pending: deque[Future[list[FileResult]] | list[FileResult]] = deque()
        max_pending = self.workers * 4
        executor: ProcessPoolExecutor | None = None
        batch: list[FileTask] = []
        to_copy: list[FileTask] = []  # changed files that another repository may hold already
        to_copy_bytes = 0
        changed = 0
        # Without another repository to copy from (a project's first), files go straight to the parser.
        share = self.share_content and self.store.has_shared_sources(state, chunking=self.chunking)

        def submit() -> None:
            nonlocal executor, batch
            if executor is None and self.workers > 1 and changed > INLINE_PARSE_FILES:
                executor = self._executor()
            pending.append(executor.submit(process_batch, batch) if executor else process_batch(batch))
            batch = []

        def parse(task: FileTask) -> None:
            nonlocal changed
            changed += 1
            batch.append(task)
            if len(batch) >= FILES_PER_TASK:
                submit()

        def copy_or_parse() -> None:
            nonlocal to_copy_bytes
            for task in self._copy_shared(to_copy, state, seen_paths):
                parse(task)
            to_copy.clear()
            to_copy_bytes = 0

        def consume(item: Future[list[FileResult]] | list[FileResult]) -> None:
            for result in item.result() if isinstance(item, Future) else item:
                self._count_and_absorb(result, state, seen_paths)
            if self._pending_chunks >= EMBED_BATCH_CHUNKS:
                self._flush(state)

        # A first, count-only walk (it reads no contents: a fraction of a second for thousands of
        # files), so the total, the percent and the ETA are known from the start instead of after
        # the last file. The real walk below streams contents and has the last word on the total.
        # A watch-mode sync (changed_paths) skips it: it reads only the few files that changed.
        if self.changed_paths is None:
            counted = counted_bytes = 0
            count_only = walk_repository(
                self.root,
                max_file_bytes=self.max_file_bytes,
                extra_ignores=self.extra_ignores,
                stats=WalkStats(),
            )
            for counted_source in count_only:
                if not self._owns(counted_source.relative_path):
                    continue
                counted += 1
                counted_bytes += counted_source.size
                self._report(f"found {counted} files so far")
            c.files_total = counted
            self._bytes_total = counted_bytes
        self._loop_started = time.monotonic()
        walked = 0
        walk_stats = WalkStats()
        try:
            sources = walk_repository(
                self.root,
                max_file_bytes=self.max_file_bytes,
                extra_ignores=self.extra_ignores,
                stats=walk_stats,
                read_contents=self._must_read(state),
            )
            for source in sources:
                if not self._owns(source.relative_path):
                    continue  # another shard's (the walker did not read it)
                walked += 1
                task_or_result = self._read(source, state)
                if isinstance(task_or_result, FileResult):
                    self._count_and_absorb(task_or_result, state, seen_paths)
                elif share:
                    to_copy.append(task_or_result)
                    to_copy_bytes += len(task_or_result.data)
                    if len(to_copy) >= COPY_BATCH_FILES or to_copy_bytes >= COPY_BATCH_BYTES:
                        copy_or_parse()
                else:
                    parse(task_or_result)
                # Bounded: at most max_pending batches in flight, so memory stays flat.
                while pending and (len(pending) >= max_pending or _ready(pending[0])):
                    consume(pending.popleft())
                if c.files_total is None:
                    self._report(f"processed {c.files_seen} of {walked} files found so far")
                else:
                    self._report(f"processed {c.files_seen} of {c.files_total} files")
            c.files_total = walked  # the streaming walk's count is the truth
            copy_or_parse()
            if batch:
                submit()
            while pending:
                consume(pending.popleft())
                self._report(f"processed {c.files_seen} of {walked} files")
        except BrokenProcessPool:
            raise IndexingFailed(
                "a parser worker process died (killed, or out of memory?); the run was abandoned and the "
                "previous index is unchanged"
            ) from None
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
        c.files_total = c.files_seen
        if self.shard is None or self.shard.index == 0:  # the walk's skips are the tree's: count once
            self._absorb_walk(walk_stats)
        self._flush(state)
        self._wait_for_write()

        self._begin_tail("publishing the new index generation")
        missing = [k.file_id for path, k in state.live.items() if path not in seen_paths]
        c.files_removed = len(missing)
        self.store.retire(state, file_ids=missing)
        unused_pending = [k.file_id for path, k in state.pending.items() if path not in seen_paths]
        self.store.drop_pending(state, file_ids=unused_pending)
        # Raises when the job was cancelled meanwhile: a cancelled run never publishes.
        self._report("publishing the new index generation", force=True)
        started = time.perf_counter()
        if self.shard is not None:
            assert self.job_id is not None
            try:
                last = self.store.finish_shard(job_id=self.job_id, shard=self.shard, counters=c.to_json())
            except JobNoLongerRunning:
                raise RunCancelled("the job is no longer running") from None
            if not last:  # another shard is still at work: the last one to finish publishes
                c.phase = JobPhase.DONE
                return c
        try:
            self.store.publish(
                state,
                job_id=self.job_id,
                replace_project_model=(model_id, dimension) if self.force else None,
                chunking=self.chunking,
            )
        except JobNoLongerRunning:
            raise RunCancelled("the job is no longer running") from None
        c.add_time("publishing", started)
        self.published = True
        c.phase = JobPhase.DONE
        return c

    def _absorb_walk(self, stats: WalkStats) -> None:
        """The walker's skips that a person should hear about (ignored paths are not news) and its
        warnings go into the summary."""
        c = self.counters
        for reason, count in stats.skipped.items():
            if reason != IGNORED:
                c.files_skipped += count
                c.skipped_reasons[reason] = c.skipped_reasons.get(reason, 0) + count
        c.warnings.extend(stats.warnings)

    def _executor(self) -> ProcessPoolExecutor | None:
        if self.workers <= 1:
            return None
        # forkserver: workers must not inherit this process's database connections and threads.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["mcp_server.indexer.chunker"])
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context)

    def _owns(self, relative_path: str) -> bool:
        return self.shard is None or self.shard.owns(relative_path)

    def _must_read(self, state: RunState) -> Callable[[str], bool]:
        """Which files the walker reads: a shard's own; of a watcher's sync, only the changed ones
        and those not in the index yet."""
        if self.changed_paths is None:
            return self._owns
        changed = self.changed_paths
        return lambda relative: self._owns(relative) and (relative in changed or relative not in state.live)

    def _read(self, source: SourceFile, state: RunState) -> FileTask | FileResult:
        """Read and hash a file: a result when it needs no parsing, else a parse task."""
        live = state.live.get(source.relative_path)
        if source.data is None and self.changed_paths is not None and live is not None:
            # Not among a watcher's changed paths: the live row stands (see `changed_paths`).
            return FileResult(
                source.relative_path, source.language, "unchanged", live.content_hash, source.size, []
            )
        if self.scan_secrets and secrets.secret_by_name(source.relative_path):
            return FileResult(
                source.relative_path, source.language, "skipped", b"", 0, [], secrets.SECRET_FILE
            )
        # The walker read the bytes through the descriptor it checked; a path opened again here
        # could lead out of the repository (a directory swapped for a symlink meanwhile).
        data = (
            source.data
            if source.data is not None
            else read_source_bytes(source.path, max_bytes=self.max_file_bytes)
        )
        if data is None:
            return FileResult(
                source.relative_path, source.language, "skipped", b"", 0, [], "vanished or changed"
            )
        digest = hashlib.blake2b(data, digest_size=16).digest()
        pending = state.pending.get(source.relative_path)
        if not self.force and live is not None and digest == live.content_hash:
            return FileResult(source.relative_path, source.language, "unchanged", digest, len(data), [])
        if pending is not None and digest == pending.content_hash:
            return FileResult(source.relative_path, source.language, "reuse", digest, len(data), [])
        return FileTask(
            source.relative_path,
            source.language,
            data,
            digest,
            self.pack_lines,
            self.scan_secrets,
            self.with_symbols,
        )

    def _copy_shared(self, tasks: list[FileTask], state: RunState, seen_paths: set[str]) -> list[FileTask]:
        """Copy the rows of the files another repository of the project already holds; return the
        tasks left to parse."""
        if not tasks:
            return []
        started = time.perf_counter()
        replaced = {t.relative_path: live.file_id for t in tasks if (live := state.live.get(t.relative_path))}
        copied = self.store.copy_shared(
            state,
            {t.relative_path: t.content_hash for t in tasks},
            chunking=self.chunking,
            replaced_file_ids=replaced,
        )
        self.counters.add_time("copying shared content", started)
        left: list[FileTask] = []
        for task in tasks:
            chunks = copied.get(task.relative_path)
            if chunks is None:
                left.append(task)
                continue
            self.counters.chunks_copied += chunks
            self.counters.chunks_created += chunks
            result = FileResult(
                task.relative_path, task.language, "copied", task.content_hash, len(task.data), []
            )
            self._count_and_absorb(result, state, seen_paths)
        return left

    def _count_and_absorb(self, result: FileResult, state: RunState, seen_paths: set[str]) -> None:
        self.counters.files_seen += 1
        self._bytes_seen += result.size
        self._absorb(result, state, seen_paths)

    def _absorb(self, result: FileResult, state: RunState, seen_paths: set[str]) -> None:
        c = self.counters
        if result.outcome == "skipped":
            c.files_skipped += 1
            reason = result.reason or "skipped"
            c.skipped_reasons[reason] = c.skipped_reasons.get(reason, 0) + 1
            return
        seen_paths.add(result.relative_path)
        c.files_indexed += 1
        live = state.live.get(result.relative_path)
        pending = state.pending.get(result.relative_path)
        if result.outcome == "unchanged":
            c.files_unchanged += 1
            if pending is not None:  # an earlier attempt wrote a version that is now stale
                self.store.drop_pending(state, file_ids=[pending.file_id])
            return
        c.files_changed += 1
        if result.outcome == "copied":  # written by copy_shared, which also marked what it replaces
            c.files_copied += 1
            if pending is not None:
                self.store.drop_pending(state, file_ids=[pending.file_id])
            return
        if result.note is not None and len(c.warnings) < 20:
            c.warnings.append(result.note)
        if result.redacted:
            c.tokens_redacted += result.redacted
            c.files_redacted += 1
        if result.outcome == "reuse":
            self.store.reuse_pending(state, replaced_file_ids=[live.file_id] if live else [])
            return
        if pending is not None:
            self.store.drop_pending(state, file_ids=[pending.file_id])
        write = FileWrite(
            path=result.relative_path,
            language=result.language,
            content_hash=result.content_hash,
            size_bytes=result.size,
            chunks=[ChunkRow(s, e, sym, kind, content) for s, e, sym, kind, content in result.chunks],
            symbols=result.symbols,
            occurrences=result.occurrences,
        )
        self._pending_writes.append(write)
        if live is not None:
            self._pending_replaced.append(live.file_id)
        self._pending_chunks += len(write.chunks)

    def _timed_write(
        self, state: RunState, writes: list[FileWrite], vectors: npt.NDArray[np.float32], replaced: list[int]
    ) -> int:
        started = time.perf_counter()
        written = self.store.write_files(state, writes, vectors, replaced_file_ids=replaced)
        self.counters.add_time("writing (overlapped)", started)
        return written

    def _wait_for_write(self) -> None:
        if self._write is not None:
            write, self._write = self._write, None
            self.counters.chunks_created += write.result()

    def _flush(self, state: RunState) -> None:
        if not self._pending_writes and not self._pending_replaced:
            return
        c = self.counters
        texts = [
            embedding_text(w.path, ch.symbol, ch.content) for w in self._pending_writes for ch in w.chunks
        ]
        c.phase = JobPhase.EMBEDDING
        self._report(f"embedding {len(texts)} chunks", force=True)
        started = time.perf_counter()
        if texts:
            vectors = self.embedder.embed_documents(texts)
        else:
            vectors = np.zeros((0, self.embedder.dimension), dtype=np.float32)
        c.add_time("embedding", started)
        c.chunks_embedded += len(texts)
        # The database does the write while this process embeds the next batch (one in flight).
        self._wait_for_write()
        writes, replaced = self._pending_writes, self._pending_replaced
        self._write = self._writer.submit(self._timed_write, state, writes, vectors, replaced)
        self._pending_writes = []
        self._pending_replaced = []
        self._pending_chunks = 0
        c.phase = JobPhase.PARSING
