"""The local launcher: each running job is a detached supervisor process that runs the indexer.

    MCP tool / CLI --create row--> dispatch() --mark running--> supervisor (new session)
                                                                  '--> indexer entrypoint

Why a supervisor per job, detached into its own session: the job must finish with the right status
after the MCP server or the CLI that started it exits (a stdio client closes its server whenever
it likes). The supervisor plays the operator's part for one job: it maps the indexer's exit to
`completed`/`failed`, enforces the timeout, notices a cancel (the row leaves `running`) and kills
the indexer, and heartbeats the row.

Queueing: `dispatch()` runs under a PostgreSQL advisory lock, counts running jobs and starts the
oldest pending ones up to MAX_CONCURRENT_INDEXING_JOBS, one per repository and project
(`core.lifecycle.admissible`, the operator's policy too). It is called when a job is created, when
a supervisor finishes, and when a server or CLI starts, so the queue moves without any daemon.

Dead runners: a running job whose supervisor pid no longer exists on this host, or whose heartbeat
is older than CODEBASE_HEARTBEAT_TIMEOUT_SECONDS (another host, or a frozen process), is failed
with that reason by `reconcile()`, which `dispatch()` runs first. So no job stays `running` forever
once any codebase-mcp process touches the queue again.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import uuid

from sqlalchemy import text

from mcp_server.core import lifecycle
from mcp_server.core.jobs import Job, JobStore
from mcp_server.core.settings import Settings

log = logging.getLogger(__name__)

_DISPATCH_LOCK_KEY = 0x64697370  # "disp"


def runner_id(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_process_start_ticks(pid)}"


def _process_start_ticks(pid: int) -> str:
    """The process start time from /proc, so a reused pid is not mistaken for our supervisor."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def runner_is_alive(runner: str) -> bool | None:
    """True/False for a runner on this host; None when it ran elsewhere (cannot tell)."""
    try:
        host, pid_text, ticks = runner.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return None
    if host != socket.gethostname():
        return None
    if not os.path.exists(f"/proc/{pid}"):
        return False
    current = _process_start_ticks(pid)
    if current != ticks:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class LocalLauncher:
    def __init__(self, settings: Settings, jobs: JobStore) -> None:
        self.settings = settings
        self.jobs = jobs

    def submit(self, job: Job) -> None:
        self.dispatch()

    def cancel(self, job: Job) -> bool:
        # The supervisor sees the row leave `running` within a second and kills the indexer.
        cancelled = self.jobs.cancel(job.id)
        self.dispatch()
        return cancelled

    def reconcile(self) -> None:
        """Fail jobs whose runner died, then start the queued jobs that fit in the free slots."""
        self.dispatch()

    def _fail_dead_runners(self) -> None:
        for job in self.jobs.running():
            reason = None
            if job.runner:
                alive = runner_is_alive(job.runner)
                if alive is False:
                    reason = f"the indexing process ({job.runner}) died without reporting a result"
            if reason is None and job.heartbeat_at is not None:
                stale = self.jobs.stale_running(
                    older_than_seconds=self.settings.jobs.heartbeat_timeout_seconds
                )
                if any(s.id == job.id for s in stale):
                    reason = (
                        f"no heartbeat from the indexing process for over "
                        f"{self.settings.jobs.heartbeat_timeout_seconds} s; it is presumed dead"
                    )
            if reason and self.jobs.fail(job.id, reason):
                log.warning("job %s failed by reconcile: %s", job.id, reason)

    def dispatch(self) -> list[uuid.UUID]:
        """Start the oldest pending jobs while fewer than the limit run; return the ones started."""
        started: list[uuid.UUID] = []
        engine = self.jobs.engine
        with engine.connect() as conn:
            # Transaction-level lock: released at commit, even if this process dies.
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DISPATCH_LOCK_KEY})
            self._fail_dead_runners()
            running = self.jobs.running()
            free = self.settings.jobs.max_concurrent - len(running)
            if free > 0:
                # The operator's rule too: oldest first, one active job per repository and project.
                pending = self.jobs.pending_in_order(limit=10_000)
                for job in lifecycle.admissible(pending, active=running, free=free):
                    if self.jobs.mark_running(job.id):
                        self._spawn_supervisor(job)
                        started.append(job.id)
            conn.commit()
        return started

    def _spawn_supervisor(self, job: Job) -> None:
        runs = self.settings.database.runs_dir
        runs.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(runs, 0o700)  # job logs may quote repository content and paths: owner only
        log_path = runs / f"{job.id}.supervisor.log"
        with open(log_path, "ab", opener=lambda path, flags: os.open(path, flags, 0o600)) as log_file:
            proc = subprocess.Popen(
                # -P and a neutral cwd: a checkout of the sources in the caller's working directory
                # must not shadow the installed package.
                [sys.executable, "-P", "-m", "mcp_server.runners.supervisor", "--job-id", str(job.id)],
                cwd=runs,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the MCP server or CLI that started it
                close_fds=True,
                env=_child_env(),
            )
        # Reap it when it exits, so a long-lived server does not collect zombies.
        threading.Thread(target=proc.wait, name=f"reap-{proc.pid}", daemon=True).start()
        self.jobs.set_runner(job.id, runner_id(proc.pid))
        log.info("job %s: supervisor pid %d started", job.id, proc.pid)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
