"""The launcher interface: how an accepted job gets an indexer process (or pod) to run it."""

from __future__ import annotations

from typing import Protocol

from mcp_server.core.jobs import Job


class Launcher(Protocol):
    def submit(self, job: Job) -> None:
        """Arrange for a pending job to run; returns at once."""
        ...

    def cancel(self, job: Job) -> bool:
        """Cancel a pending or running job; True when this call cancelled it."""
        ...

    def reconcile(self) -> None:
        """Repair what a crash may have left: fail jobs whose runner died, start queued jobs in free slots."""
        ...
