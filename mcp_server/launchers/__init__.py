"""Launchers: run indexing jobs as local subprocesses or as Kubernetes Jobs."""

from __future__ import annotations

from mcp_server.config import Settings
from mcp_server.jobs import JobStore
from mcp_server.launchers.base import Launcher


def create_launcher(settings: Settings, jobs: JobStore) -> Launcher:
    if settings.launcher == "kubernetes":
        from mcp_server.launchers.kubernetes import KubernetesLauncher

        return KubernetesLauncher(settings, jobs)
    from mcp_server.launchers.local import LocalLauncher

    return LocalLauncher(settings, jobs)


__all__ = ["Launcher", "create_launcher"]
