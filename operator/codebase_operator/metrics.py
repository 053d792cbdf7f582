"""Prometheus metrics of the operator, in a registry of their own (served on OPERATOR_METRICS_PORT).

A private CollectorRegistry rather than prometheus_client's global one: tests build several
operators in one process, and the global registry refuses a second metric with the same name.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from mcp_server.core.jobs import JobStatus

# Reflection of a pod phase change to the job row: watch delivery, handler queueing, one UPDATE.
# The pod's own timestamps have 1 s resolution, so the low buckets mostly show that rounding.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.jobs_by_status = Gauge(
            "codebase_mcp_indexing_jobs",
            "Indexing job rows by status (all launchers), as of the last resync.",
            ["status"],
            registry=self.registry,
        )
        self.jobs_created = Counter(
            "codebase_mcp_operator_jobs_created",
            "batch/v1 Jobs created by the operator.",
            registry=self.registry,
        )
        self.transitions = Counter(
            "codebase_mcp_operator_transitions",
            "Job row transitions applied by the operator, by target status.",
            ["status"],
            registry=self.registry,
        )
        self.reflection_latency = Histogram(
            "codebase_mcp_operator_reflection_latency_seconds",
            "From a pod's reported phase change (Running, Succeeded, Failed) to the job row update.",
            ["phase"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.resync_seconds = Histogram(
            "codebase_mcp_operator_resync_seconds",
            "Duration of one full resync (read, reflect, admit).",
            registry=self.registry,
        )
        self.resync_reads = Counter(
            "codebase_mcp_operator_resync_reads",
            "Resyncs by where they read the cluster's objects: kopf's indices (index) or three LIST "
            "requests (api, until the indices are complete).",
            ["source"],
            registry=self.registry,
        )
        self.resync_errors = Counter(
            "codebase_mcp_operator_resync_errors",
            "Resyncs that failed (API server or database unavailable).",
            registry=self.registry,
        )

    def set_job_counts(self, counts: dict[JobStatus, int]) -> None:
        for status, count in counts.items():
            self.jobs_by_status.labels(status=status.value).set(count)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # all interfaces: scraped from outside the pod
        start_http_server(port, addr=addr, registry=self.registry)
