"""Prometheus metrics of the MCP server: `/metrics` on `codebase-mcp serve --transport http`.

    codebase_mcp_tool_calls_total{tool, outcome}        counter (outcome: ok | error)
    codebase_mcp_tool_call_seconds{tool}                histogram
    codebase_mcp_search_seconds{mode, source}           histogram (source: mcp | console)
    codebase_mcp_jobs{state}                            gauge, read from the jobs table at scrape time
    codebase_mcp_index_files{project} / _chunks / _bytes  gauges, the live generation at scrape time

Why the jobs and index figures are read at scrape time: the jobs table and the index are shared by
every server replica, supervisor and operator, so a count one process kept would be wrong; one
small query per scrape is right by construction. Each server has its own registry (tests build
several servers in one process).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mcp_server.frontends.operations import CodebaseService

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    def __init__(self, service: CodebaseService) -> None:
        self.registry = CollectorRegistry()
        self.tool_calls = Counter(
            "codebase_mcp_tool_calls",
            "MCP tool calls by tool and outcome.",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.tool_seconds = Histogram(
            "codebase_mcp_tool_call_seconds",
            "MCP tool call duration.",
            ["tool"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "codebase_mcp_search_seconds",
            "Search latency by mode and caller.",
            ["mode", "source"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(service))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def middleware(self) -> Middleware:
        return _ToolMetrics(self)


class _ToolMetrics(Middleware):
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        name = str(getattr(context.message, "name", "unknown"))
        arguments = getattr(context.message, "arguments", None) or {}
        began = time.perf_counter()
        outcome = "error"
        try:
            result = await call_next(context)
            outcome = "error" if getattr(result, "is_error", False) else "ok"
            return result
        finally:
            elapsed = time.perf_counter() - began
            self.metrics.tool_calls.labels(tool=name, outcome=outcome).inc()
            self.metrics.tool_seconds.labels(tool=name).observe(elapsed)
            if name == "search_code" and outcome == "ok":
                mode = str(arguments.get("mode") or "hybrid")
                self.metrics.search_seconds.labels(mode=mode, source="mcp").observe(elapsed)


class _StoreCollector(Collector):
    """Jobs by state and index sizes per project, read when Prometheus scrapes."""

    def __init__(self, service: CodebaseService) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("codebase_mcp_jobs", "Indexing jobs by state.", labels=["state"])
        files = GaugeMetricFamily("codebase_mcp_index_files", "Files in the live index.", labels=["project"])
        chunks = GaugeMetricFamily(
            "codebase_mcp_index_chunks", "Chunks in the live index.", labels=["project"]
        )
        size = GaugeMetricFamily("codebase_mcp_index_bytes", "Bytes of indexed source.", labels=["project"])
        up = GaugeMetricFamily("codebase_mcp_database_up", "1 when the last scrape reached the database.")
        try:
            counts = self.service.jobs.count_by_status()
            totals: dict[str, list[int]] = {}
            for repo in self.service.list_repositories()["repositories"]:
                entry = totals.setdefault(repo["project_id"], [0, 0, 0])
                entry[0] += repo["files"]
                entry[1] += repo["chunks"]
                entry[2] += repo["size_bytes"]
        except Exception:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for state, count in counts.items():
            jobs.add_metric([state.value], count)
        for project, (n_files, n_chunks, n_bytes) in sorted(totals.items()):
            files.add_metric([project], n_files)
            chunks.add_metric([project], n_chunks)
            size.add_metric([project], n_bytes)
        yield from (up, jobs, files, chunks, size)
