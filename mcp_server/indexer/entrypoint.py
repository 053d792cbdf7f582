"""The indexer entrypoint: `codebase-mcp indexer run --job-id ID`.

The same command runs in the Kubernetes Job's container and under the local launcher's
supervisor. It writes chunks and progress; it never writes a terminal job state: its exit code
(and the reason in the termination-message file) tell the supervisor or the operator what
happened, so a process killed mid-run still ends `failed` with a reason.

Its exit codes (`outcome.IndexerExit`) and the termination message are the whole contract with the
runner: the local supervisor and the operator map them to the job's terminal state.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.core import logs
from mcp_server.core.errors import CodebaseMCPError, InvalidInput
from mcp_server.core.jobs import JobPhase, JobStatus, JobStore
from mcp_server.core.settings import Settings
from mcp_server.core.shards import Shard
from mcp_server.core.validation import (
    check_local_git_url,
    redact_userinfo,
    validate_git_source,
    validate_repo_path,
)
from mcp_server.db.database import get_engine, is_embedded
from mcp_server.db.embedded import free_bytes
from mcp_server.db.errors import database_failure_message, redact_urls
from mcp_server.embeddings import create_embedder
from mcp_server.index.store import IndexStore
from mcp_server.index.vector_indexes import BuildBudget
from mcp_server.indexer import git_source, secrets
from mcp_server.indexer.git_cache import FULL_SHA_RE, GitCache
from mcp_server.indexer.outcome import IndexerExit
from mcp_server.indexer.pipeline import IndexRun, RunCancelled, RunCounters

log = logging.getLogger(__name__)


DEFAULT_TERMINATION_LOG = "/dev/termination-log"  # read by Kubernetes into the pod status
COMMIT_FILE = "commit"  # beside the clone in --into/--checkout: the commit `indexer clone` checked out


def embedder_from_settings(settings: Settings):  # type: ignore[no-untyped-def]
    return create_embedder(
        backend=settings.embedding.backend,
        model=settings.embedding.model,
        url=settings.embedding.url,
        api_key=settings.embedding.api_key.get_secret_value() if settings.embedding.api_key else None,
        dimension=settings.embedding.dimension,
        batch_size=settings.embedding.batch_size,
        timeout_seconds=settings.embedding.timeout_seconds,
        model_path=settings.embedding.model_path,
    )


def write_termination_message(path: str | None, message: str) -> None:
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(message[:4000])
    except OSError:
        log.warning("could not write the termination message to %s", path)


def _reported(exc: CodebaseMCPError, termination_log: str | None) -> int:
    """The project's own errors end the run with their message: refused input (a bad path,
    source or ref) exits INVALID_INPUT, anything else FAILED."""
    write_termination_message(termination_log, str(exc))
    return IndexerExit.INVALID_INPUT if isinstance(exc, InvalidInput) else IndexerExit.FAILED


def clone_source(
    settings: Settings,
    url: str,
    ref: str | None,
    into: Path,
    *,
    credentials: Path | None,
    termination_log: str | None,
) -> int:
    """`indexer clone`: the Kubernetes Job's init container, the only one that sees the git
    credentials; the indexer container then indexes INTO/checkout (`indexer run --checkout`).
    The same fetch as a local run's, through the cache in the pod's CODEBASE_MCP_HOME."""
    try:
        url, ref = validate_git_source(url, ref)
        with git_source.fetch(
            url,
            ref,
            cache=GitCache(settings.database.git_dir),
            into=into / "checkout",
            credentials=git_source.credentials_from_secret(credentials) if credentials else None,
        ) as fetched:
            log.info("cloned %s into %s (commit %s)", redact_userinfo(url), fetched.path, fetched.commit)
            # For the indexer container: its summary names the commit, and the shards of a sharded
            # run (a clone each) check that they all got the same one.
            (into / COMMIT_FILE).write_text(fetched.commit + "\n")
    except CodebaseMCPError as exc:
        return _reported(exc, termination_log)
    return IndexerExit.INDEXED


def _trim_git_cache(cache: GitCache, url: str, max_mb: int) -> None:
    """Best effort: a cache that cannot be trimmed costs disk, never the job."""
    if max_mb <= 0:
        return
    try:
        removed = cache.evict(max_mb * 2**20, keep=url)
    except OSError as exc:
        log.warning("could not trim the git cache in %s: %s", cache.root, exc)
        return
    if removed:
        log.info(
            "git cache over %d MB: removed the %d least recently used repositories", max_mb, len(removed)
        )


def _cloned_commit(checkout: Path) -> str | None:
    """The commit `indexer clone` wrote beside its clone (absent from an older image's clone)."""
    try:
        text = (checkout / COMMIT_FILE).read_text(errors="replace").strip()
    except OSError:
        return None
    return text if FULL_SHA_RE.fullmatch(text) else None


def _shard(job_shards: int, index: int | None) -> Shard | None:
    """The shard this process runs: `--shard`, else the Indexed Job's JOB_COMPLETION_INDEX."""
    if job_shards <= 1:
        return None
    if index is None:
        raw = os.environ.get("JOB_COMPLETION_INDEX", "")
        if not raw.isdigit():
            raise InvalidInput(
                f"the job has {job_shards} shards: give --shard N or set JOB_COMPLETION_INDEX "
                f"(0..{job_shards - 1})"
            )
        index = int(raw)
    try:
        return Shard(index, job_shards)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def work_tree_name(job_id: uuid.UUID, shard_index: int | None) -> str:
    """The name of a local git run's work tree in the cache (`checkouts/<name>`). One per shard:
    a shared name would make the shards wait for each other on its lock (GitCache.hold) and run
    one after another."""
    return str(job_id) if shard_index is None else f"{job_id}.{shard_index}"


def run_job(
    settings: Settings,
    job_id: uuid.UUID,
    *,
    termination_log: str | None,
    checkout: Path | None = None,
    shard_index: int | None = None,
) -> int:
    engine = get_engine(settings)
    jobs = JobStore(engine)
    job = jobs.get(job_id)
    logs.set_context(job_id=str(job_id), project_id=job.project_id)
    try:
        shard = _shard(job.shards, shard_index)
    except InvalidInput as exc:
        return _reported(exc, termination_log)
    if shard is not None:
        logs.set_context(job_id=str(job_id), project_id=job.project_id, shard=str(shard.index))
    if job.status is JobStatus.PENDING:
        jobs.mark_running(job_id)  # Kubernetes: the pod may start before the operator reflects it
        job = jobs.get(job_id)
    if job.status is not JobStatus.RUNNING:
        write_termination_message(termination_log, f"job {job_id} is {job.status.value}; nothing to do")
        return IndexerExit.NOT_RUNNABLE

    disk_guard = _disk_guard(settings)

    def progress(counters: RunCounters, message: str) -> bool:
        disk_guard()
        values: dict[str, Any] = {
            "phase": counters.phase,
            "message": message,
            "files_seen": counters.files_seen,
            "files_total": counters.files_total,
            "files_indexed": counters.files_indexed,
            "files_skipped": counters.files_skipped,
            "chunks_created": counters.chunks_created,
            "progress_fraction": counters.progress_fraction,
            "remaining_seconds": counters.remaining_seconds,
        }
        if shard is not None:
            return jobs.update_shard_progress(job_id, shard.index, **values)
        return jobs.update_progress(job_id, **values)

    # The row says the indexer is at work before the slow part of its start (the embedding model,
    # the repository's state in the index).
    jobs.update_progress(
        job_id,
        phase=JobPhase.SCANNING,
        message="starting the indexer" if shard is None else f"starting the indexer ({shard})",
    )
    commit: str | None = None  # of a git source
    with ExitStack() as stack:
        try:
            if job.source_git_url and checkout is not None:
                root = checkout / "checkout"  # cloned by the Job's init container
                if not root.is_dir():
                    raise InvalidInput(f"--checkout {checkout}: no clone in it (did the clone step run?)")
                commit = _cloned_commit(checkout)
                repository_key = job.repo_path
            elif job.source_git_url:
                url, ref = validate_git_source(job.source_git_url, job.source_git_ref)
                check_local_git_url(url, allowed_roots=settings.jobs.allowed_roots)
                cache = GitCache(settings.database.git_dir)
                fresh = not cache.repository(url).is_dir()
                jobs.update_progress(
                    job_id,
                    phase=JobPhase.CLONING,
                    message=f"{'cloning' if fresh else 'fetching'} {redact_userinfo(url)}"
                    + (f" at {ref}" if ref else ""),
                )
                # Runs last, once the work tree below is gone: the cache stays within its bound.
                stack.callback(_trim_git_cache, cache, url, settings.git.cache_max_mb)
                fetched = stack.enter_context(
                    git_source.fetch(
                        url,
                        ref,
                        cache=cache,
                        name=work_tree_name(job_id, None if shard is None else shard.index),
                        credentials=git_source.credentials_from_settings(settings.git),
                    )
                )
                root, commit = fetched.path, fetched.commit
                repository_key = job.repo_path
            else:
                root = validate_repo_path(job.repo_path, allowed_roots=settings.jobs.allowed_roots)
                repository_key = job.repo_path
            run = IndexRun(
                store=IndexStore(engine),
                embedder=embedder_from_settings(settings),
                project_id=job.project_id,
                root=root,
                repository_key=repository_key,
                force=job.force_reindex,
                max_file_bytes=settings.indexing.max_file_bytes,
                extra_ignores=settings.indexing.extra_ignores,
                workers=settings.indexing.workers,
                pack_lines=settings.indexing.chunk_pack_lines,
                job_id=job_id,
                progress=progress,
                scan_secrets=not _secrets_opted_in(settings, job.repo_path),
                shard=shard,
                source_commit=commit,
                vector_build=BuildBudget.from_settings(settings),
            )
            counters = run.run()
            if shard is not None and run.published:  # the last shard: the summary is the run's
                counters = RunCounters.total(run.store.shard_counters(job_id))
        except RunCancelled:
            write_termination_message(termination_log, "the job was cancelled while indexing")
            return IndexerExit.NOT_RUNNABLE
        except CodebaseMCPError as exc:
            return _reported(exc, termination_log)
        except (OperationalError, InterfaceError) as exc:
            log.exception("indexing job %s lost its database", job_id)
            where = str(settings.database.pgdata_dir) if is_embedded(settings) else "the database server"
            write_termination_message(termination_log, database_failure_message(exc, where))
            return IndexerExit.FAILED
        except Exception as exc:  # the reason must reach the job row, whatever it was
            log.exception("indexing job %s failed", job_id)
            write_termination_message(termination_log, f"{type(exc).__name__}: {redact_urls(str(exc))}")
            return IndexerExit.FAILED
    summary = (
        f"indexed {counters.files_indexed} files ({counters.files_changed} new or changed, "
        f"{counters.files_unchanged} unchanged, {counters.files_removed} removed, "
        f"{counters.files_skipped} skipped{_reasons(counters.skipped_reasons)}) "
        f"into {counters.chunks_created} new chunks"
    )
    if commit:
        summary += f" at commit {commit[:12]}"
    if counters.files_copied:
        summary += (
            f"; {counters.files_copied} of those files ({counters.chunks_copied} chunks) copied from "
            "another repository of the project, not parsed or embedded again"
        )
    if counters.tokens_redacted:
        summary += f"; {counters.tokens_redacted} secret tokens redacted in {counters.files_redacted} files"
    if counters.warnings:
        summary += "; " + "; ".join(counters.warnings[:10])
    if shard is not None and not run.published:
        # Another shard is still at work; the last one publishes and writes the run's summary.
        summary = f"{shard} done: {summary}"
        progress(counters, summary)
        write_termination_message(termination_log, summary)
        return IndexerExit.INDEXED
    if shard is not None:
        summary += f" by {shard.count} shards"
    jobs.update_progress(
        job_id,
        phase=JobPhase.DONE,
        message=summary,
        files_seen=counters.files_seen,
        files_total=counters.files_total,
        files_indexed=counters.files_indexed,
        files_skipped=counters.files_skipped,
        chunks_created=counters.chunks_created,
    )
    write_termination_message(termination_log, summary)
    return IndexerExit.INDEXED


class OutOfDisk(CodebaseMCPError):
    """The disk holding the embedded database is (nearly) full."""


def _disk_guard(settings: Settings) -> Callable[[], None]:
    """Stop the run before PostgreSQL runs out of disk (a full disk made it panic and not start
    again): checked with every progress report, which includes one before each batch is embedded
    and written. Not throttled: a statvfs costs microseconds, and two batches written within a
    second of each other (a fast embedder) were enough to go from above the minimum to a
    PostgreSQL that panicked creating its next WAL segment."""
    if not is_embedded(settings) or settings.indexing.min_free_disk_mb <= 0:
        return lambda: None
    minimum = settings.indexing.min_free_disk_mb * 1024 * 1024

    def check() -> None:
        free = free_bytes(settings.database.pgdata_dir)
        if free is not None and free < minimum:
            raise OutOfDisk(
                f"out of disk space: only {free // (1024 * 1024)} MB left on the disk holding "
                f"{settings.database.pgdata_dir} "
                f"(CODEBASE_MIN_FREE_DISK_MB is {settings.indexing.min_free_disk_mb}); "
                "the run was stopped and the previous index is unchanged: free some space and retry"
            )

    return check


def _secrets_opted_in(settings: Settings, repo_path: str) -> bool:
    """Whether the user listed this repository in CODEBASE_INDEX_SECRETS_ROOTS."""
    return not secrets.filter_applies(repo_path, settings.indexing.index_secrets_roots)


def _reasons(counts: dict[str, int]) -> str:
    """': 2 binary, 1 minified', most frequent first; '' when nothing was skipped."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ": " + ", ".join(f"{count} {reason}" for reason, count in ranked) if ranked else ""
