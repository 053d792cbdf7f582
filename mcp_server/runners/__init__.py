"""Runners: run indexing jobs as local subprocesses (with a supervisor) or as Kubernetes Jobs."""

from __future__ import annotations

from mcp_server.core.jobs import JobStore
from mcp_server.core.settings import Settings
from mcp_server.runners.base import Launcher


def create_launcher(settings: Settings, jobs: JobStore) -> Launcher:
    if settings.jobs.launcher == "kubernetes":
        from mcp_server.runners.kubernetes import KubernetesLauncher

        return KubernetesLauncher(settings, jobs)
    from mcp_server.runners.local import LocalLauncher

    return LocalLauncher(settings, jobs)


__all__ = ["Launcher", "create_launcher"]
