"""The indexer entrypoint: `codebase-mcp indexer run --job-id ID`.

The same command runs in the Kubernetes Job's container and under the local launcher's
supervisor. It writes chunks and progress; it never writes a terminal job state: its exit code
(and the reason in the termination-message file) tell the supervisor or the operator what
happened, so a process killed mid-run still ends `failed` with a reason.

Exit codes: 0 indexed; 1 failed (reason in the termination log); 2 invalid input (bad path or
source); 3 the job was no longer runnable (cancelled or already finished).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.config import Settings
from mcp_server.db.database import get_engine, is_embedded, redact_urls
from mcp_server.db.embedded import free_bytes
from mcp_server.embeddings import create_embedder
from mcp_server.errors import CodebaseMCPError, InvalidInput
from mcp_server.index_store import IndexStore
from mcp_server.indexing.pipeline import IndexRun, RunCancelled, RunCounters
from mcp_server.jobs import JobStatus, JobStore
from mcp_server.validation import validate_git_source, validate_repo_path

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_NOT_RUNNABLE = 3
DEFAULT_TERMINATION_LOG = "/dev/termination-log"  # read by Kubernetes into the pod status


def embedder_from_settings(settings: Settings):  # type: ignore[no-untyped-def]
    return create_embedder(
        backend=settings.embedding_backend,
        model=settings.embedding_model,
        url=settings.embedding_url,
        api_key=settings.embedding_api_key.get_secret_value() if settings.embedding_api_key else None,
        dimension=settings.embedding_dimension,
        batch_size=settings.embedding_batch_size,
        timeout_seconds=settings.embedding_timeout_seconds,
        model_path=settings.embedding_model_path,
    )


def _first_line(exc: object) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_termination_message(path: str | None, message: str) -> None:
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(message[:4000])
    except OSError:
        log.warning("could not write the termination message to %s", path)


def _clone(url: str, ref: str | None, into: Path) -> Path:
    if shutil.which("git") is None:
        raise InvalidInput("source.git needs the `git` executable, which is not installed")
    target = into / "checkout"
    command = ["git", "clone", "--quiet", "--depth", "1", "--no-tags"]
    if ref:
        command += ["--branch", ref]
    command += ["--", url, str(target)]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, env=env, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise InvalidInput(f"git clone of {url} failed: {detail[-1] if detail else proc.returncode}")
    return target


def run_job(settings: Settings, job_id: uuid.UUID, *, termination_log: str | None) -> int:
    engine = get_engine(settings)
    jobs = JobStore(engine)
    job = jobs.get(job_id)
    if job.status is JobStatus.PENDING:
        jobs.mark_running(job_id)  # Kubernetes: the pod may start before the operator reflects it
        job = jobs.get(job_id)
    if job.status is not JobStatus.RUNNING:
        write_termination_message(termination_log, f"job {job_id} is {job.status.value}; nothing to do")
        return EXIT_NOT_RUNNABLE

    disk_guard = _disk_guard(settings)

    def progress(counters: RunCounters, message: str) -> bool:
        disk_guard()
        return jobs.update_progress(
            job_id,
            phase=counters.phase,
            message=message,
            files_seen=counters.files_seen,
            files_total=counters.files_total,
            files_indexed=counters.files_indexed,
            files_skipped=counters.files_skipped,
            chunks_created=counters.chunks_created,
        )

    with ExitStack() as stack:
        try:
            if job.source_git_url:
                url, ref = validate_git_source(job.source_git_url, job.source_git_ref)
                jobs.update_progress(job_id, phase="cloning", message=f"cloning {url}")
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="codebase-mcp-git-")))
                root = _clone(url, ref, tmp)
                repository_key = job.repo_path
            else:
                root = validate_repo_path(job.repo_path, allowed_roots=settings.allowed_roots)
                repository_key = job.repo_path
            run = IndexRun(
                store=IndexStore(engine),
                embedder=embedder_from_settings(settings),
                project_id=job.project_id,
                root=root,
                repository_key=repository_key,
                force=job.force_reindex,
                max_file_bytes=settings.max_file_bytes,
                workers=settings.indexer_workers,
                pack_lines=settings.chunk_pack_lines,
                job_id=job_id,
                progress=progress,
                scan_secrets=not _secrets_opted_in(settings, job.repo_path),
            )
            counters = run.run()
        except RunCancelled:
            write_termination_message(termination_log, "the job was cancelled while indexing")
            return EXIT_NOT_RUNNABLE
        except InvalidInput as exc:
            write_termination_message(termination_log, str(exc))
            return EXIT_INVALID
        except CodebaseMCPError as exc:
            write_termination_message(termination_log, str(exc))
            return EXIT_FAILED
        except (OperationalError, InterfaceError) as exc:
            log.exception("indexing job %s lost its database", job_id)
            if "No space left on device" in str(exc.orig) or "could not extend file" in str(exc.orig):
                where = settings.pgdata_dir if is_embedded(settings) else "the database server"
                write_termination_message(
                    termination_log,
                    f"out of disk space: the disk holding {where} is full ({_first_line(exc.orig)}); "
                    "free some space there and retry; the previous index is unchanged",
                )
                return EXIT_FAILED
            write_termination_message(
                termination_log,
                f"lost the connection to the database (PostgreSQL restarted or unreachable?): "
                f"{redact_urls(_first_line(exc.orig))}; the previous index is unchanged, retry the job",
            )
            return EXIT_FAILED
        except Exception as exc:  # the reason must reach the job row, whatever it was
            log.exception("indexing job %s failed", job_id)
            write_termination_message(termination_log, f"{type(exc).__name__}: {redact_urls(str(exc))}")
            return EXIT_FAILED
    summary = (
        f"indexed {counters.files_indexed} files ({counters.files_changed} new or changed, "
        f"{counters.files_unchanged} unchanged, {counters.files_removed} removed, "
        f"{counters.files_skipped} skipped{_reasons(counters.skipped_reasons)}) "
        f"into {counters.chunks_created} new chunks"
    )
    if counters.tokens_redacted:
        summary += f"; {counters.tokens_redacted} secret tokens redacted in {counters.files_redacted} files"
    if counters.warnings:
        summary += "; " + "; ".join(counters.warnings[:10])
    jobs.update_progress(
        job_id,
        phase="done",
        message=summary,
        files_seen=counters.files_seen,
        files_total=counters.files_total,
        files_indexed=counters.files_indexed,
        files_skipped=counters.files_skipped,
        chunks_created=counters.chunks_created,
    )
    write_termination_message(termination_log, summary)
    return EXIT_OK


class OutOfDisk(CodebaseMCPError):
    """The disk holding the embedded database is (nearly) full."""


def _disk_guard(settings: Settings) -> Callable[[], None]:
    """Stop the run before PostgreSQL runs out of disk (a full disk made it panic and not start
    again): checked with each progress report, at most once a second."""
    if not is_embedded(settings) or settings.min_free_disk_mb <= 0:
        return lambda: None
    minimum = settings.min_free_disk_mb * 1024 * 1024
    last = [0.0]

    def check() -> None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return
        last[0] = now
        free = free_bytes(settings.pgdata_dir)
        if free is not None and free < minimum:
            raise OutOfDisk(
                f"out of disk space: only {free // (1024 * 1024)} MB left on the disk holding "
                f"{settings.pgdata_dir} (CODEBASE_MIN_FREE_DISK_MB is {settings.min_free_disk_mb}); "
                "the run was stopped and the previous index is unchanged: free some space and retry"
            )

    return check


def _secrets_opted_in(settings: Settings, repo_path: str) -> bool:
    """Whether the user listed this repository in CODEBASE_INDEX_SECRETS_ROOTS."""
    if not repo_path.startswith("/"):
        return False
    path = Path(repo_path)
    return any(path == root or root in path.parents for root in settings.index_secrets_roots)


def _reasons(counts: dict[str, int]) -> str:
    """': 2 binary, 1 minified', most frequent first; '' when nothing was skipped."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ": " + ", ".join(f"{count} {reason}" for reason, count in ranked) if ranked else ""
