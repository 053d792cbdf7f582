"""Supervises one local indexing job: `python -m mcp_server.runners.supervisor --job-id ID`.

It does for one job what the operator does for a pod: runs the indexer entrypoint as a child,
heartbeats the row, enforces the timeout, kills the child when the row leaves `running` (a
cancel), and turns the child's exit into the terminal state with a reason. Then it dispatches the
next pending job.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mcp_server.core import lifecycle, logs
from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.lifecycle import Outcome
from mcp_server.core.settings import (
    DatabaseSettings,
    IndexingSettings,
    JobSettings,
    LoggingSettings,
    Settings,
    load_settings,
)
from mcp_server.db.database import get_engine
from mcp_server.db.errors import DATABASE_ERRORS, first_line
from mcp_server.index.store import IndexStore
from mcp_server.index.vector_indexes import BuildBudget, VectorIndexes
from mcp_server.indexer.outcome import RETRY_NEVER, SHARD_RETRIES, IndexerExit, failure_reason
from mcp_server.runners.local import LocalLauncher

log = logging.getLogger("codebase_mcp.supervisor")

POLL_SECONDS = 0.25
HEARTBEAT_SECONDS = 5.0
KILL_GRACE_SECONDS = 10.0
# How long the job's outcome is retried while the database is away (a restart, a failover).
RECORD_RETRY_SECONDS = 600.0
_PR_SET_PDEATHSIG = 1
T = TypeVar("T")


def _die_with_parent() -> None:
    """In the child: get SIGKILL if the supervisor dies, so no indexer outlives its supervisor."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    _kill_leftovers(child)


def _kill_leftovers(child: subprocess.Popen[bytes]) -> None:
    """Kill what the indexer left in its process group once it is gone.

    Why: its parser pool's workers and multiprocessing's fork server do not notice the indexer's
    death (each worker holds the fork server's "alive" pipe and waits on its task queue), so an
    indexer killed by SIGKILL or the OOM killer would leave them running for ever.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):  # nothing left
        os.killpg(child.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class _ShardProcess:
    """One indexer child: the whole job, or one shard of a sharded one."""

    index: int | None  # None: an unsharded job
    reason_path: Path
    log_path: Path
    attempts: int = 0
    child: subprocess.Popen[bytes] | None = None

    def start(self, job_id: uuid.UUID, runs: Path, env: dict[str, str]) -> None:
        self.attempts += 1
        self.reason_path.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-P",
            "-m",
            "mcp_server.frontends.cli",
            "indexer",
            "run",
            "--job-id",
            str(job_id),
            "--termination-log",
            str(self.reason_path),
        ]
        if self.index is not None:
            command += ["--shard", str(self.index)]
        with open(self.log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log_file:
            self.child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=runs,
                env=env,
                preexec_fn=_die_with_parent,
                process_group=0,  # its own group, so that _kill_leftovers reaches its workers
            )


def _shard_env(shards: int, parallel: int) -> dict[str, str]:
    """The children's environment: shards that run side by side share the cores, so each gets
    its share of parser workers unless the user chose a number."""
    env = dict(os.environ)
    if shards > 1 and "CODEBASE_INDEXER_WORKERS" not in env:
        env["CODEBASE_INDEXER_WORKERS"] = str(max(1, (os.cpu_count() or 1) // parallel))
    return env


def supervise(settings: Settings, job_id: uuid.UUID) -> int:
    jobs = JobStore(get_engine(settings))
    job = jobs.get(job_id)
    if job.status is not JobStatus.RUNNING:
        log.info("job %s is %s; nothing to supervise", job_id, job.status.value)
        return 0
    runs = settings.database.runs_dir
    runs.mkdir(parents=True, exist_ok=True)
    os.chmod(runs, 0o700)  # job logs may quote repository content and paths: owner only
    timeout = job.timeout_seconds or settings.jobs.timeout_seconds
    # A sharded job runs its shards as children, `parallel` at a time (an Indexed Job's
    # parallelism); a failed shard is run once more by itself (its backoffLimitPerIndex).
    if job.shards > 1:
        processes = [
            _ShardProcess(k, runs / f"{job_id}.{k}.reason", runs / f"{job_id}.shard-{k}.log")
            for k in range(job.shards)
        ]
    else:
        processes = [_ShardProcess(None, runs / f"{job_id}.reason", runs / f"{job_id}.indexer.log")]
    parallel = min(len(processes), settings.jobs.shard_parallelism or os.cpu_count() or 1)
    env = _shard_env(job.shards, parallel)
    queue = deque(processes)
    running: list[_ShardProcess] = []
    failed: _ShardProcess | None = None
    started = time.monotonic()
    last_heartbeat = started
    outcome: str | None = None
    try:
        while (queue or running) and failed is None:
            while queue and len(running) < parallel:
                process = queue.popleft()
                process.start(job_id, runs, env)
                running.append(process)
            time.sleep(POLL_SECONDS)
            now = time.monotonic()
            if now - started > timeout:
                outcome = (
                    f"timed out after {timeout} s (INDEXING_JOB_TIMEOUT_SECONDS); the indexer was stopped"
                )
                break
            if now - last_heartbeat >= HEARTBEAT_SECONDS or now - started < 2:
                last_heartbeat = now
                try:
                    still_running = jobs.heartbeat(job_id)
                except DATABASE_ERRORS as exc:
                    # The database is away for a moment: the indexer decides whether its run
                    # survives it; this process must outlive it to record the outcome.
                    log.warning("job %s: heartbeat failed: %s", job_id, first_line(exc))
                    still_running = True
                if not still_running:  # cancelled or failed elsewhere
                    outcome = "left-running"
                    break
            for process in list(running):
                assert process.child is not None
                if process.child.poll() is None:
                    continue
                _kill_leftovers(process.child)
                running.remove(process)
                code = process.child.returncode
                if code == IndexerExit.INDEXED:
                    continue
                if (
                    process.index is not None
                    and code not in RETRY_NEVER
                    and process.attempts <= SHARD_RETRIES
                ):
                    log.warning(
                        "job %s: shard %d exited with %s; running it again", job_id, process.index, code
                    )
                    queue.appendleft(process)
                    continue
                failed = process
                break
    finally:
        for process in running:
            if process.child is not None:
                _stop(process.child)
    if outcome == "left-running":
        log.info("job %s left the running state; indexer stopped", job_id)
    else:
        _until_it_lands(
            "recording the job's outcome",
            lambda: _record_outcome(jobs, job_id, outcome, failed, len(processes)),
        )
    # Best effort: any later dispatch or server start does both again.
    if outcome is not None or failed is not None:
        indexes = VectorIndexes(jobs.engine, BuildBudget.from_settings(settings))
        _until_it_lands("restoring vector indexes", indexes.restore_missing, 30)
    _until_it_lands("dispatching the next job", LocalLauncher(settings, jobs).dispatch, 30)
    return 0


def _record_outcome(
    jobs: JobStore,
    job_id: uuid.UUID,
    outcome: str | None,
    failed: _ShardProcess | None,
    shards: int,
) -> None:
    if outcome is not None:
        result = Outcome.failed(outcome)
    elif failed is None:
        result = lifecycle.succeeded(
            shards, published=shards > 1 and IndexStore(jobs.engine).published_by(job_id)
        )
    else:
        assert failed.child is not None
        returncode = failed.child.returncode
        if returncode == IndexerExit.NOT_RUNNABLE and jobs.get(job_id).status is not JobStatus.RUNNING:
            return  # cancelled meanwhile: the row already says so
        reason = failure_reason(returncode, _tail(failed.reason_path, 20) or _tail(failed.log_path))
        if failed.index is not None:
            reason = f"shard {failed.index + 1} of {shards} (attempt {failed.attempts}): {reason}"
        result = Outcome.failed(reason)
    lifecycle.record(
        jobs,
        job_id,
        result,
        on_recorded=lambda o: log.info("job %s: %s", job_id, o.reason or o.status.value),
    )


def _until_it_lands(what: str, action: Callable[[], T], patience: float = RECORD_RETRY_SECONDS) -> T | None:
    """Run a database call, retrying while PostgreSQL is unreachable.

    Why: a terminal state that never lands leaves the job `running` until some other process
    reconciles it, with a vaguer reason; a database restart takes seconds.
    """
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return action()
        except DATABASE_ERRORS as exc:
            if time.monotonic() + delay > deadline:
                log.error("%s: gave up after %.0f s: %s", what, patience, first_line(exc))
                return None
            log.warning("%s failed, retrying in %.1f s: %s", what, delay, first_line(exc))
            time.sleep(delay)
            delay = min(2 * delay, 5.0)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="codebase-mcp-supervisor")
    parser.add_argument("--job-id", required=True, type=uuid.UUID)
    args = parser.parse_args(argv)
    # SIGTERM (e.g. a system shutdown) must still stop the child and record a failure.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # IndexingSettings: the vector build budget of the indexes it restores.
    settings = load_settings(DatabaseSettings, JobSettings, LoggingSettings, IndexingSettings)
    logs.set_context(job_id=str(args.job_id))
    logs.configure("INFO", settings.logging.format)
    try:
        return supervise(settings, args.job_id)
    except SystemExit:
        JobStore(get_engine(settings)).fail(args.job_id, "the supervising process was terminated (SIGTERM)")
        raise
    except Exception as exc:  # the job must not stay `running` because its supervisor broke
        log.exception("supervisor failed")
        JobStore(get_engine(settings)).fail(args.job_id, f"the supervising process failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
