"""Reflection latency of the operator: from a pod's phase change to the job row's status.

    .venv/bin/python bench/k8s_reflection.py [--jobs 20] [--run-ms 1500] [--concurrency 4]

Uses the dev control plane (deploy/dev/cluster.sh: a running one, else it starts one and stops it
after), a fresh namespace, an embedded PostgreSQL in a temporary directory (or DATABASE_URL), and
`codebase-mcp operator` as a subprocess with the operator ServiceAccount's RBAC. kwok drives each
pod Pending -> Running -> (run-ms) -> Succeeded.

Two clocks, both on this machine: this script's own watch on the pods (the moment the API server
announces a phase) and a 5 ms poll of the job rows. Reported:
- Running: pod phase Running announced -> row `running` (the operator's pod handler).
- Succeeded: pod phase Succeeded (exit code 0) announced -> row `completed`. The operator acts on
  the pod itself; the Job's Complete condition follows about 0.5 s later (Job controller).
The operator's own histogram (codebase_mcp_operator_reflection_latency_seconds) measures from
the pod's reported timestamps, which the API rounds to whole seconds, so it reads about 0.5 s high.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))

from _common import percentile, private_home, remove_home  # noqa: E402


def describe(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    if not ms:
        return f"{name:<10} no samples"
    return (
        f"{name:<10} n={len(ms):<3} p50={percentile(ms, 50):7.1f} ms  p95={percentile(ms, 95):7.1f} ms  "
        f"max={max(ms):7.1f} ms  mean={statistics.fmean(ms):7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--run-ms", type=int, default=1500, help="how long each pod stays Running")
    parser.add_argument("--concurrency", type=int, default=4, help="MAX_CONCURRENT_INDEXING_JOBS")
    args = parser.parse_args()

    home = None
    if not os.environ.get("DATABASE_URL"):
        home = private_home("codebase-mcp-bench-")

    from codebase_operator.jobs_builder import JOB_ID_LABEL, MANAGED_SELECTOR
    from devcluster import DevCluster, OperatorProcess, indexing_request, wait_for
    from kubernetes import client, watch
    from sqlalchemy import select

    from mcp_server.core.settings import load_settings
    from mcp_server.db.database import dispose_engines, get_engine
    from mcp_server.db.schema import indexing_jobs
    from mcp_server.runners.kube_api import load_configuration

    engine = get_engine(load_settings())
    cluster = DevCluster.find_or_start()
    cluster.apply_crd()
    namespace = cluster.create_namespace("bench")
    workdir = Path(tempfile.mkdtemp(prefix="codebase-mcp-bench-op-"))
    operator = OperatorProcess(
        cluster,
        namespace,
        workdir,
        {"MAX_CONCURRENT_INDEXING_JOBS": str(args.concurrency), "OPERATOR_RESYNC_SECONDS": "10"},
    )
    pod_seen: dict[tuple[str, str], float] = {}  # (job id, phase) -> first announcement
    row_seen: dict[tuple[str, str], float] = {}  # (job id, status) -> first observed
    stop = threading.Event()

    def watch_pods() -> None:
        core = client.CoreV1Api(client.ApiClient(load_configuration(str(cluster.kubeconfig))))
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod, namespace, label_selector=MANAGED_SELECTOR, timeout_seconds=600
        ):
            now = time.monotonic()
            pod = event["object"]
            job_id = (pod.metadata.labels or {}).get(JOB_ID_LABEL)
            if job_id and pod.status and pod.status.phase:
                pod_seen.setdefault((job_id, pod.status.phase), now)
            if stop.is_set():
                stream.stop()

    def poll_rows() -> None:
        query = select(indexing_jobs.c.id, indexing_jobs.c.status).where(
            indexing_jobs.c.k8s_namespace == namespace
        )
        while not stop.is_set():
            with engine.connect() as conn:
                rows = conn.execute(query).all()
            now = time.monotonic()
            for job_id, status in rows:
                row_seen.setdefault((str(job_id), status), now)
            time.sleep(0.005)

    try:
        operator.start()
        threads = [threading.Thread(target=f, daemon=True) for f in (watch_pods, poll_rows)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # let the watch establish
        kube = cluster.client()
        started = time.monotonic()
        for i in range(args.jobs):
            kube.create_indexing_request(
                namespace,
                indexing_request(
                    f"bench-{i:03d}-{uuid.uuid4().hex[:4]}",
                    {"source": {"path": f"/workspace/bench-{i}"}},
                    annotations={"codebase-mcp.dev/test-run-duration": f"{args.run_ms}ms"},
                ),
            )
        wait_for(
            lambda: sum(1 for (_, s) in row_seen if s == "completed") >= args.jobs,
            timeout=60 + args.jobs * args.run_ms / 1000,
            interval=0.2,
            message=lambda: f"all rows completed\n{operator.log_tail()}",
        )
        elapsed = time.monotonic() - started
        stop.set()
        metrics = operator.metrics()
    finally:
        stop.set()
        operator.stop()
        cluster.delete_namespace(namespace)
        cluster.stop()
        dispose_engines()
        if home is not None:
            remove_home(home, stop_postgres=True)
        shutil.rmtree(workdir, ignore_errors=True)

    running = [
        row_seen[(j, "running")] - t
        for (j, p), t in pod_seen.items()
        if p == "Running" and (j, "running") in row_seen
    ]
    succeeded = [
        row_seen[(j, "completed")] - t
        for (j, p), t in pod_seen.items()
        if p == "Succeeded" and (j, "completed") in row_seen
    ]
    print(
        f"{args.jobs} jobs, {args.run_ms} ms each, at most {args.concurrency} at once: "
        f"all completed in {elapsed:.1f} s"
    )
    print("pod phase announced by the API server -> job row updated (operator's view, 5 ms poll):")
    print("  " + describe("Running", running))
    print("  " + describe("Succeeded", succeeded))
    for line in metrics.splitlines():
        if line.startswith("codebase_mcp_operator_reflection_latency_seconds_") and (
            "_sum" in line or "_count" in line
        ):
            print("  operator histogram (1 s timestamps): " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
