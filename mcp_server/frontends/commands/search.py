"""`search` and the navigation commands (`definition`, `references`, `outline`, `read`)."""

from __future__ import annotations

import argparse
import json

from mcp_server.core.settings import Settings
from mcp_server.frontends.commands import common


def cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    response = common.service(settings).search(
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
        rerank=args.rerank,
    )
    if args.json:
        print(json.dumps(response))
        return 0
    if not response["results"]:
        why = f": {response['note']}" if response.get("note") else ""
        common.console.print(f"no results in project {response['project_id']!r}{why}")
        return 0
    if response.get("partial"):
        # Before the results, so a reader cannot miss that better ones may not be indexed yet.
        common.console.print(f"[yellow]partial: {response['note']}[/]")
    from rich.syntax import Syntax

    for rank, hit in enumerate(response["results"], 1):
        symbol = f"  [cyan]{hit['symbol']}[/] ({hit['kind']})" if hit["symbol"] else f"  ({hit['kind']})"
        if hit.get("partial"):
            symbol += "  [yellow]partial[/]"
        common.console.print(
            f"[bold]{rank}. {hit['file_path']}:{hit['start_line']}-{hit['end_line']}[/]{symbol}"
            f"  [dim]score {hit['score']:.4f}  {hit['repository']}[/]"
        )
        lines = hit["content"].splitlines()
        shown = "\n".join(lines[: args.lines]) + ("\n..." if len(lines) > args.lines else "")
        common.console.print(
            Syntax(
                shown,
                hit["language"] or "text",
                line_numbers=True,
                start_line=hit["start_line"],
                theme="ansi_dark",
                word_wrap=True,
            )
        )
    reranked = (
        f", reranked by {response['reranker']} in {response['rerank_ms']} ms"
        if response.get("reranker")
        else ""
    )
    took = f"{response['latency_ms']} ms ({response['mode']}{reranked})"
    common.console.print(f"[dim]{response['total_count']} results in {took}[/]")
    if response.get("note") and not response.get("partial"):
        common.console.print(f"[yellow]{response['note']}[/]")
    return 0


def cmd_navigate(settings: Settings, args: argparse.Namespace) -> int:
    """find_definition, find_references, get_file_outline, read_code as JSON."""
    svc = common.service(settings)
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
