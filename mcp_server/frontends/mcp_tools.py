"""The MCP server (FastMCP): tool descriptions for an assistant, and error translation.

Tool bodies only validate the protocol-level shape, run the service call in a worker thread (it
does blocking database I/O) and translate the project's exceptions into MCP tool errors, in one
place (`_call`). Unexpected exceptions become a generic error without internals or secrets.

About 430 lines, kept whole: one thin declaration per tool, read together as the server's surface
(their result shapes and hints are in tool_contract.py).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, cast

import anyio
import fastmcp
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.server.auth import AccessToken, TokenVerifier
from pydantic import Field
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from mcp_server.core.errors import CodebaseMCPError, ConfigurationError
from mcp_server.core.settings import Settings
from mcp_server.core.version import package_version
from mcp_server.frontends import tool_contract as contract
from mcp_server.frontends.console import CONSOLE_PATHS, register_console
from mcp_server.frontends.http_guard import MIN_REMOTE_TOKEN_BYTES, HttpGuard
from mcp_server.frontends.metrics import ServerMetrics
from mcp_server.frontends.operations import CodebaseService
from mcp_server.index.search import DEFAULT_CONTEXT_LINES, DEFAULT_MAX_CHARS

log = logging.getLogger(__name__)
T = TypeVar("T")

INSTRUCTIONS = """\
codebase-mcp indexes source repositories and searches them by meaning and by keyword.
Typical use: call start_indexing_background with the repository's absolute path (or a git_url), poll
get_indexing_status until status is completed, then call search_code with a natural-language
description or identifiers. Projects (project_id) keep separate indexes apart; the default
project is "default". Re-indexing is incremental: unchanged files are skipped. To navigate:
find_definition and find_references take a symbol name; get_file_outline and read_code take a
file path as search_code returns it; list_repositories names the repositories of a project."""


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
    except CodebaseMCPError as exc:
        raise ToolError(str(exc)) from None
    except (OperationalError, InterfaceError) as exc:
        log.warning("database unavailable during a tool call: %s", exc.orig)
        raise ToolError(
            "the database is unavailable (PostgreSQL restarting or unreachable?); retry in a moment"
        ) from None
    except Exception:
        log.exception("unexpected error in a tool call")
        raise ToolError("internal error in codebase-mcp; see the server log for details") from None


TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})
FOLLOW_POLL_SECONDS = 1.0
MAX_FOLLOW_SECONDS = 3600


async def follow_job(svc: CodebaseService, ctx: Context, job_id: str, timeout_seconds: int) -> dict[str, Any]:
    """Poll a job until it ends or `timeout_seconds` pass, reporting MCP progress as it moves.

    Progress is the job's percent over the whole run (0-100); the protocol wants each notification
    to increase, so an unchanged or lower estimate sends nothing. A client that sent no progress
    token gets no notifications (FastMCP drops them), only the final result.
    """
    if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, int):
        raise ToolError("timeout_seconds must be an integer")
    if not 1 <= timeout_seconds <= MAX_FOLLOW_SECONDS:
        raise ToolError(f"timeout_seconds must be from 1 to {MAX_FOLLOW_SECONDS}")
    deadline = anyio.current_time() + timeout_seconds
    reported = -1.0
    while True:
        status = await _call(svc.get_status, job_id)
        percent = float(status["percent"] or 0.0)
        if percent > reported:
            reported = percent
            await ctx.report_progress(progress=percent, total=100.0, message=_progress_line(status))
        if status["status"] in TERMINAL_STATES or anyio.current_time() >= deadline:
            return status
        await anyio.sleep(min(FOLLOW_POLL_SECONDS, max(0.0, deadline - anyio.current_time())))


def _progress_line(status: dict[str, Any]) -> str:
    total = status["files_total"]
    files = f"{status['files_seen']}/{total if total is not None else '?'} files"
    eta = f", about {status['eta_seconds']:.0f} s left" if status["eta_seconds"] is not None else ""
    return f"{status['phase'] or status['status']}: {files}, {status['chunks_created']} chunks{eta}"


class BearerTokenVerifier(TokenVerifier):
    """Accepts exactly one shared token (CODEBASE_MCP_AUTH_TOKEN), compared in constant time."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token):
            return AccessToken(token="<redacted>", client_id="codebase-mcp-client", scopes=[])
        return None


LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_PROJECT = "Project to use; default 'default'."
_REPOSITORY = "Only this repository: its name or root path, as list_repositories shows them."
_SYMBOL = "A name such as 'parse', 'Parser.parse', 'pkg.func' or 'mod::item'."
_FILE_PATH = "The file's path relative to its repository, as search_code returns it."


def build_server(
    settings: Settings, service: CodebaseService | None = None, *, auth_token: str | None = None
) -> FastMCP:
    svc = service or CodebaseService(settings)
    auth = BearerTokenVerifier(auth_token) if auth_token else None
    mcp: FastMCP = FastMCP(
        "codebase-mcp",
        version=package_version(),
        instructions=INSTRUCTIONS,
        mask_error_details=True,
        auth=auth,
    )
    metrics = ServerMetrics(svc)
    mcp.add_middleware(metrics.middleware())
    register_console(mcp, svc, metrics, auth_token=auth_token)  # `/`, `/jobs`, `/repos`, `/metrics`

    @mcp.tool(annotations=contract.STARTS_JOB)
    async def start_indexing_background(
        repo_path: Annotated[
            str | None,
            Field(description="Absolute path of the repository directory to index (or give git_url)."),
        ] = None,
        project_id: Annotated[
            str | None,
            Field(description="Project to index into (lowercase letters, digits, '-'); default 'default'."),
        ] = None,
        force_reindex: Annotated[
            bool, Field(description="Re-read and re-embed every file instead of skipping unchanged ones.")
        ] = False,
        dry_run: Annotated[
            bool,
            Field(
                description="Start nothing: answer what a run would index (files by language, skips by "
                "reason, largest directories, bytes, estimated time). Directories only."
            ),
        ] = False,
        git_url: Annotated[
            str | None,
            Field(
                description="Instead of repo_path: a git repository to clone and index (https://, "
                "ssh://, git@host:path or file://), without credentials in it."
            ),
        ] = None,
        ref: Annotated[
            str | None,
            Field(description="With git_url: a branch, tag or commit SHA; default the default branch."),
        ] = None,
        shards: Annotated[
            int | Literal["auto"] | None,
            Field(
                description="Split the run across this many indexer processes (Kubernetes: pods of one "
                "Indexed Job), 1-64, each indexing the files whose path hashes to it; 'auto': one per "
                "CODEBASE_FILES_PER_SHARD files (directories only). For very large repositories; "
                "default 1."
            ),
        ] = None,
        git_secret: Annotated[
            str | None,
            Field(
                description="With git_url, on a Kubernetes deployment: the name of a Secret in the "
                "server's namespace holding the clone's credentials (key 'token', or 'ssh-privatekey' "
                "and 'known_hosts'). Only the name travels; on one machine use CODEBASE_GIT_TOKEN."
            ),
        ] = None,
    ) -> contract.JobStarted:
        """Start indexing a repository in the background and return its job_id at once.

        Give repo_path (a directory) or git_url (cloned shallow into a cache, fetched again on later
        runs; the repository is then named 'URL#ref', or the URL for the default branch).
        Poll get_indexing_status(job_id) for progress. If the repository is already being indexed
        in that project, the running job's id is returned instead of starting a second one.
        The previous index stays searchable until the new one is complete."""
        if dry_run:
            return cast(contract.JobStarted, await _call(svc.plan_indexing, repo_path, git_url=git_url))
        return cast(
            contract.JobStarted,
            await _call(
                svc.start_indexing,
                repo_path,
                project_id,
                force_reindex,
                git_url=git_url,
                ref=ref,
                shards=shards,
                git_secret=git_secret,
            ),
        )

    @mcp.tool(annotations=contract.reads("Indexing job status"))
    async def get_indexing_status(
        job_id: Annotated[str, Field(description="The job_id returned by start_indexing_background.")],
        project_id: Annotated[
            str | None, Field(description="Optionally, the project the job must belong to.")
        ] = None,
    ) -> contract.JobInfo:
        """Report an indexing job: status (pending, running, completed, failed, cancelled), files and
        chunks so far, the current phase, percent done and ETA, and the error message if it failed."""
        return cast(contract.JobInfo, await _call(svc.get_status, job_id, project_id))

    @mcp.tool(annotations=contract.reads("Wait for an indexing job"))
    async def wait_for_indexing(
        ctx: Context,
        job_id: Annotated[str, Field(description="The job_id returned by start_indexing_background.")],
        timeout_seconds: Annotated[
            int, Field(description="Return after this many seconds even if the job is still going (1-3600).")
        ] = 300,
    ) -> contract.JobInfo:
        """Wait for an indexing job to finish, sending MCP progress notifications (percent of the whole
        run, with the phase and counts as the message) while it runs, and return its final status, or its
        current status after timeout_seconds. Clients without progress support can poll
        get_indexing_status instead."""
        return cast(contract.JobInfo, await follow_job(svc, ctx, job_id, timeout_seconds))

    @mcp.tool(annotations=contract.reads("Search code"))
    async def search_code(
        query: Annotated[
            str,
            Field(description="What you are looking for: a description in plain words, or identifiers."),
        ],
        project_id: Annotated[str | None, Field(description="Project to search; default 'default'.")] = None,
        limit: Annotated[int, Field(description="Number of results, 1-100.")] = 10,
        language: Annotated[
            str | None, Field(description="Only this language, e.g. 'python', 'go', 'typescript'.")
        ] = None,
        path: Annotated[
            str | None,
            Field(
                description="Only files matching this repository-relative glob or prefix: '*.py' matches "
                "at any depth, 'src/*.py' only directly under src/, 'src/**/*.py' anywhere below it, 'src' "
                "everything under src/."
            ),
        ] = None,
        mode: Annotated[
            Literal["hybrid", "semantic", "lexical"],
            Field(description="hybrid (default) fuses meaning and keywords; semantic or lexical alone."),
        ] = "hybrid",
        file_type: Annotated[
            str | None,
            Field(
                description="Only files with these extensions, comma-separated: 'py' or 'ts,tsx'; or of "
                "these kinds: code, docs, tests, config (prose and tests otherwise rank after code unless "
                "the query asks for them)."
            ),
        ] = None,
        concise: Annotated[
            bool,
            Field(description="Return only the first lines of each result and no context: a cheap overview."),
        ] = False,
        context_lines: Annotated[
            int, Field(description="Lines of surrounding code before and after each result, 0-20.")
        ] = DEFAULT_CONTEXT_LINES,
        max_chars: Annotated[
            int,
            Field(description="Cap on the characters of code in the response; later results are cut first."),
        ] = DEFAULT_MAX_CHARS,
        repository: Annotated[str | None, Field(description=_REPOSITORY)] = None,
        rerank: Annotated[
            bool | None,
            Field(
                description="Re-order the best candidates with the server's reranker: default (null) "
                "when one is configured, except in lexical mode; false skips it, true asks for it in "
                "lexical mode too (an error when none is configured)."
            ),
        ] = None,
    ) -> contract.SearchResults:
        """Search indexed code. Returns the best-matching functions, classes and blocks, at most one
        per region of a file, with file path (relative to the repository), line range, symbol, kind,
        language, content, a few lines of context before and after, and score. A query that names an
        identifier (snake_case, camelCase, Class.method, pkg.func, mod::item) gets the chunks that
        define it first. `truncated` is true when max_chars shortened the response; `note` says why
        an empty result is empty. While a repository's first index is still running, its results
        come from the files indexed so far: the response has `partial: true` and `index_percent`,
        those results `partial: true`. When the server's reranker ordered the results, `reranker`
        names it and `rerank_ms` says what it cost."""
        return cast(
            contract.SearchResults,
            await _call(
                svc.search,
                query,
                project_id,
                limit,
                language,
                path,
                mode,
                file_type=file_type,
                concise=concise,
                context_lines=context_lines,
                max_chars=max_chars,
                repository=repository,
                rerank=rerank,
            ),
        )

    @mcp.tool(annotations=contract.reads("Find where a symbol is defined"))
    async def find_definition(
        symbol: Annotated[str, Field(description=_SYMBOL)],
        project_id: Annotated[str | None, Field(description=_PROJECT)] = None,
        repository: Annotated[str | None, Field(description=_REPOSITORY)] = None,
        language: Annotated[str | None, Field(description="Only this language, e.g. 'python'.")] = None,
        limit: Annotated[int, Field(description="At most this many definitions, 1-50.")] = 10,
    ) -> contract.Definitions:
        """Where a symbol is defined: file, line range, kind, signature and the definition's text,
        best match first (exact qualified name, then other definitions and overloads)."""
        return cast(
            contract.Definitions,
            await _call(svc.find_definition, symbol, project_id, repository, language, limit),
        )

    @mcp.tool(annotations=contract.reads("Find where a symbol is used"))
    async def find_references(
        symbol: Annotated[str, Field(description=_SYMBOL)],
        project_id: Annotated[str | None, Field(description=_PROJECT)] = None,
        repository: Annotated[str | None, Field(description=_REPOSITORY)] = None,
        language: Annotated[str | None, Field(description="Only this language, e.g. 'python'.")] = None,
        limit: Annotated[int, Field(description="At most this many lines, 1-1000.")] = 200,
    ) -> contract.References:
        """Where a symbol's name is used as an identifier (calls, imports, attribute uses; not in
        comments or strings), grouped by file, each line with its enclosing symbol: who calls X.
        Matched by name (the last part of a qualified name), not by type."""
        return cast(
            contract.References,
            await _call(svc.find_references, symbol, project_id, repository, language, limit),
        )

    @mcp.tool(annotations=contract.reads("Outline of a file"))
    async def get_file_outline(
        file_path: Annotated[str, Field(description=_FILE_PATH)],
        repository: Annotated[str | None, Field(description=_REPOSITORY)] = None,
        project_id: Annotated[str | None, Field(description=_PROJECT)] = None,
    ) -> contract.FileOutline:
        """The definitions of one indexed file as a tree, with line ranges, kinds and signatures."""
        return cast(
            contract.FileOutline, await _call(svc.get_file_outline, file_path, repository, project_id)
        )

    @mcp.tool(annotations=contract.reads("Read indexed lines"))
    async def read_code(
        file_path: Annotated[str, Field(description=_FILE_PATH)],
        start_line: Annotated[int, Field(description="First line, from 1.")],
        end_line: Annotated[int, Field(description="Last line (at most 1,000 lines at once).")],
        repository: Annotated[str | None, Field(description=_REPOSITORY)] = None,
        project_id: Annotated[str | None, Field(description=_PROJECT)] = None,
    ) -> contract.CodeLines:
        """Lines of an indexed file as they were indexed, with the file's content hash: widen a search
        hit without reading the file system."""
        return cast(
            contract.CodeLines,
            await _call(svc.read_code, file_path, start_line, end_line, repository, project_id),
        )

    @mcp.tool(annotations=contract.reads("List indexing jobs"))
    async def list_indexing_jobs(
        status: Annotated[
            Literal["pending", "running", "completed", "failed", "cancelled"] | None,
            Field(description="Only jobs in this state."),
        ] = None,
        project_id: Annotated[str | None, Field(description="Only jobs of this project.")] = None,
        limit: Annotated[int, Field(description="At most this many jobs, newest first (1-200).")] = 20,
    ) -> contract.JobList:
        """List recent indexing jobs, newest first."""
        return cast(contract.JobList, await _call(svc.list_jobs, status, project_id, limit))

    @mcp.tool(annotations=contract.reads("List indexed repositories"))
    async def list_repositories(
        project_id: Annotated[
            str | None, Field(description="Only repositories of this project (default: all projects).")
        ] = None,
    ) -> contract.RepositoryList:
        """List indexed repositories: file and chunk counts, when each was last synced, whether
        it is watched and has edits not yet indexed, and the embedding model."""
        return cast(contract.RepositoryList, await _call(svc.list_repositories, project_id))

    @mcp.tool(annotations=contract.DELETES_REPOSITORY)
    async def delete_repository(
        repo_path: Annotated[str, Field(description="The repository as list_repositories shows it.")],
        project_id: Annotated[str | None, Field(description="Its project; default 'default'.")] = None,
    ) -> contract.RepositoryDeleted:
        """Delete an indexed repository and everything indexed from it (refused while a job indexes
        it). The files on disk are not touched."""
        return cast(contract.RepositoryDeleted, await _call(svc.delete_repository, repo_path, project_id))

    @mcp.tool(annotations=contract.CANCELS_JOB)
    async def cancel_indexing_job(
        job_id: Annotated[str, Field(description="The job to cancel.")],
    ) -> contract.JobCancelled:
        """Cancel a pending or running indexing job. The repository's previous index stays searchable."""
        return cast(contract.JobCancelled, await _call(svc.cancel_job, job_id))

    @mcp.custom_route("/healthz", methods=["GET"])
    async def healthz(request: Request) -> Response:
        """Unauthenticated liveness/readiness for Kubernetes probes: reports no data, only that the
        process serves HTTP and reaches its database."""
        try:
            await anyio.to_thread.run_sync(svc.ping)
        except Exception:
            return PlainTextResponse("database unavailable\n", status_code=503)
        return PlainTextResponse("ok\n")

    return mcp


def _reconcile_in_background(settings: Settings, service: CodebaseService) -> None:
    try:
        service.reconcile()
    except Exception as exc:  # the first tool call reports it to the client, worded for a person
        log.warning("could not reconcile jobs at start: %s", exc)
        return
    _start_watching(settings, service)


def _start_watching(settings: Settings, service: CodebaseService) -> None:
    if settings.jobs.watch:
        from mcp_server.runners.watch import WatchAll

        WatchAll(
            settings=settings, engine=service.engine, embedder=service.embedder, rescan_seconds=5.0
        ).start()


def run_server(settings: Settings, *, transport: str, host: str | None, port: int | None) -> None:
    service = CodebaseService(settings)
    if not settings.jobs.allowed_roots:
        log.warning(
            "CODEBASE_ALLOWED_ROOTS is not set: any directory this user can read may be indexed "
            "(except /, system directories and the home directory itself); set it to the directories "
            "that hold your repositories"
        )
    if transport == "stdio":
        # A stdio client waits for `initialize`; starting or joining the database first cost it
        # seconds. Repair what a crash left behind (then start watching) in the background; tools
        # connect on first use.
        threading.Thread(target=_reconcile_in_background, args=(settings, service), daemon=True).start()
        build_server(settings, service).run(transport="stdio", show_banner=False)
        return
    # HTTP (a deployment): fail fast on a bad database or configuration, before taking traffic.
    service.reconcile()
    _start_watching(settings, service)
    bind_host = host or settings.http.host
    token = settings.http.auth_token.get_secret_value() if settings.http.auth_token else None
    if bind_host not in LOOPBACK_HOSTS and not token:
        raise ConfigurationError(
            f"refusing to serve HTTP on {bind_host} without authentication: set CODEBASE_MCP_AUTH_TOKEN "
            "(clients then send 'Authorization: Bearer <token>'), or bind to 127.0.0.1"
        )
    if bind_host not in LOOPBACK_HOSTS and token and len(token.encode()) < MIN_REMOTE_TOKEN_BYTES:
        raise ConfigurationError(
            f"refusing to serve HTTP on {bind_host} with a {len(token.encode())}-byte "
            f"CODEBASE_MCP_AUTH_TOKEN: off loopback it must be at least {MIN_REMOTE_TOKEN_BYTES} bytes "
            "(for example the output of `openssl rand -hex 32`)"
        )
    server = build_server(settings, service, auth_token=token)
    guard = Middleware(
        HttpGuard,
        allowed_hosts=settings.http.allowed_hosts,
        allowed_origins=settings.http.allowed_origins,
        token=token,
        # The console's routes take the bearer token or its login cookie (they check either).
        self_authenticating_paths=CONSOLE_PATHS,
        max_sessions_per_client=settings.http.max_sessions_per_client,
        session_idle_seconds=settings.http.session_idle_seconds,
    )
    # The SDK's own idle timeout ends the session; the guard forgets it after the same time.
    fastmcp.settings.http_session_idle_timeout = settings.http.session_idle_seconds
    kwargs: dict[str, Any] = {"host": bind_host, "port": port or settings.http.port, "show_banner": False}
    server.run(transport="http", middleware=[guard], **kwargs)
