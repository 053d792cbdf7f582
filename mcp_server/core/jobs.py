"""The indexing job store and its state machine: the only code that writes `indexing_jobs` rows.

    pending --> running --> completed
       |           |------> failed
       |           '------> cancelled
       |------------------> failed
       '------------------> cancelled

Every transition is one conditional UPDATE (`WHERE id = :id AND status IN (:allowed_from)`), so
replayed, repeated or out-of-order events (a watch replaying, a restarted operator, two replicas,
a cancel racing a completion) are harmless: the first one to land wins and a terminal row never
changes again. `transition()` returns whether it applied; callers treat False as "someone else
already decided".

The MCP tools, the CLI, the local launcher, the indexer (progress only) and the Kubernetes operator
all go through this module.

About 480 lines, kept whole: the row, its state machine and the only SQL that moves it, so no
transition can bypass the rules.
"""

from __future__ import annotations

import builtins
import enum
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, Text, and_, case, delete, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Engine, RowMapping

from mcp_server.core.errors import InvalidTransition, JobNotFound
from mcp_server.db.schema import indexing_jobs, job_shards


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


class JobPhase(enum.StrEnum):
    """What a job is doing, finer than its status: the `phase` column and `get_indexing_status`.

    The indexer writes the running phases; the state machine writes QUEUED, STARTING and, on a
    terminal transition, the terminal status's own name. DONE is the indexer's last word: it has
    published and written its summary, and only the runner's terminal transition is left.
    """

    QUEUED = "queued"
    STARTING = "starting"
    CLONING = "cloning"
    SCANNING = "scanning"
    PARSING = "parsing"
    EMBEDDING = "embedding"
    WRITING = "writing"
    DONE = "done"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})

# target state -> the states it may be entered from
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset(),
    JobStatus.RUNNING: frozenset({JobStatus.PENDING}),
    JobStatus.COMPLETED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.PENDING, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING, JobStatus.RUNNING}),
}

MAX_ERROR_MESSAGE_CHARS = 4000


@dataclass(frozen=True, slots=True)
class Job:
    id: uuid.UUID
    repo_path: str
    project_id: str
    status: JobStatus
    error_message: str | None
    files_indexed: int
    chunks_created: int
    started_at: datetime | None
    completed_at: datetime | None
    created_at: datetime
    force_reindex: bool
    source_git_url: str | None
    source_git_ref: str | None
    phase: str | None
    progress_message: str | None
    files_seen: int
    files_total: int | None
    files_skipped: int
    timeout_seconds: int | None
    updated_at: datetime
    heartbeat_at: datetime | None
    runner: str | None
    k8s_namespace: str | None
    k8s_name: str | None
    k8s_job_name: str | None
    progress_fraction: float | None
    remaining_seconds: float | None
    shards: int = 1  # how many shards the run is split into
    source_git_secret: str | None = None  # the Kubernetes Secret the clone step reads (its name)

    @classmethod
    def from_row(cls, row: RowMapping) -> Job:
        values = {f.name: row[f.name] for f in fields(cls)}
        values["status"] = JobStatus(values["status"])
        return cls(**values)

    @property
    def percent(self) -> float | None:
        """Share of the whole run done: the indexer's estimate over every phase (so 100 only once the
        job completed); from files alone for rows an older indexer wrote; None until known."""
        if self.status is JobStatus.COMPLETED:
            return 100.0
        if self.progress_fraction is not None:
            # Never 100 before the runner has recorded the end: the last step is still to come.
            return round(min(99.9, 100.0 * self.progress_fraction), 1)
        if not self.files_total:
            return None
        return round(min(100.0, 100.0 * self.files_seen / self.files_total), 1)

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left: the indexer's estimate, counted down since it reported; else extrapolated
        from the file rate; None when it cannot be estimated."""
        if self.status is not JobStatus.RUNNING:
            return None
        if self.remaining_seconds is not None:
            since = max(0.0, (datetime.now(UTC) - self.updated_at).total_seconds())
            return round(max(1.0, self.remaining_seconds - since), 1)
        if self.started_at is None or not self.files_total:
            return None
        if self.files_seen <= 0:
            return None
        elapsed = (self.updated_at - self.started_at).total_seconds()
        if elapsed <= 0:
            return None
        remaining = max(0, self.files_total - self.files_seen)
        return round(remaining * elapsed / self.files_seen, 1)


@dataclass(frozen=True, slots=True)
class ShardProgress:
    """One shard of a sharded run, as its last progress report left it."""

    shard: int  # 0-based, as JOB_COMPLETION_INDEX numbers the pods of an Indexed Job
    status: str  # running, done
    attempts: int
    phase: str | None
    message: str | None
    files_seen: int
    files_total: int | None
    files_indexed: int
    chunks_created: int
    progress_fraction: float | None


def _clip(message: str | None) -> str | None:
    if message is None:
        return None
    return (
        message if len(message) <= MAX_ERROR_MESSAGE_CHARS else message[: MAX_ERROR_MESSAGE_CHARS - 1] + "…"
    )


class JobStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- creating and reading -------------------------------------------------------------------

    def create(
        self,
        *,
        repo_path: str,
        project_id: str,
        force_reindex: bool = False,
        job_id: uuid.UUID | None = None,
        timeout_seconds: int | None = None,
        source_git_url: str | None = None,
        source_git_ref: str | None = None,
        source_git_secret: str | None = None,
        k8s_namespace: str | None = None,
        k8s_name: str | None = None,
        unless_active: bool = False,
        shards: int = 1,
    ) -> Job:
        """Insert a `pending` job. With an explicit `job_id` that already exists, return that row
        (idempotent: the operator adopting a row the MCP tool created, or a replayed event). With
        `unless_active`, return the repository's pending or running job instead if it has one
        (atomically: compare the returned id with `job_id` to tell)."""
        job_id = job_id or uuid.uuid4()
        values: dict[str, Any] = {
            "id": job_id,
            "repo_path": repo_path,
            "project_id": project_id,
            "status": JobStatus.PENDING.value,
            "force_reindex": force_reindex,
            "timeout_seconds": timeout_seconds,
            "source_git_url": source_git_url,
            "source_git_ref": source_git_ref,
            "source_git_secret": source_git_secret,
            "k8s_namespace": k8s_namespace,
            "k8s_name": k8s_name,
            "phase": JobPhase.QUEUED,
            "shards": shards,
        }
        with self._engine.begin() as conn:
            if unless_active:
                # Clients that start one repository at the same moment (two MCP servers, a CLI)
                # must get one job, never two runs writing the same index generation at once.
                # Transaction-scoped lock: held until the new row is committed.
                key = f"start:{project_id}:{repo_path}"
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
                active = conn.execute(self._active_query(project_id, repo_path)).mappings().one_or_none()
                if active is not None:
                    return Job.from_row(active)
            conn.execute(
                pg_insert(indexing_jobs).values(**values).on_conflict_do_nothing(index_elements=["id"])
            )
            row = conn.execute(select(indexing_jobs).where(indexing_jobs.c.id == job_id)).mappings().one()
        return Job.from_row(row)

    def get(self, job_id: uuid.UUID, *, project_id: str | None = None) -> Job:
        query = select(indexing_jobs).where(indexing_jobs.c.id == job_id)
        if project_id is not None:
            query = query.where(indexing_jobs.c.project_id == project_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
        if row is None:
            scope = f" in project {project_id!r}" if project_id is not None else ""
            raise JobNotFound(f"no indexing job with id {job_id}{scope}")
        return Job.from_row(row)

    def list(
        self,
        *,
        status: JobStatus | None = None,
        project_id: str | None = None,
        limit: int = 20,
    ) -> builtins.list[Job]:
        query = select(indexing_jobs).order_by(indexing_jobs.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(indexing_jobs.c.status == status.value)
        if project_id is not None:
            query = query.where(indexing_jobs.c.project_id == project_id)
        with self._engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    @staticmethod
    def _active_query(project_id: str, repo_path: str) -> Select[Any]:
        return (
            select(indexing_jobs)
            .where(
                indexing_jobs.c.project_id == project_id,
                indexing_jobs.c.repo_path == repo_path,
                indexing_jobs.c.status.in_([s.value for s in ACTIVE_STATUSES]),
            )
            .order_by(indexing_jobs.c.created_at)
            .limit(1)
        )

    def find_by_k8s_name(self, *, namespace: str, name: str) -> Job | None:
        query = (
            select(indexing_jobs)
            .where(indexing_jobs.c.k8s_namespace == namespace, indexing_jobs.c.k8s_name == name)
            .order_by(indexing_jobs.c.created_at.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().one_or_none()
        return Job.from_row(row) if row else None

    def count_by_status(self) -> dict[JobStatus, int]:
        query = select(indexing_jobs.c.status, func.count()).group_by(indexing_jobs.c.status)
        counts = dict.fromkeys(JobStatus, 0)
        with self._engine.connect() as conn:
            for status, count in conn.execute(query):
                counts[JobStatus(status)] = count
        return counts

    def pending_in_order(self, *, limit: int) -> builtins.list[Job]:
        query = (
            select(indexing_jobs)
            .where(indexing_jobs.c.status == JobStatus.PENDING.value)
            .order_by(indexing_jobs.c.created_at, indexing_jobs.c.id)
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    # --- the state machine ----------------------------------------------------------------------

    def transition(
        self,
        job_id: uuid.UUID,
        target: JobStatus,
        *,
        error_message: str | None = None,
        message: str | None = None,
        runner: str | None = None,
        files_indexed: int | None = None,
        chunks_created: int | None = None,
        keep_indexer_summary: bool = False,
    ) -> bool:
        """Move the job to `target` if its current state allows it; True when this call applied it.

        Only these columns can change with a transition: the timestamps and phase the state machine
        owns, the messages, the runner that took the job, and the final counters.
        """
        allowed = ALLOWED_FROM[target]
        if not allowed:
            raise InvalidTransition(f"no transition leads into {target.value!r}")
        values: dict[str, Any] = {"status": target.value, "updated_at": func.now()}
        if target is JobStatus.RUNNING:
            values["started_at"] = func.now()
            values["heartbeat_at"] = func.now()
            values["phase"] = JobPhase.STARTING
            values["runner"] = runner
        else:
            values["completed_at"] = func.now()
            values["phase"] = JobPhase(target.value)
        if error_message is not None:
            values["error_message"] = _clip(error_message)
        if message is not None:
            values["progress_message"] = _clip(message)
        if files_indexed is not None:
            values["files_indexed"] = files_indexed
        if chunks_created is not None:
            values["chunks_created"] = chunks_created
        if keep_indexer_summary:
            # The indexer's own summary ("indexed 120 files (3 new or changed, ...) into 40 new
            # chunks"), its last progress message (phase DONE), says more than a generic line.
            values["progress_message"] = case(
                (indexing_jobs.c.phase == JobPhase.DONE.value, indexing_jobs.c.progress_message),
                else_=literal(_clip(message or "indexing completed")),
            )
        stmt = (
            update(indexing_jobs)
            .where(
                indexing_jobs.c.id == job_id,
                indexing_jobs.c.status.in_([s.value for s in allowed]),
            )
            .values(**values)
        )
        with self._engine.begin() as conn:
            applied = conn.execute(stmt).rowcount == 1
        return applied

    def mark_running(self, job_id: uuid.UUID, *, runner: str | None = None) -> bool:
        return self.transition(job_id, JobStatus.RUNNING, runner=runner)

    def complete(
        self, job_id: uuid.UUID, *, files_indexed: int | None = None, chunks_created: int | None = None
    ) -> bool:
        return self.transition(
            job_id,
            JobStatus.COMPLETED,
            files_indexed=files_indexed,
            chunks_created=chunks_created,
            keep_indexer_summary=True,
        )

    def fail(self, job_id: uuid.UUID, reason: str) -> bool:
        return self.transition(job_id, JobStatus.FAILED, error_message=reason)

    def cancel(self, job_id: uuid.UUID, reason: str = "cancelled by request") -> bool:
        return self.transition(job_id, JobStatus.CANCELLED, error_message=reason)

    # --- progress (only while running; never changes the state) ---------------------------------

    def update_progress(
        self,
        job_id: uuid.UUID,
        *,
        phase: JobPhase | None = None,
        message: str | None = None,
        files_seen: int | None = None,
        files_total: int | None = None,
        files_indexed: int | None = None,
        files_skipped: int | None = None,
        chunks_created: int | None = None,
        progress_fraction: float | None = None,
        remaining_seconds: float | None = None,
    ) -> bool:
        """Record progress; returns False when the job is no longer running (cancelled, failed),
        which tells the indexer to stop."""
        values: dict[str, Any] = {"updated_at": func.now(), "heartbeat_at": func.now()}
        for name, value in (
            ("phase", phase),
            ("progress_message", _clip(message)),
            ("files_seen", files_seen),
            ("files_total", files_total),
            ("files_indexed", files_indexed),
            ("files_skipped", files_skipped),
            ("chunks_created", chunks_created),
            ("progress_fraction", progress_fraction),
            ("remaining_seconds", remaining_seconds),
        ):
            if value is not None:
                values[name] = value
        stmt = (
            update(indexing_jobs)
            .where(indexing_jobs.c.id == job_id, indexing_jobs.c.status == JobStatus.RUNNING.value)
            .values(**values)
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def update_shard_progress(
        self,
        job_id: uuid.UUID,
        shard: int,
        *,
        phase: JobPhase,
        message: str,
        files_seen: int,
        files_total: int | None,
        files_indexed: int,
        files_skipped: int,
        chunks_created: int,
        progress_fraction: float | None,
        remaining_seconds: float | None,
    ) -> bool:
        """Record one shard's progress, then the job's as the sum of its shards' (files, chunks),
        their mean share done (a shard not started yet counts as 0) and the longest time left;
        returns False when the job is no longer running. One transaction, so a reader never sees
        the job's sums disagree with its shards'."""
        with self._engine.begin() as conn:
            conn.execute(
                update(job_shards)
                .where(job_shards.c.job_id == job_id, job_shards.c.shard == shard)
                .values(
                    phase=phase,
                    message=_clip(message),
                    files_seen=files_seen,
                    files_total=files_total,
                    files_indexed=files_indexed,
                    files_skipped=files_skipped,
                    chunks_created=chunks_created,
                    progress_fraction=progress_fraction,
                    remaining_seconds=remaining_seconds,
                    updated_at=func.now(),
                )
            )
            totals = conn.execute(
                select(
                    func.count().label("started"),
                    func.count().filter(job_shards.c.status == "done").label("done"),
                    func.sum(job_shards.c.files_seen).label("files_seen"),
                    func.sum(job_shards.c.files_total).label("files_total"),
                    func.count(job_shards.c.files_total).label("totals_known"),
                    func.sum(job_shards.c.files_indexed).label("files_indexed"),
                    func.sum(job_shards.c.files_skipped).label("files_skipped"),
                    func.sum(job_shards.c.chunks_created).label("chunks_created"),
                    func.sum(
                        case((job_shards.c.status == "done", 1.0), else_=job_shards.c.progress_fraction)
                    ).label("fraction"),
                    func.max(job_shards.c.remaining_seconds).label("remaining"),
                    func.max(indexing_jobs.c.shards).label("shards"),
                )
                .select_from(job_shards.join(indexing_jobs, indexing_jobs.c.id == job_shards.c.job_id))
                .where(job_shards.c.job_id == job_id)
            ).one()
            count = int(totals.shards or 1)
            done = int(totals.done or 0)
            summary = f"{done} of {count} shards done; shard {shard + 1}: {message}"
            all_counted = totals.totals_known == count
            stmt = (
                update(indexing_jobs)
                .where(indexing_jobs.c.id == job_id, indexing_jobs.c.status == JobStatus.RUNNING.value)
                .values(
                    updated_at=func.now(),
                    heartbeat_at=func.now(),
                    # A shard at its end says nothing of the run's phase: the others work on.
                    phase=indexing_jobs.c.phase if phase is JobPhase.DONE else phase,
                    progress_message=_clip(summary),
                    files_seen=int(totals.files_seen or 0),
                    # The total is known once every shard has counted its part.
                    files_total=int(totals.files_total) if all_counted else None,
                    files_indexed=int(totals.files_indexed or 0),
                    files_skipped=int(totals.files_skipped or 0),
                    chunks_created=int(totals.chunks_created or 0),
                    progress_fraction=(
                        round(float(totals.fraction) / count, 4) if totals.fraction is not None else None
                    ),
                    remaining_seconds=totals.remaining,
                )
            )
            return conn.execute(stmt).rowcount == 1

    def shard_progress(self, job_id: uuid.UUID) -> builtins.list[ShardProgress]:
        """The shards of a sharded run that have started, in order (the operator shows them in
        the IndexingRequest's status, `codebase-mcp status` in its output)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(job_shards).where(job_shards.c.job_id == job_id).order_by(job_shards.c.shard)
            ).mappings()
            return [
                ShardProgress(
                    shard=row["shard"],
                    status=row["status"],
                    attempts=row["attempts"],
                    phase=row["phase"],
                    message=row["message"],
                    files_seen=row["files_seen"],
                    files_total=row["files_total"],
                    files_indexed=row["files_indexed"],
                    chunks_created=row["chunks_created"],
                    progress_fraction=row["progress_fraction"],
                )
                for row in rows
            ]

    def set_runner(self, job_id: uuid.UUID, runner: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(update(indexing_jobs).where(indexing_jobs.c.id == job_id).values(runner=runner))

    def heartbeat(self, job_id: uuid.UUID) -> bool:
        stmt = (
            update(indexing_jobs)
            .where(indexing_jobs.c.id == job_id, indexing_jobs.c.status == JobStatus.RUNNING.value)
            .values(heartbeat_at=func.now())
        )
        with self._engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def set_kubernetes_names(
        self,
        job_id: uuid.UUID,
        *,
        namespace: str | None = None,
        name: str | None = None,
        job_name: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"updated_at": func.now()}
        if namespace is not None:
            values["k8s_namespace"] = namespace
        if name is not None:
            values["k8s_name"] = name
        if job_name is not None:
            values["k8s_job_name"] = job_name
        with self._engine.begin() as conn:
            conn.execute(update(indexing_jobs).where(indexing_jobs.c.id == job_id).values(**values))

    def active(self, *, project_id: str, repo_path: str | None = None) -> builtins.list[Job]:
        """The pending and running jobs of a project (of one repository when given)."""
        query = select(indexing_jobs).where(
            indexing_jobs.c.project_id == project_id,
            indexing_jobs.c.status.in_([s.value for s in ACTIVE_STATUSES]),
        )
        if repo_path is not None:
            query = query.where(indexing_jobs.c.repo_path == repo_path)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(indexing_jobs.c.created_at)).mappings()
            return [Job.from_row(r) for r in rows]

    def prune(self, *, older_than_days: int, keep: int, project_id: str | None = None) -> int:
        """Delete finished jobs older than `older_than_days`, and all but the newest `keep` finished
        ones (of one project when given); pending and running jobs are never touched."""
        finished = indexing_jobs.c.status.in_([s.value for s in TERMINAL_STATUSES])
        scope = [finished] if project_id is None else [finished, indexing_jobs.c.project_id == project_id]
        newest = (
            select(indexing_jobs.c.id).where(*scope).order_by(indexing_jobs.c.created_at.desc()).limit(keep)
        )
        old = indexing_jobs.c.completed_at < func.now() - func.make_interval(0, 0, 0, older_than_days)
        stmt = delete(indexing_jobs).where(*scope, or_(old, indexing_jobs.c.id.not_in(newest)))
        with self._engine.begin() as conn:
            return int(conn.execute(stmt).rowcount or 0)

    def stale_running(self, *, older_than_seconds: int) -> builtins.list[Job]:
        """Running jobs whose heartbeat is older than the threshold (their supervisor is gone)."""
        query = select(indexing_jobs).where(
            and_(
                indexing_jobs.c.status == JobStatus.RUNNING.value,
                indexing_jobs.c.heartbeat_at
                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
            )
        )
        with self._engine.connect() as conn:
            return [Job.from_row(r) for r in conn.execute(query).mappings()]

    def running(self) -> builtins.list[Job]:
        return self.list(status=JobStatus.RUNNING, limit=10_000)

    def ids_with_prefix(self, prefix: str, *, limit: int = 10) -> builtins.list[uuid.UUID]:
        """Ids of the jobs whose id starts with `prefix` (lowercase hex and '-'), newest first."""
        query = (
            select(indexing_jobs.c.id)
            .where(func.cast(indexing_jobs.c.id, Text).startswith(prefix, autoescape=True))
            .order_by(indexing_jobs.c.created_at.desc())
            .limit(limit)
        )
        with self._engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]
