"""The mission on a real kubelet: `helm install` of the chart with the images of
deploy/dev/images.sh and its bundled PostgreSQL, then indexing and search the way users do it,
and the failures a real pod can have.

Nothing is faked: the server, the operator, PostgreSQL and every indexer run as containers on the
dev cluster's real node (deploy/dev/cluster.sh up --real-node), the MCP client talks streamable
HTTP with the chart's bearer token to the server's Service, the indexer reads the workspace
volume (a hostPath PersistentVolume) or clones a git repository, and the rows are read from the
bundled database. The tests share one release and run in file order; the ones that restart the
operator come last. On CI a machine that cannot run the real node fails them, with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import _unavailable
from devcluster import DevCluster, indexing_request, real_node_unavailable_reason, row_of
from realnode import (
    RELEASE,
    WORKSPACE_MOUNT,
    Release,
    build_images,
    host_directory,
    make_readable,
    wait_until,
    write_repository,
)

from mcp_server.core.jobs import JobStatus

pytestmark = [pytest.mark.kubernetes, pytest.mark.timeout(900)]

BIG_FILES = 1500  # enough for a run of several seconds, so counters can be seen moving
BIG_MARKER = "recalibrate_quasar_manifold"
SMALL_MARKER = "defragment_tachyon_lattice"
IMAGES_TIMEOUT = float(os.environ.get("CODEBASE_MCP_IMAGES_TIMEOUT", "3000"))
FIGURES = os.environ.get("CODEBASE_MCP_REAL_NODE_FIGURES")
TERMINAL_PHASES = ("Completed", "Failed", "Cancelled")


@pytest.fixture(scope="module")
def release(cluster: DevCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    if cluster.real_node() is None:
        reason = real_node_unavailable_reason()
        _unavailable(
            f"no real node: {reason}"
            if reason
            else "the running dev cluster has no real node (deploy/dev/cluster.sh up --real-node)"
        )
    t0 = time.monotonic()
    tags = build_images(timeout=IMAGES_TIMEOUT)
    images_s = time.monotonic() - t0

    workspace = host_directory("codebase-mcp-workspace-")
    database_dir = host_directory("codebase-mcp-database-")
    database_dir.chmod(0o777)  # PostgreSQL runs as uid 999; hostPath volumes ignore fsGroup
    write_repository(workspace / "big", files=BIG_FILES, marker=BIG_MARKER)
    write_repository(workspace / "small", files=20, marker=SMALL_MARKER)
    make_readable(workspace)

    namespace = f"real-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", namespace)
    cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    rel = Release(cluster, namespace, tags, workspace, database_dir)
    rel.figures["images_s"] = round(images_s, 1)
    values = tmp_path_factory.mktemp("real-values") / "values.yaml"
    values.write_text(yaml.safe_dump(rel.values()))
    try:
        rel.create_volumes()
        rel.install(values)
        yield rel
    finally:
        rel.close()
        if FIGURES:
            Path(FIGURES).write_text(json.dumps(rel.figures, indent=2))
        cluster.kubectl(
            "delete", "namespace", namespace, "--wait=true", "--timeout=120s", check=False, timeout=180
        )
        cluster.kubectl("delete", "pv", "-l", f"codebase-mcp.dev/test={namespace}", check=False)
        shutil.rmtree(workspace, ignore_errors=True)
        shutil.rmtree(database_dir, ignore_errors=True)


def request_row(release: Release, name: str, status: JobStatus, timeout: float = 300) -> Any:
    store = release.store()

    def check() -> Any:
        row = row_of(store, release.namespace, name)
        return row if row is not None and row.status is status else None

    return wait_until(
        check,
        timeout=timeout,
        message=lambda: (
            f"the row of {name} to be {status.value}: {row_of(store, release.namespace, name)}; "
            f"status {phase_of(release, name)}\n{release.describe_pods()}"
        ),
    )


def apply_request(release: Release, name: str, spec: dict[str, Any]) -> None:
    release.kubectl("apply", "-f", "-", input=json.dumps(indexing_request(name, spec)))


def phase_of(release: Release, name: str) -> dict[str, Any]:
    return dict(release.get("indexingrequest", name).get("status") or {})


def wait_phase(release: Release, name: str, phase: str, timeout: float = 300) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        status = phase_of(release, name)
        if status.get("phase") == phase:
            return status
        assert status.get("phase") not in TERMINAL_PHASES, f"{name} ended {status.get('phase')}: {status}"
        return None

    return dict(
        wait_until(
            check,
            timeout=timeout,
            message=lambda: f"{name} to be {phase}: {phase_of(release, name)}\n{release.describe_pods()}",
        )
    )


# --- installing -----------------------------------------------------------------------------------


def test_the_chart_installs_on_the_real_node_and_its_pods_migrate_the_bundled_database(
    release: Release,
) -> None:
    node = release.cluster.real_node()
    pods = release.get("pods")["items"]
    by_component = {p["metadata"]["labels"].get("app.kubernetes.io/component"): p for p in pods}
    for component in ("server", "operator", "database"):
        pod = by_component[component]
        assert pod["spec"]["nodeName"] == node, component
        assert pod["status"]["phase"] == "Running", component
    # With the bundled database the migration runs in each pod's init container (a pre-install
    # hook would run before the database exists): it ran for real and exited 0.
    for component in ("server", "operator"):
        (init,) = [
            s for s in by_component[component]["status"]["initContainerStatuses"] if s["name"] == "migrate"
        ]
        assert init["state"]["terminated"]["exitCode"] == 0, init
    with release.engine().connect() as conn:
        revision = conn.exec_driver_sql("select version_num from alembic_version").scalar_one()
        assert revision
        assert conn.exec_driver_sql("select extname from pg_extension where extname = 'vector'").scalar_one()


def test_helm_test_runs_the_charts_check_on_the_real_node_and_it_passes(release: Release) -> None:
    """The chart's `helm test` hook: a pod that asks the server's Service for /healthz."""
    output = release.helm("test", RELEASE, "--namespace", release.namespace, "--timeout", "180s")
    assert "Phase:          Succeeded" in output, output
    (pod,) = [
        p for p in release.get("pods")["items"] if "helm.sh/hook" in (p["metadata"].get("annotations") or {})
    ]
    assert pod["spec"]["nodeName"] == release.cluster.real_node(), pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Succeeded"


# --- the mission ----------------------------------------------------------------------------------


def test_an_mcp_client_indexes_a_workspace_repository_in_a_real_pod_and_searches_it(release: Release) -> None:
    t0 = time.monotonic()
    started = release.tool(
        "start_indexing_background", repo_path=f"{WORKSPACE_MOUNT}/big", project_id="mission"
    )
    answered_s = time.monotonic() - t0
    job_id = uuid.UUID(started["job_id"])
    store = release.store()

    # The answer reports the row as the server created it; the operator takes it from there.
    seen: list[str] = [started["status"]]
    live: list[dict[str, Any]] = []

    def finished() -> bool:
        (status,) = release.call_tools(("get_indexing_status", {"job_id": str(job_id)}))
        for value in (status["status"], store.get(job_id).status.value):
            if value != seen[-1]:
                seen.append(value)
        if status["status"] == "running" and (status["files_seen"] or 0) > 0:
            live.append(status)
        return status["status"] in ("completed", "failed", "cancelled")

    wait_until(finished, timeout=600, interval=0.3, message=lambda: f"job {job_id} to finish: {seen}")
    row = store.get(job_id)
    assert row.status is JobStatus.COMPLETED, (row.error_message, release.describe_pods())
    assert seen == ["pending", "running", "completed"], seen
    assert row.files_indexed == BIG_FILES and row.chunks_created >= BIG_FILES
    # Counters moved while it ran: some status said running with part of the files seen.
    partial = [s for s in live if (s["files_seen"] or 0) < BIG_FILES]
    assert partial, f"no running status with counters between 0 and {BIG_FILES}: {live[-3:]}"

    # The pod that did it: on the real node, exited 0, its log readable through the API server.
    (pod,) = release.indexer_pods(job_id)
    assert pod["spec"]["nodeName"] == release.cluster.real_node()
    (container,) = pod["status"]["containerStatuses"]
    assert container["state"]["terminated"]["exitCode"] == 0, container
    release.kubectl("logs", pod["metadata"]["name"])  # the API server reaches the kubelet

    t1 = time.monotonic()
    found = release.tool("search_code", query=f"{BIG_MARKER} flux capacitor", project_id="mission", limit=5)
    search_s = time.monotonic() - t1
    paths = [r["file_path"] for r in found["results"]]
    assert paths and paths[0].endswith(f"module_{BIG_FILES // 2}.py"), found
    release.figures.update(
        start_answer_s=round(answered_s, 2),
        mission_files=row.files_indexed,
        mission_chunks=row.chunks_created,
        mission_index_s=round((row.completed_at - row.created_at).total_seconds(), 1),
        mission_search_s=round(search_s, 2),
        live_statuses=len(partial),
    )


def test_an_indexing_request_applied_with_kubectl_completes_on_the_real_node_and_is_searchable(
    release: Release,
) -> None:
    """No MCP server involved in indexing: the request is applied, the operator and a pod do the rest.

    A path on the workspace volume, not a git source: a git source's pod does not mount the
    workspace (so `file://` URLs into it fail: "does not appear to be a git repository", found
    here), the validation refuses git:// and http:// URLs, and nothing here serves https."""
    name = "applied-path"
    apply_request(release, name, {"projectId": "applied", "source": {"path": f"{WORKSPACE_MOUNT}/small"}})
    status = wait_phase(release, name, "Completed")
    row = request_row(release, name, JobStatus.COMPLETED)
    assert row.files_indexed == 20 and status["filesIndexed"] == 20, (row, status)
    found = release.tool(
        "search_code", query=f"{SMALL_MARKER} tachyon lattice", project_id="applied", limit=3
    )
    assert found["results"] and found["results"][0]["file_path"].endswith("module_10.py"), found
    release.figures["applied_path_s"] = round((row.completed_at - row.created_at).total_seconds(), 1)


def test_a_sharded_run_is_an_indexed_job_whose_real_pods_index_one_generation(release: Release) -> None:
    """`shards` through the MCP tool: the server's IndexingRequest says spec.shards, the operator
    makes an Indexed Job, three real pods each index their part of the same tree, the last one
    publishes, and the run finds what the unsharded mission run found."""
    started = release.tool(
        "start_indexing_background", repo_path=f"{WORKSPACE_MOUNT}/big", project_id="sharded", shards=3
    )
    job_id = uuid.UUID(started["job_id"])
    name = f"index-{job_id}"
    status = wait_phase(release, name, "Completed", timeout=600)
    row = request_row(release, name, JobStatus.COMPLETED)
    assert row.shards == 3 and row.files_indexed == BIG_FILES, (row, status)
    assert (row.progress_message or "").endswith("by 3 shards"), row.progress_message
    shards = status["shards"]
    assert [(s["index"], s["state"]) for s in shards] == [(0, "Done"), (1, "Done"), (2, "Done")], shards
    assert sum(s["filesIndexed"] for s in shards) == BIG_FILES and status["filesIndexed"] == BIG_FILES

    (job,) = release.get("jobs", "-l", f"codebase-mcp.dev/job-id={job_id}")["items"]
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 3)
    pods = release.indexer_pods(job_id)
    done = {
        p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        for p in pods
        if p["status"]["containerStatuses"][0]["state"].get("terminated", {}).get("exitCode") == 0
    }
    assert done == {"0", "1", "2"}, release.describe_pods()

    found = release.tool("search_code", query=f"{BIG_MARKER} flux capacitor", project_id="sharded", limit=5)
    paths = [r["file_path"] for r in found["results"]]
    assert paths and paths[0].endswith(f"module_{BIG_FILES // 2}.py"), found
    release.figures["sharded_index_s"] = round((row.completed_at - row.created_at).total_seconds(), 1)


# --- failures, for real -----------------------------------------------------------------------------


def test_a_missing_path_fails_with_the_indexers_own_message_in_the_row_and_the_status(
    release: Release,
) -> None:
    name = "missing-path"
    missing = f"{WORKSPACE_MOUNT}/no-such-repository"
    apply_request(release, name, {"projectId": "missing", "source": {"path": missing}})
    status = wait_phase(release, name, "Failed")
    row = request_row(release, name, JobStatus.FAILED)
    # The indexer's words (its termination message), not only the exit code's meaning.
    for text in (row.error_message or "", status.get("message") or ""):
        assert f"{missing!r} does not exist" in text, (row.error_message, status)


def test_deleting_a_running_request_terminates_its_pod_and_the_row_ends_cancelled(release: Release) -> None:
    name = "deleted-while-running"
    apply_request(release, name, {"projectId": "deleted", "source": {"path": f"{WORKSPACE_MOUNT}/big"}})
    row = request_row(release, name, JobStatus.RUNNING)
    wait_until(
        lambda: any(p["status"].get("phase") == "Running" for p in release.indexer_pods(row.id)),
        timeout=120,
        message="the indexer pod to run",
    )
    release.kubectl("delete", "indexingrequest", name, "--wait=false")
    cancelled = request_row(release, name, JobStatus.CANCELLED, timeout=120)
    assert cancelled.files_indexed is None or cancelled.files_indexed < BIG_FILES
    wait_until(
        lambda: not release.indexer_pods(row.id),
        timeout=120,
        message=lambda: f"the indexer pod of {row.id} to be gone: {release.describe_pods()}",
    )


def test_killing_the_operator_pod_mid_run_converges_after_its_restart(release: Release) -> None:
    name = "operator-killed"
    apply_request(release, name, {"projectId": "restart", "source": {"path": f"{WORKSPACE_MOUNT}/big"}})
    row = request_row(release, name, JobStatus.RUNNING)
    (old,) = release.get("pods", "-l", "app.kubernetes.io/component=operator")["items"]
    release.kubectl("delete", "pod", old["metadata"]["name"], "--grace-period=0", "--force", "--wait=false")
    release.rollout("deployment", f"{RELEASE}-operator")
    done = request_row(release, name, JobStatus.COMPLETED, timeout=600)
    assert done.id == row.id and done.files_indexed == BIG_FILES
    status = wait_phase(release, name, "Completed")
    assert status["filesIndexed"] == BIG_FILES
    (new,) = release.get("pods", "-l", "app.kubernetes.io/component=operator")["items"]
    assert new["metadata"]["uid"] != old["metadata"]["uid"]


def test_a_pod_over_its_memory_limit_fails_saying_it_ran_out_of_memory(release: Release) -> None:
    with release.operator_env(INDEXER_MEMORY_REQUEST="48Mi", INDEXER_MEMORY_LIMIT="48Mi"):
        name = "out-of-memory"
        apply_request(release, name, {"projectId": "oom", "source": {"path": f"{WORKSPACE_MOUNT}/big"}})
        status = wait_phase(release, name, "Failed")
        row = request_row(release, name, JobStatus.FAILED)
    for text in (row.error_message or "", status.get("message") or ""):
        assert "OOMKilled" in text and "out of memory" in text, (row.error_message, status)


def test_an_image_that_cannot_be_pulled_fails_fast_with_the_kubelets_reason(release: Release) -> None:
    missing_image = f"codebase-mcp-indexer:{release.tags.app}-missing"
    with release.operator_env(INDEXER_IMAGE=missing_image):
        name = "unpullable"
        t0 = time.monotonic()
        apply_request(
            release, name, {"projectId": "unpullable", "source": {"path": f"{WORKSPACE_MOUNT}/big"}}
        )
        # Well inside the chart's podPendingTimeoutSeconds (300 s here): the kubelet's reason is final.
        status = wait_phase(release, name, "Failed", timeout=90)
        elapsed = time.monotonic() - t0
        row = request_row(release, name, JobStatus.FAILED, timeout=30)
    for text in (row.error_message or "", status.get("message") or ""):
        assert "ErrImageNeverPull" in text, (row.error_message, status)
    release.figures["unpullable_failed_s"] = round(elapsed, 1)
