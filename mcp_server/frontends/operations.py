"""What the MCP tools and the CLI do, apart from how they talk: one place for each operation.

Both front ends call these methods and render the returned dictionaries; every refusal is a
CodebaseMCPError with a message written for a person, which each front end reports its own way.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import uuid
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidInput, JobNotFound
from mcp_server.core.jobs import Job, JobStatus, JobStore
from mcp_server.core.settings import DEFAULT_PROJECT_ID, Settings
from mcp_server.core.validation import (
    NO_WORKSPACE_ADVICE,
    check_local_git_url,
    git_repository_key,
    validate_git_secret,
    validate_git_source,
    validate_job_id,
    validate_project_id,
    validate_repo_path,
    validate_shards,
)
from mcp_server.db.database import get_engine
from mcp_server.embeddings.base import Embedder
from mcp_server.embeddings.rerankers import create_reranker
from mcp_server.index.catalogue import IndexCatalogue
from mcp_server.index.navigation import Navigator
from mcp_server.index.search import DEFAULT_CONTEXT_LINES, DEFAULT_MAX_CHARS, Searcher
from mcp_server.index.store import IndexStore
from mcp_server.index.vector_indexes import BuildBudget, VectorIndexes
from mcp_server.indexer.languages import canonical_language
from mcp_server.runners import Launcher, create_launcher
from mcp_server.runners.watch import watch_state

MAX_LIST_LIMIT = 200
MIN_JOB_PREFIX = 4
_JOB_PREFIX_RE = re.compile(r"^[0-9a-f-]+$")


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
        "shards": job.shards,
    }


def _count_files(settings: Settings, root: str) -> int:
    """The files a run of `root` would consider (a count-only walk: no contents read)."""
    from mcp_server.indexer.walker import WalkStats, walk_repository

    walk = walk_repository(
        Path(root),
        max_file_bytes=settings.indexing.max_file_bytes,
        extra_ignores=settings.indexing.extra_ignores,
        stats=WalkStats(),
    )
    return sum(1 for _ in walk)


def _freshness(project_id: str, root: str, last_synced_at: object) -> dict[str, Any]:
    """When a repository's index was last published, and whether a watcher in this process knows
    of edits not yet in it (None: nobody here watches it, so nobody knows)."""
    state = watch_state(project_id, root)
    return {
        "last_synced_at": _iso(last_synced_at) if isinstance(last_synced_at, datetime) else None,
        "changes_pending": state.changes_pending if state is not None else None,
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
        from mcp_server.indexer.entrypoint import embedder_from_settings

        embedder: Embedder = embedder_from_settings(self.settings)
        return embedder

    @cached_property
    def searcher(self) -> Searcher:
        search = self.settings.search
        reranker = create_reranker(
            backend=search.reranker,
            url=search.rerank_url,
            model=search.rerank_model,
            api_key=search.rerank_api_key.get_secret_value() if search.rerank_api_key else None,
            model_path=search.rerank_model_path,
            timeout_ms=search.rerank_timeout_ms,
        )
        return Searcher(
            self.engine,
            self.embedder,
            statement_timeout_ms=search.timeout_ms,
            reranker=reranker,
            rerank_candidates=search.rerank_candidates,
        )

    def ping(self) -> None:
        """Raise unless the database answers (health checks)."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    # --- jobs -----------------------------------------------------------------------------------

    def start_indexing(
        self,
        repo_path: str | None = None,
        project_id: str | None = None,
        force_reindex: bool = False,
        *,
        git_url: str | None = None,
        ref: str | None = None,
        shards: int | str | None = None,
        git_secret: str | None = None,
    ) -> dict[str, Any]:
        """Queue a run over a directory (`repo_path`) or a git repository (`git_url`, at `ref`:
        a branch, tag or commit SHA; the default branch when None), and return at once.

        `shards`: split the run across that many indexer processes or pods ('auto': one per
        CODEBASE_FILES_PER_SHARD files). `git_secret`: on the Kubernetes launcher, the Secret
        the clone step reads its credentials from (only its name travels)."""
        if not isinstance(force_reindex, bool):
            raise InvalidInput("force_reindex must be true or false")
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        url, key = self._source(repo_path, git_url, ref)
        secret = self._git_secret(git_secret, url)
        shard_count = validate_shards(
            shards,
            count_files=None if url else lambda: _count_files(self.settings, key),
            files_per_shard=self.settings.jobs.files_per_shard,
        )
        new_id = uuid.uuid4()
        job = self.jobs.create(
            job_id=new_id,
            repo_path=key,
            project_id=project,
            force_reindex=force_reindex,
            timeout_seconds=self.settings.jobs.timeout_seconds,
            source_git_url=url,
            source_git_ref=ref if url else None,
            source_git_secret=secret,
            unless_active=True,
            shards=shard_count,
        )
        root = key
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

    def _source(self, repo_path: str | None, git_url: str | None, ref: str | None) -> tuple[str | None, str]:
        """(the git URL or None, the repository's key in the jobs and the index), validated."""
        if (repo_path is None) == (git_url is None):
            raise InvalidInput(
                "give exactly one of repo_path (a directory on this machine) and git_url (a git "
                "repository to clone, e.g. https://github.com/org/repo.git)"
            )
        if git_url is None:
            if ref is not None:
                raise InvalidInput("ref goes with git_url: a directory is indexed as it is on disk")
            if (
                self.settings.jobs.launcher == "kubernetes"
                and not self.settings.kubernetes.workspace_pvc_name
            ):
                raise InvalidInput(
                    "repo_path needs the workspace volume the server and the indexer pods share, and "
                    f"none is configured: {NO_WORKSPACE_ADVICE} (git_url)"
                )
            return None, str(
                validate_repo_path(str(repo_path), allowed_roots=self.settings.jobs.allowed_roots)
            )
        url, ref = validate_git_source(git_url, ref, names=("git_url", "ref"))
        if self.settings.jobs.launcher == "local":  # a file:// URL is a path on this machine
            check_local_git_url(url, allowed_roots=self.settings.jobs.allowed_roots)
        return url, git_repository_key(url, ref)

    def _git_secret(self, name: str | None, url: str | None) -> str | None:
        """The Secret's name, where it can be used: with a git URL, on the Kubernetes launcher."""
        if name is None:
            return None
        if url is None:
            raise InvalidInput("git_secret goes with git_url: it holds the credentials of the clone")
        if self.settings.jobs.launcher != "kubernetes":
            raise InvalidInput(
                "git_secret names a Kubernetes Secret, which only the kubernetes launcher can read; "
                "on this machine give the token with CODEBASE_GIT_TOKEN (and CODEBASE_GIT_TOKEN_HOSTS) "
                "or a git credential helper"
            )
        return validate_git_secret(name)

    def plan_indexing(self, repo_path: str | None, *, git_url: str | None = None) -> dict[str, Any]:
        """A dry run: what indexing `repo_path` would do; nothing is started or written."""
        from mcp_server.indexer import secrets
        from mcp_server.indexer.dry_run import plan_index

        if git_url is not None:
            raise InvalidInput(
                "dry_run works on a directory, not a git_url (it would have to clone first); "
                "clone the repository and dry-run its directory, or start the job"
            )
        if repo_path is None:
            raise InvalidInput("dry_run needs repo_path, the directory to look at")
        root = validate_repo_path(repo_path, allowed_roots=self.settings.jobs.allowed_roots)
        return plan_index(
            root,
            max_file_bytes=self.settings.indexing.max_file_bytes,
            extra_ignores=self.settings.indexing.extra_ignores,
            embedding_backend=self.settings.embedding.backend,
            scan_secrets=secrets.filter_applies(str(root), self.settings.indexing.index_secrets_roots),
        )

    def get_status(self, job_id: str, project_id: str | None = None) -> dict[str, Any]:
        job_uuid = validate_job_id(job_id)
        project = validate_project_id(project_id) if project_id is not None else None
        job = self.jobs.get(job_uuid, project_id=project)
        synced = IndexCatalogue(self.engine).last_synced(
            project_id=job.project_id, root_paths=[job.repo_path]
        )
        answer = {**job_to_dict(job), **_freshness(job.project_id, job.repo_path, synced.get(job.repo_path))}
        if job.shards > 1:
            answer["shard_progress"] = [dataclasses.asdict(s) for s in self.jobs.shard_progress(job.id)]
        return answer

    def list_repositories(self, project_id: str | None = None) -> dict[str, Any]:
        """What is indexed: counts, last sync, watch state and embedding model per repository."""
        project = validate_project_id(project_id) if project_id is not None else None
        listed = []
        for row in IndexCatalogue(self.engine).repositories(project_id=project):
            root, project_of = str(row["root_path"]), str(row["project_id"])
            state = watch_state(project_of, root)
            listed.append(
                {
                    "project_id": project_of,
                    "name": posixpath.basename(root.rstrip("/")) or root,
                    "repository": root,
                    "files": row["files"],
                    "chunks": row["chunks"],
                    "size_bytes": row["size_bytes"],
                    "languages": row["languages"],
                    "embedding_model": row["embedding_model"],
                    **_freshness(project_of, root, row["last_indexed_at"]),
                    "watched": state is not None,
                    "watch_error": state.last_error if state is not None else None,
                }
            )
        return {"repositories": listed, "count": len(listed)}

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

    def resolve_job_id(self, text_id: str) -> str:
        """A full job id from a full id or a unique prefix of at least 4 characters (the CLI's
        shorthand; the MCP tools take full ids). An ambiguous prefix is refused with the candidates."""
        candidate = text_id.strip().lower() if isinstance(text_id, str) else text_id
        if not isinstance(candidate, str) or len(candidate) >= 32:
            return str(validate_job_id(text_id))
        if len(candidate) < MIN_JOB_PREFIX or not _JOB_PREFIX_RE.fullmatch(candidate):
            raise InvalidInput(
                f"job id {text_id!r} is neither a job id nor a prefix of at least {MIN_JOB_PREFIX} "
                "hexadecimal characters of one"
            )
        matches = self.jobs.ids_with_prefix(candidate)
        if not matches:
            raise JobNotFound(f"no indexing job has an id starting with {candidate!r}")
        if len(matches) > 1:
            listed = ", ".join(str(m) for m in matches)
            raise InvalidInput(f"job id prefix {candidate!r} is ambiguous; it matches {listed}")
        return str(matches[0])

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
        repository: str | None = None,
        rerank: bool | None = None,
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        if isinstance(language, str):
            language = canonical_language(language)
        response = self.searcher.search(
            query,
            project_id=project,
            repository=repository,
            limit=limit,
            mode=mode,
            language=language,
            path=path,
            file_type=file_type,
            concise=concise,
            context_lines=context_lines,
            max_chars=max_chars,
            rerank=rerank,
        )
        synced = IndexCatalogue(self.engine).last_synced(
            project_id=project, root_paths=sorted({r.repository for r in response.results})
        )
        return {
            "results": [
                {**r.to_dict(), **_freshness(project, r.repository, synced.get(r.repository))}
                for r in response.results
            ],
            "total_count": response.total_count,
            "project_id": response.project_id,
            "mode": response.mode,
            "latency_ms": response.latency_ms,
            "truncated": response.truncated,
            **({"note": response.note} if response.note else {}),
            # A first index still running answered: what it has written so far, and how far it got.
            **({"partial": True, "index_percent": response.index_percent} if response.partial else {}),
            # The opt-in second stage (CODEBASE_RERANKER) ordered the best candidates.
            **({"reranker": response.reranker, "rerank_ms": response.rerank_ms} if response.reranker else {}),
        }

    # --- housekeeping ---------------------------------------------------------------------------

    def delete_repository(self, repo_path: str, project_id: str | None = None) -> dict[str, Any]:
        """Remove an indexed repository and its data; refused while a job indexes it."""
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        if not isinstance(repo_path, str) or not repo_path or len(repo_path) > 4096:
            raise InvalidInput("repo_path must be the repository as list_repositories shows it")
        busy = self.jobs.active(project_id=project, repo_path=repo_path)
        if busy:
            raise InvalidInput(f"job {busy[0].id} is indexing {repo_path}; cancel it first, then delete")
        if not IndexCatalogue(self.engine).delete_repository(project_id=project, root_path=repo_path):
            raise InvalidInput(
                f"no indexed repository {repo_path!r} in project {project!r} (list_repositories shows them)"
            )
        return {"deleted": True, "repository": repo_path, "project_id": project}

    def delete_project(self, project_id: str) -> dict[str, Any]:
        """Remove a project: every repository, its rows and its job history; refused while busy."""
        project = validate_project_id(project_id)
        busy = self.jobs.active(project_id=project)
        if busy:
            raise InvalidInput(f"job {busy[0].id} is running in project {project!r}; cancel it first")
        existed = IndexCatalogue(self.engine).delete_project(project_id=project)
        pruned = self.jobs.prune(older_than_days=0, keep=0, project_id=project)
        if not existed and not pruned:
            raise InvalidInput(f"no project {project!r}")
        return {"deleted": True, "project_id": project, "jobs_deleted": pruned}

    def disk_usage(self) -> dict[str, Any]:
        projects = IndexCatalogue(self.engine).disk_usage()
        return {"projects": projects, "count": len(projects)}

    # --- navigation -----------------------------------------------------------------------------

    @cached_property
    def navigator(self) -> Navigator:
        return Navigator(self.engine)

    def find_definition(
        self,
        symbol: str,
        project_id: str | None = None,
        repository: str | None = None,
        language: str | None = None,
        limit: int = 10,
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        if isinstance(language, str):
            language = canonical_language(language)
        return self.navigator.find_definition(
            symbol, project_id=project, repository=repository, language=language, limit=limit
        )

    def find_references(
        self,
        symbol: str,
        project_id: str | None = None,
        repository: str | None = None,
        language: str | None = None,
        limit: int = 200,
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        if isinstance(language, str):
            language = canonical_language(language)
        return self.navigator.find_references(
            symbol, project_id=project, repository=repository, language=language, limit=limit
        )

    def get_file_outline(
        self, file_path: str, repository: str | None = None, project_id: str | None = None
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        return self.navigator.get_file_outline(file_path, project_id=project, repository=repository)

    def read_code(
        self,
        file_path: str,
        start_line: int,
        end_line: int,
        repository: str | None = None,
        project_id: str | None = None,
    ) -> dict[str, Any]:
        project = validate_project_id(project_id, default=DEFAULT_PROJECT_ID)
        return self.navigator.read_code(
            file_path, start_line, end_line, project_id=project, repository=repository
        )

    def reconcile(self) -> None:
        """Repair what a crash left: dead runners, queued jobs with free slots, dropped vector indexes;
        prune the job history."""
        self.launcher.reconcile()
        self.jobs.prune(older_than_days=self.settings.jobs.history_days, keep=self.settings.jobs.history_max)
        VectorIndexes(self.engine, BuildBudget.from_settings(self.settings)).restore_missing()
