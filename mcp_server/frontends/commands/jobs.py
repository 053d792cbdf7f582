"""`index`, `status`, `jobs`, `cancel`, `watch`: starting indexing jobs and following them."""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.core.errors import InvalidInput
from mcp_server.core.settings import DEFAULT_PROJECT_ID, Settings
from mcp_server.frontends.commands import common

# How long `index --wait` keeps following a job while the database is unreachable.
DATABASE_WAIT_SECONDS = 60.0


def cmd_index(settings: Settings, args: argparse.Namespace) -> int:
    svc = common.service(settings)
    git_url, ref = split_git_argument(args.path, args.ref)
    path = None if git_url else _absolute(args.path)
    if args.dry_run:
        plan = svc.plan_indexing(path, git_url=git_url)
        if args.json:
            print(json.dumps(plan))
        else:
            _print_plan(plan)
        return 0
    started = svc.start_indexing(
        path,
        args.project,
        args.force,
        git_url=git_url,
        ref=ref,
        shards=args.shards,
        git_secret=args.git_secret,
    )
    if args.json and not args.wait:
        print(json.dumps(started))
        return 0
    common.console.print(f"[bold]job[/bold] {started['job_id']}: {started['message']}")
    if not args.wait:
        return 0
    try:
        final = _wait_with_progress(svc, started["job_id"])
    except KeyboardInterrupt:
        # Decision: Ctrl-C stops the waiting, not the job. The job runs detached (it outlives this
        # process by design, as it outlives an MCP client), and a stray Ctrl-C must not throw away
        # minutes of indexing; cancelling is one explicit command away.
        job_id = started["job_id"]
        common.err_console.print(
            f"\n[yellow]stopped waiting;[/] job {job_id} continues in the background.\n"
            f"  follow it:  codebase-mcp status {job_id[:8]}\n"
            f"  cancel it:  codebase-mcp cancel {job_id[:8]}"
        )
        return 130
    if args.json:
        print(json.dumps(final))
    _print_job(final)
    return 0 if final["status"] == "completed" else 1


_GIT_PREFIXES = ("https://", "http://", "ssh://", "git@", "file://")


def split_git_argument(argument: str, ref: str | None) -> tuple[str | None, str | None]:
    """(git URL, ref) when `argument` is a git URL, optionally `URL@REF`; (None, None) for a path.

    The ref is what follows an '@' in the URL's path, so the user of `git@host:org/repo` and of
    `ssh://git@host/org/repo` is not taken for one; a ref holding '@' needs --ref.
    """
    if not argument.startswith(_GIT_PREFIXES):
        if ref is not None:
            raise InvalidInput("--ref goes with a git URL: a directory is indexed as it is on disk")
        return None, None
    if argument.startswith("git@"):
        path_start = argument.find(":") + 1 or len(argument)
    else:
        after_scheme = argument.index("://") + 3
        slash = argument.find("/", after_scheme)
        path_start = slash if slash != -1 else len(argument)
    url, at, suffix = argument[path_start:].rpartition("@")
    if not at:
        return argument, ref
    if ref is not None:
        raise InvalidInput(f"{argument!r} names a ref after '@' and --ref names another; give one")
    return argument[:path_start] + url, suffix


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
    with Progress(*columns, console=common.console, transient=False) as progress:
        task = progress.add_task("index", total=None, phase="queued", files="0/?", chunks=0, eta="")
        last_reconcile = time.monotonic()
        unavailable_since: float | None = None
        while True:
            try:
                if time.monotonic() - last_reconcile > 5:
                    # Fails the job if its runner died, instead of waiting on it forever.
                    svc.launcher.reconcile()
                    last_reconcile = time.monotonic()
                status = svc.get_status(job_id)
            except (OperationalError, InterfaceError):
                # The database restarting (after a crash, say on a full disk) is no reason to stop
                # following the job: its outcome is recorded once the database is back. Only an
                # outage longer than DATABASE_WAIT_SECONDS ends the wait (and main() says why).
                if unavailable_since is None:
                    unavailable_since = time.monotonic()
                    progress.update(task, phase="db away")
                if time.monotonic() - unavailable_since > DATABASE_WAIT_SECONDS:
                    raise
                time.sleep(0.5)
                continue
            unavailable_since = None
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


def _print_plan(plan: dict[str, Any]) -> None:
    common.console.print(
        f"[bold]{plan['repository']}[/bold]: {plan['files_to_index']} files to index "
        f"({plan['bytes'] / 1e6:.1f} MB, about {plan['estimated_chunks']} chunks), "
        f"about {plan['estimated_seconds']:.0f} s with the {plan['embedding_backend']} embedder"
        + (f", about {plan['estimated_tokens']} tokens to embed" if "estimated_tokens" in plan else "")
    )
    languages = ", ".join(f"{name} {count}" for name, count in plan["by_language"].items())
    common.console.print(f"  languages    {languages or '-'}")
    skipped = ", ".join(f"{count} {reason}" for reason, count in plan["skipped"].items())
    common.console.print(f"  skipped      {skipped or 'nothing'}; {plan['ignored_paths']} ignored paths")
    largest = ", ".join(
        f"{d['directory']} {d['bytes'] / 1e6:.1f} MB" for d in plan["largest_directories"][:5]
    )
    common.console.print(f"  largest      {largest or '-'}")


def _print_job(job: dict[str, Any]) -> None:
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(job["status"], "blue")
    common.console.print(
        f"[bold {colour}]{job['status']}[/]  job {job['job_id']}  project {job['project_id']}"
    )
    common.console.print(f"  repository   {job['repo_path']}")
    common.console.print(
        f"  files        {job['files_indexed']} indexed, {job['files_seen']} seen"
        + (f" of {job['files_total']}" if job["files_total"] is not None else "")
        + f", {job['files_skipped']} skipped"
    )
    common.console.print(f"  chunks       {job['chunks_created']} created")
    if job["phase"]:
        common.console.print(
            f"  phase        {job['phase']}" + (f" ({job['percent']}%)" if job["percent"] is not None else "")
        )
    if job["progress_message"]:
        common.console.print(f"  message      {job['progress_message']}")
    if job["error_message"]:
        common.console.print(f"  [red]error[/]        {job['error_message']}")
    for key in ("created_at", "started_at", "completed_at"):
        if job[key]:
            common.console.print(f"  {key:<12} {job[key]}")


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    svc = common.service(settings)
    job = svc.get_status(svc.resolve_job_id(args.job_id), args.project)
    if args.json:
        print(json.dumps(job))
    else:
        _print_job(job)
    return 0


def cmd_jobs(settings: Settings, args: argparse.Namespace) -> int:
    listing = common.service(settings).list_jobs(args.status, args.project, args.limit)
    if args.json:
        print(json.dumps(listing))
        return 0
    if not common.console.is_terminal:
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
    common.console.print(table)
    return 0


def cmd_cancel(settings: Settings, args: argparse.Namespace) -> int:
    svc = common.service(settings)
    result = svc.cancel_job(svc.resolve_job_id(args.job_id))
    if args.json:
        print(json.dumps(result))
    else:
        common.console.print(f"job {result['job_id']}: {result['status']} - {result['message']}")
    return 0


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    """Index a repository, then keep it fresh until Ctrl-C: each burst of edits is one sync."""
    import threading

    from mcp_server.core.validation import validate_project_id, validate_repo_path
    from mcp_server.indexer.pipeline import RunCounters
    from mcp_server.runners.watch import RepositoryWatcher, WatchState

    root = validate_repo_path(os.path.abspath(args.path), allowed_roots=settings.jobs.allowed_roots)
    project = validate_project_id(args.project, default=DEFAULT_PROJECT_ID)
    svc = common.service(settings)

    def report(state: WatchState, counters: RunCounters) -> None:
        common.console.print(
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
    common.console.print(f"watching {root} (project {project}); Ctrl-C stops")
    try:
        watcher.run(threading.Event())
    except KeyboardInterrupt:
        common.console.print("stopped watching; the index stays as last synced")
    return 0
