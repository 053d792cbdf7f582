"""codebase-mcp's own version, as installed (what `--version` prints and the MCP server reports)."""

from __future__ import annotations

from functools import cache

DISTRIBUTION = "codebase-mcp"


@cache
def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
