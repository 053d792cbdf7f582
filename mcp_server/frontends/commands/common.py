"""What every CLI command shares: the terminal and the service behind it.

The consoles are module attributes that commands read at call time (`common.console`), because the
warm helper (frontends/quick.py) swaps them for each client's terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console

from mcp_server.core.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # an error message is never cut into lines

EXIT_USAGE = 2

_shared_services: dict[str, Any] | None = None


def reuse_services(enabled: bool) -> None:
    """In the CLI's warm helper (frontends/quick.py): keep one service, its engine and its embedder
    across commands instead of building them per command."""
    global _shared_services
    _shared_services = {} if enabled else None


def service(settings: Settings) -> Any:
    from mcp_server.frontends.operations import CodebaseService

    if _shared_services is None:
        return CodebaseService(settings)
    key = settings.model_dump_json()
    if key not in _shared_services:
        _shared_services[key] = CodebaseService(settings)
    return _shared_services[key]
