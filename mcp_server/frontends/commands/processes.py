"""The long-running processes the CLI starts: the MCP server, the indexer (what a Job or the local
supervisor runs) and the operator."""

from __future__ import annotations

import argparse
import signal

from mcp_server.core.errors import ConfigurationError
from mcp_server.core.settings import Settings


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


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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
            settings,
            args.url,
            args.ref,
            Path(args.into),
            credentials=Path(args.credentials) if args.credentials else None,
            termination_log=termination_log,
        )
    checkout = Path(args.checkout) if args.checkout else None
    return run_job(
        settings,
        validate_job_id(args.job_id),
        termination_log=termination_log,
        checkout=checkout,
        shard_index=args.shard,
    )


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
