"""Status conditions and Kueue pass-through on a real control plane: `kubectl wait` on the
conditions an IndexingRequest reports, and a suspended Job that runs once it is unsuspended (what
Kueue does when it admits the workload; Kueue itself is not installed here).
"""

from __future__ import annotations

from typing import Any

import pytest
from codebase_operator.jobs_builder import JOB_ID_LABEL, KUEUE_QUEUE_LABEL, job_name
from devcluster import DevCluster, indexing_request, jobs_for, status_of, wait_for, wait_phase, wait_row

from mcp_server.core.jobs import JobStatus, JobStore

pytestmark = pytest.mark.kubernetes


def conditions(kube: Any, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status_of(kube, namespace, name).get("conditions") or []}


def kubectl_wait(cluster: DevCluster, namespace: str, name: str, condition: str) -> str:
    """`kubectl wait` itself, as a user runs it (its own timeout bounds a hang, not a duration)."""
    return cluster.kubectl(
        "wait",
        f"--for=condition={condition}",
        f"indexingrequest/{name}",
        "-n",
        namespace,
        "--timeout=60s",
        timeout=90,
    ).stdout


def test_kubectl_wait_for_complete_returns_once_the_request_succeeds(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    start_operator()
    kube.create_indexing_request(namespace, indexing_request("ok", {"source": {"path": "/workspace/ok"}}))

    assert "condition met" in kubectl_wait(cluster, namespace, "ok", "Complete")
    status = status_of(kube, namespace, "ok")
    assert status["phase"] == "Completed"  # the phase and the printer columns stay
    assert status["observedGeneration"] == 1
    conds = conditions(kube, namespace, "ok")
    assert {t: c["status"] for t, c in conds.items()} == {
        "Accepted": "True",
        "JobCreated": "True",
        "Finished": "True",
        "Complete": "True",
        "Failed": "False",
    }
    assert all(c["observedGeneration"] == 1 and c["lastTransitionTime"] for c in conds.values())


def test_a_failed_request_has_failed_true_with_the_reason_and_never_complete(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "broken",
            {"source": {"path": "/workspace/broken"}},
            labels={"codebase-mcp.dev/test-fail-exit-code": "2"},
        ),
    )
    row = wait_row(store, namespace, "broken", JobStatus.FAILED, operator)

    assert "condition met" in kubectl_wait(cluster, namespace, "broken", "Failed")
    failed = conditions(kube, namespace, "broken")["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "PodFailurePolicy"  # the exit code 2 rule of the Job's podFailurePolicy
    assert failed["message"] == row.error_message
    assert conditions(kube, namespace, "broken")["Complete"]["status"] == "False"
    printed = cluster.kubectl(
        "get",
        "ir",
        "broken",
        "-n",
        namespace,
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Failed')].reason}",
    ).stdout
    assert printed == "PodFailurePolicy"


def test_a_refused_spec_is_failed_with_reason_invalid_spec(
    cluster: DevCluster, namespace: str, kube: Any, start_operator: Any
) -> None:
    # The workspace is mounted at /workspace, so a path outside it passes the schema but not the operator.
    start_operator()
    kube.create_indexing_request(namespace, indexing_request("outside", {"source": {"path": "/etc"}}))
    assert "condition met" in kubectl_wait(cluster, namespace, "outside", "Failed")
    conds = conditions(kube, namespace, "outside")
    assert (conds["Failed"]["reason"], conds["Accepted"]["status"]) == ("InvalidSpec", "False")


def test_spec_status_cancelled_stops_a_running_request_and_keeps_it_showing_cancelled(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    """Before: only deleting the request cancelled it, and then nothing showed the run had been
    cancelled. Now, as Tekton's spec.status: the Job goes, the request stays with phase Cancelled."""
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "long",
            {"source": {"path": "/workspace/long"}},
            annotations={"codebase-mcp.dev/test-run-duration": "10m"},
        ),
    )
    row = wait_row(store, namespace, "long", JobStatus.RUNNING, operator)
    cluster.kubectl(
        "patch",
        "indexingrequest",
        "long",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"status":"Cancelled"}}',
    )
    wait_phase(kube, namespace, "long", "Cancelled")
    assert store.get(row.id).status is JobStatus.CANCELLED
    wait_for(lambda: jobs_for(kube, namespace, row.id) == [], timeout=30, message="the Job to be deleted")
    printed = cluster.kubectl("get", "ir", "long", "-n", namespace).stdout
    assert "Cancelled" in printed
    conds = conditions(kube, namespace, "long")
    assert (conds["Finished"]["reason"], conds["Complete"]["status"], conds["Failed"]["status"]) == (
        "Cancelled",
        "False",
        "False",
    )
    # The rest of the spec stays immutable, and a cancelled request stays cancelled.
    for patch, refusal in (
        ('{"spec":{"projectId":"other"}}', "spec is immutable but for status"),
        ('[{"op":"remove","path":"/spec/status"}]', "stays cancelled"),
    ):
        kind = "--type=json" if patch.startswith("[") else "--type=merge"
        refused = cluster.kubectl(
            "patch", "indexingrequest", "long", "-n", namespace, kind, "-p", patch, check=False
        )
        assert refused.returncode != 0 and refusal in refused.stderr, refused.stderr


def test_a_path_request_without_a_workspace_is_refused_at_admission_naming_the_chart_value(
    cluster: DevCluster, namespace: str, kube: Any, start_operator: Any
) -> None:
    """Before: accepted and run; on a real node its pod exited 2 (nothing at the path)."""
    start_operator(WORKSPACE_PVC_NAME="")  # no workspace volume configured
    kube.create_indexing_request(namespace, indexing_request("nowhere", {"source": {"path": "/workspace/a"}}))
    assert "condition met" in kubectl_wait(cluster, namespace, "nowhere", "Failed")
    conds = conditions(kube, namespace, "nowhere")
    assert conds["Failed"]["reason"] == "InvalidSpec"
    assert "workspace.existingClaim" in conds["Failed"]["message"]
    assert kube.list_jobs(namespace, label_selector=JOB_ID_LABEL) == []


def test_a_kueue_request_waits_suspended_until_unsuspended_then_runs(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    # A limit of one slot, held by nothing: Kueue's Jobs must not need it.
    operator = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1")
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "queued",
            {
                "source": {"path": "/workspace/q"},
                "queueName": "indexing",
                "priorityClassName": "system-cluster-critical",
            },
        ),
    )
    kube.create_indexing_request(
        namespace,
        indexing_request("queued-too", {"source": {"path": "/workspace/q2"}, "queueName": "indexing"}),
    )
    wait_for(
        lambda: str(status_of(kube, namespace, "queued-too").get("message", "")).startswith(
            "queued by Kueue"
        ),
        timeout=30,
        message=lambda: f"queued-too: {status_of(kube, namespace, 'queued-too')}\n{operator.log_tail()}",
    )
    status = wait_for(
        lambda: (
            (s := status_of(kube, namespace, "queued")).get("message", "").startswith("queued by Kueue") and s
        ),
        timeout=30,
        message=lambda: f"queued: {status_of(kube, namespace, 'queued')}",
    )
    assert status["phase"] == "Pending" and "LocalQueue indexing" in status["message"]
    row = wait_row(store, namespace, "queued", JobStatus.PENDING, operator)
    (job,) = jobs_for(kube, namespace, row.id)
    assert job["metadata"]["name"] == status["jobName"] == job_name(row.id)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "indexing"
    assert job["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"
    assert not cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", f"job-name={job['metadata']['name']}", "-o", "name"
    ).stdout.strip()  # suspended: the Job controller made no pod

    # What Kueue does when it admits the workload.
    cluster.kubectl(
        "patch",
        "job",
        job["metadata"]["name"],
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"suspend":false}}',
    )
    wait_row(store, namespace, "queued", JobStatus.COMPLETED, operator)
    assert "condition met" in kubectl_wait(cluster, namespace, "queued", "Complete")
    wait_phase(kube, namespace, "queued", "Completed")
    # The other one still waits for Kueue, suspended.
    assert status_of(kube, namespace, "queued-too")["phase"] == "Pending"
