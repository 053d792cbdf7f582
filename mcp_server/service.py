"""What the MCP tools and the CLI do, apart from how they talk: one place for each operation.

Both front ends call these methods and render the returned dictionaries; every refusal is a
CodebaseMCPError with a message written for a person, which each front end reports its own way.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cached_property
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.config import DEFAULT_PROJECT_ID, Settings
from mcp_server.db.database import get_engine
from mcp_server.embeddings.base import Embedder
from mcp_server.errors import InvalidInput
from mcp_server.index_store import IndexStore
from mcp_server.jobs import Job, JobStatus, JobStore
from mcp_server.launchers import Launcher, create_launcher
from mcp_server.search import DEFAULT_CONTEXT_LINES, DEFAULT_MAX_CHARS, Searcher
from mcp_server.validation import validate_job_id, validate_project_id, validate_repo_path

MAX_LIST_LIMIT = 200


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def job_to_dict(job: Job) -> dict[str, Any]:
    return {
        "job_id": str(job.id),
        "status": job.status.value,
        "repo_path": job.repo_path,
        "project_id": job.project_id,
        "files_indexed": job.files_indexed,
        "chunks_created": job.chunks_created,
        "error_message": job.error_message,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
        "phase": job.phase,
        "progress_message": job.progress_message,
        "files_seen": job.files_seen,
        "files_total": job.files_total,
        "files_skipped": job.files_skipped,
        "percent": job.percent,
        "eta_seconds": job.eta_seconds,
        "force_reindex": job.force_reindex,
    }


class CodebaseService:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self._engine = engine

    @cached_property
    def engine(self) -> Engine:
        return self._engine or get_engine(self.settings)

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.engine)

    @cached_property
    def launcher(self) -> Launcher:
        return create_launcher(self.settings, self.jobs)

    @cached_property
    def embedder(self) -> Embedder:
        from mcp_server.indexing.entrypoint import embedder_from_settings

        embedder: Embedder = embedder_from_settings(self.settings)
        return embedder

    @cached_property
    def searcher(self) -> Searcher:
        return Searcher(self.engine, self.embedder, statement_timeout_ms=self.settings.search_timeout_ms)

    def ping(self) -> None:
        """Raise unless the database answers (health checks)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- jobs -----------------------------------------------------------------------------------

    def start_indexing(
        self, repo_path: str, project_id: str | None = None, force_reindex: bool = False
    ) -> dict[str, Any]:
        if not isinstance(force_reindex, bool):
            raise InvalidInput("force_reindex must be true or false")
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        root = validate_repo_path(repo_path, allowed_roots=self.settings.allowed_roots)
        new_id = uuid.uuid4()
        job = self.jobs.create(
            job_id=new_id,
            repo_path=str(root),
            project_id=project,
            force_reindex=force_reindex,
            timeout_seconds=self.settings.indexing_job_timeout_seconds,
            unless_active=True,
        )
        if job.id != new_id:
            # Decision: a forced request that joins a running job is not queued behind it; the
            # answer says the force was not applied, so the caller can ask again once it is done.
            forced_note = ""
            if force_reindex and not job.force_reindex:
                forced_note = (
                    "; force_reindex was NOT applied (that job is an incremental run): call again with "
                    "force_reindex=true once it has finished"
                )
            return {
                "job_id": str(job.id),
                "status": job.status.value,
                "project_id": project,
                "joined_existing_job": True,
                "force_reindex_applied": job.force_reindex,
                "message": (
                    f"{root} is already being indexed in project {project!r} by job {job.id}; "
                    f"poll get_indexing_status with that job_id{forced_note}"
                ),
            }
        self.launcher.submit(job)
        return {
            "job_id": str(job.id),
            "status": JobStatus.PENDING.value,
            "project_id": project,
            "message": (
                f"indexing of {root} queued; poll get_indexing_status(job_id) until the status is "
                "completed, failed or cancelled"
            ),
        }

    def get_status(self, job_id: str, project_id: str | None = None) -> dict[str, Any]:
        job_uuid = validate_job_id(job_id)
        project = validate_project_id(project_id) if project_id is not None else None
        return job_to_dict(self.jobs.get(job_uuid, project_id=project))

    def list_jobs(
        self, status: str | None = None, project_id: str | None = None, limit: int = 20
    ) -> dict[str, Any]:
        if status is not None and status not in {s.value for s in JobStatus}:
            raise InvalidInput(f"status must be one of {', '.join(s.value for s in JobStatus)}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}")
        project = validate_project_id(project_id) if project_id is not None else None
        jobs = self.jobs.list(status=JobStatus(status) if status else None, project_id=project, limit=limit)
        return {"jobs": [job_to_dict(j) for j in jobs], "count": len(jobs)}

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(validate_job_id(job_id))
        if job.status.is_terminal:
            return {
                "job_id": str(job.id),
                "status": job.status.value,
                "cancelled": False,
                "message": f"job is already {job.status.value}; nothing to cancel",
            }
        cancelled = self.launcher.cancel(job)
        current = self.jobs.get(job.id)
        # The publish step locks the job row, so after a cancel this answer is the truth: either the
        # run never published, or it had published before the cancel landed.
        published = IndexStore(self.engine).published_by(job.id)
        if cancelled and published:
            message = (
                "job cancelled after it had already published its index: the new index of the "
                "repository is live and searchable"
            )
        elif cancelled:
            message = "job cancelled; the previous index of the repository stays searchable"
        else:
            message = f"job finished as {current.status.value} before it could be cancelled"
        return {
            "job_id": str(job.id),
            "status": current.status.value,
            "cancelled": cancelled,
            "new_index_published": published,
            "message": message,
        }

    # --- search ---------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        project_id: str | None = None,
        limit: int = 10,
        language: str | None = None,
        path: str | None = None,
        mode: str = "hybrid",
        file_type: str | list[str] | None = None,
        concise: bool = False,
        context_lines: int = DEFAULT_CONTEXT_LINES,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        response = self.searcher.search(
            query,
            project_id=project,
            limit=limit,
            mode=mode,
            language=language,
            path=path,
            file_type=file_type,
            concise=concise,
            context_lines=context_lines,
            max_chars=max_chars,
        )
        return {
            "results": [r.to_dict() for r in response.results],
            "total_count": response.total_count,
            "project_id": response.project_id,
            "mode": response.mode,
            "latency_ms": response.latency_ms,
            "truncated": response.truncated,
        }

    def reconcile(self) -> None:
        """Repair what a crash left: dead runners, queued jobs with free slots, dropped vector indexes."""
        self.launcher.reconcile()
        dispatch = getattr(self.launcher, "dispatch", None)
        if dispatch is not None:
            dispatch()
        IndexStore(self.engine).restore_vector_indexes()
