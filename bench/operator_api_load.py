"""What an idle operator costs the API server: LIST requests per minute, this checkout vs a baseline.

    .venv/bin/python bench/operator_api_load.py [--requests 5] [--idle-seconds 30]
        [--resync-seconds 1] [--baseline-tree DIR]

On the dev control plane (deploy/dev/cluster.sh: a running one, else it starts one and stops it
after), each operator in turn gets a fresh namespace, indexes `--requests` IndexingRequests to
completion (kwok pods), then sits idle for `--idle-seconds` while the kube-apiserver's own
`apiserver_request_total` counts what it is sent. Nothing else in the cluster lists these kinds
on a schedule (the controllers and kwok watch), so the difference is the operator's.

`--baseline-tree DIR` runs a second operator from another checkout (for example
`git worktree add /tmp/before <rev>`), imported through PYTHONPATH, in the same run and on the same
cluster, so the two figures are comparable. The operator's own resync count over the window is
printed beside, to show both did the same work.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "kubernetes"))
sys.path.insert(0, str(ROOT / "bench"))

KINDS = ("indexingrequests", "jobs", "pods")
_REQUEST_LINE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def api_requests(cluster: object) -> dict[tuple[str, str], float]:
    """(verb, resource) -> requests served so far, from the kube-apiserver's /metrics."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout  # type: ignore[attr-defined]
    totals: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _REQUEST_LINE.match(line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"]))
        if labels.get("resource") in KINDS and not labels.get("subresource"):
            key = (labels.get("verb", "?"), labels["resource"])
            totals[key] = totals.get(key, 0.0) + float(match["value"])
    return totals


def resyncs(metrics: str) -> float:
    prefix = "codebase_mcp_operator_resync_seconds_count "
    return sum(float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix))


def measure(cluster, label: str, tree: Path | None, args: argparse.Namespace) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from devcluster import OperatorProcess, indexing_request, wait_for
    from sqlalchemy import select

    from mcp_server.core.settings import load_settings
    from mcp_server.db.database import get_engine
    from mcp_server.db.schema import indexing_jobs

    engine = get_engine(load_settings())
    namespace = cluster.create_namespace("bench-api")
    workdir = Path(tempfile.mkdtemp(prefix="codebase-mcp-bench-api-"))
    env = {"OPERATOR_RESYNC_SECONDS": str(args.resync_seconds), "MAX_CONCURRENT_INDEXING_JOBS": "4"}
    if tree is not None:
        env["PYTHONPATH"] = f"{tree}{os.pathsep}{tree / 'operator'}"
    operator = OperatorProcess(cluster, namespace, workdir, env)
    try:
        operator.start()
        kube = cluster.client()
        for i in range(args.requests):
            kube.create_indexing_request(
                namespace,
                indexing_request(
                    f"idle-{i:02d}-{uuid.uuid4().hex[:4]}",
                    {"source": {"path": f"/workspace/idle-{i}"}},
                    annotations={"codebase-mcp.dev/test-run-duration": "200ms"},
                ),
            )
        query = select(indexing_jobs.c.status).where(indexing_jobs.c.k8s_namespace == namespace)

        def completed() -> bool:
            with engine.connect() as conn:
                return [s for (s,) in conn.execute(query)].count("completed") >= args.requests

        wait_for(completed, timeout=120, message=lambda: f"all rows completed\n{operator.log_tail()}")
        time.sleep(3 * args.resync_seconds)  # let the last reflections and TTL patches land
        before, resyncs_before = api_requests(cluster), resyncs(operator.metrics())
        started = time.monotonic()
        time.sleep(args.idle_seconds)  # the measurement window itself
        window = time.monotonic() - started
        after, resyncs_after = api_requests(cluster), resyncs(operator.metrics())
    finally:
        operator.stop()
        cluster.delete_namespace(namespace)
        shutil.rmtree(workdir, ignore_errors=True)
    per_minute = 60.0 / window
    figures = {
        f"{verb} {kind}": (after.get((verb, kind), 0.0) - before.get((verb, kind), 0.0)) * per_minute
        for verb in ("LIST", "GET", "WATCH")
        for kind in KINDS
    }
    figures["resync passes"] = (resyncs_after - resyncs_before) * per_minute
    print(f"  {label}: measured over {window:.1f} s idle")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--resync-seconds", type=float, default=1.0)
    parser.add_argument("--baseline-tree", type=Path, default=None)
    args = parser.parse_args()

    home = None
    if not os.environ.get("DATABASE_URL"):
        home = Path(tempfile.mkdtemp(prefix="codebase-mcp-bench-"))
        os.environ["CODEBASE_MCP_HOME"] = str(home)

    from _common import stop_embedded_postgres
    from devcluster import DevCluster

    from mcp_server.db.database import dispose_engines

    cluster = DevCluster.find_or_start()
    cluster.apply_crd()
    columns: dict[str, dict[str, float]] = {}
    try:
        columns["this checkout"] = measure(cluster, "this checkout", None, args)
        if args.baseline_tree is not None:
            columns["baseline"] = measure(cluster, f"baseline {args.baseline_tree}", args.baseline_tree, args)
    finally:
        cluster.stop()
        dispose_engines()
        if home is not None:
            stop_embedded_postgres(home)

    print(f"requests per minute while idle, resync every {args.resync_seconds:g} s:")
    names = list(columns)
    print(f"  {'':<22}" + "".join(f"{n:>16}" for n in names) + ("    ratio" if len(names) == 2 else ""))
    for row in columns[names[0]]:
        values = [columns[n][row] for n in names]
        if not any(values):
            continue
        ratio = ""
        if len(values) == 2:
            ratio = f"    {values[0] / values[1]:.2f}" if values[1] else "      -"
        print(f"  {row:<22}" + "".join(f"{v:>16.1f}" for v in values) + ratio)
    lists = [sum(v for k, v in columns[n].items() if k.startswith("LIST")) for n in names]
    print(
        "  LIST requests, all kinds: "
        + ", ".join(f"{n} {v:.1f}/min" for n, v in zip(names, lists, strict=True))
    )
    print("  target: no LIST per resync pass once kopf's indices are complete (was 3 per pass)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
