"""The codebase-mcp Kubernetes operator (kopf): IndexingRequest -> job row -> batch/v1 Job -> pod.

Modules, from the edge inwards:
- main: `run_operator` (what `codebase-mcp operator` runs): logging, kopf settings, metrics, the
  resync thread.
- handlers: kopf wiring only; every event goes to a Reconciler method.
- reconciler: the decisions (admission under MAX_CONCURRENT_INDEXING_JOBS, reflection of Jobs
  and pods into job rows and status, stuck pods, deletions), idempotent and restart-safe.
- jobs_builder, reflection, spec: pure functions (the Job manifest; reasons and status; spec
  validation), unit-tested without a cluster.
- metrics: the Prometheus metrics.

Job rows are only written through mcp_server.core.jobs; the API only through mcp_server.runners.kube_api.
"""
