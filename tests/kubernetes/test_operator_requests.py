"""IndexingRequests on a real control plane: the operator (a subprocess, with its ServiceAccount's
RBAC) turns them into Jobs, kwok drives the pods, and the job row and the resource end up agreeing.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from codebase_operator.jobs_builder import JOB_ID_LABEL, job_name
from codebase_operator.reflection import job_outcome
from devcluster import (
    ROOT,
    WORKSPACE_CLAIM,
    DevCluster,
    indexing_request,
    jobs_for,
    row_of,
    status_of,
    wait_for,
    wait_phase,
    wait_row,
)

from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.runners.kube_api import KubernetesError

pytestmark = pytest.mark.kubernetes

RUN = "codebase-mcp.dev/test-run-duration"  # kwok hooks, passed through by `operator --test-hooks`


@pytest.fixture
def service_as(
    cluster: DevCluster,
    namespace: str,
    settings: Any,
    clean_db: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    """A CodebaseService on the kubernetes launcher that talks to the API server as one of the
    chart's ServiceAccounts, so each test runs under that account's RBAC, not the admin's."""
    from mcp_server.frontends.operations import CodebaseService

    def make(service_account: str) -> CodebaseService:
        config = cluster.service_account_kubeconfig(
            namespace, service_account, tmp_path / f"{service_account}.kc"
        )
        monkeypatch.setenv("KUBECONFIG", str(config))
        return CodebaseService(
            settings.replace(
                jobs={"launcher": "kubernetes"},
                kubernetes={"namespace": namespace, "workspace_pvc_name": WORKSPACE_CLAIM},
            ),
            engine=clean_db,
        )

    return make


def test_applied_example_is_indexed_without_an_mcp_server(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "deploy/examples/indexingrequest.yaml"))
    name = yaml.safe_load((ROOT / "deploy/examples/indexingrequest.yaml").read_text())["metadata"]["name"]

    row = wait_for(lambda: row_of(store, namespace, name), timeout=30, message="the job row")
    assert row.repo_path == "/workspace/myapp" and row.project_id == "default"
    done = wait_row(store, namespace, name, JobStatus.COMPLETED, operator)
    status = wait_phase(kube, namespace, name, "Completed")

    assert status["jobId"] == str(done.id)
    (job,) = jobs_for(kube, namespace, done.id)
    assert job["metadata"]["name"] == status["jobName"] == job_name(done.id) == done.k8s_job_name
    # The row completes on the pod's success; the Job controller's Complete condition follows.
    wait_for(
        lambda: job_outcome(jobs_for(kube, namespace, done.id)[0]) == "Complete",
        timeout=30,
        message="the Job's Complete condition",
    )
    assert done.started_at is not None and done.completed_at is not None
    printed = cluster.kubectl("get", "ir", name, "-n", namespace).stdout
    assert "PHASE" in printed and "Completed" in printed and "FILES" in printed

    reasons = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name}",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()
    assert {"Accepted", "JobCreated", "Completed"} <= set(reasons)
    metrics = operator.metrics()
    assert "codebase_mcp_operator_jobs_created_total 1.0" in metrics
    assert 'codebase_mcp_indexing_jobs{status="completed"} 1.0' in metrics
    assert "codebase_mcp_operator_reflection_latency_seconds_count" in metrics
    # Once kopf has indexed everything, the resync reads its indices instead of listing.
    wait_for(
        lambda: _resyncs_from(operator.metrics(), "index") >= 3,
        timeout=30,
        message=lambda: f"resyncs from kopf's indices: {_resyncs_from(operator.metrics(), 'index')}",
    )
    assert operator.healthy()


def _resyncs_from(metrics: str, source: str) -> float:
    prefix = f'codebase_mcp_operator_resync_reads_total{{source="{source}"}} '
    return sum(float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix))


def test_git_example_is_accepted_and_runs(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    cluster.kubectl("apply", "-n", namespace, "-f", str(ROOT / "deploy/examples/indexingrequest-git.yaml"))
    row = wait_row(store, namespace, "flask", JobStatus.COMPLETED, operator)
    assert (row.source_git_url, row.source_git_ref) == ("https://github.com/pallets/flask.git", "main")
    assert row.project_id == "oss" and row.timeout_seconds == 1800
    (job,) = jobs_for(kube, namespace, row.id)
    pod = job["spec"]["template"]["spec"]
    assert all(v["name"] != "workspace" for v in pod["volumes"])
    assert job["spec"]["activeDeadlineSeconds"] == 1800


def test_mcp_start_indexing_with_the_kubernetes_launcher(
    namespace: str,
    kube: Any,
    store: JobStore,
    start_operator: Any,
    settings: Any,
    make_repo: Any,
    service_as: Any,
) -> None:
    repo = make_repo({"main.py": "print('hello')\n"})
    # The repository lies on the workspace the server and the indexer pods share.
    operator = start_operator(WORKSPACE_MOUNT_PATH=str(repo.resolve().parent))
    service = service_as("codebase-mcp-server")  # the MCP server's own, narrower RBAC

    started = service.start_indexing(str(repo), "web")
    job_id = uuid.UUID(started["job_id"])
    name = f"index-{job_id}"
    request = kube.get_indexing_request(namespace, name)
    assert request["spec"] == {
        "projectId": "web",
        "source": {"path": str(repo.resolve())},
        "jobId": str(job_id),
        "forceReindex": False,
        "timeoutSeconds": settings.jobs.timeout_seconds,
        "shards": 1,  # the CRD's default: the server names shards only for a sharded job
    }
    wait_row(store, namespace, name, JobStatus.COMPLETED, operator)
    status = wait_phase(kube, namespace, name, "Completed")
    assert status["jobId"] == str(job_id)
    assert [j["metadata"]["labels"][JOB_ID_LABEL] for j in jobs_for(kube, namespace, job_id)] == [str(job_id)]
    assert service.get_status(str(job_id))["status"] == "completed"
    assert len(store.list(limit=10)) == 1  # the operator adopted the row; it made no second one


def test_mcp_git_secret_is_named_in_the_request_the_server_creates(
    namespace: str, kube: Any, store: JobStore, service_as: Any
) -> None:
    """Under the server's own Role (which has no verb on Secrets): it names the Secret, the API
    server stores the name in spec.source.git.secretRef, the row keeps the name."""
    service = service_as("codebase-mcp-server")
    url = "https://git.example.com/acme/private.git"
    started = service.start_indexing(git_url=url, ref="v1.2", git_secret="acme-git")
    job_id = uuid.UUID(started["job_id"])
    request = kube.get_indexing_request(namespace, f"index-{job_id}")
    secret_ref = {"name": "acme-git"}
    assert request["spec"]["source"] == {"git": {"url": url, "ref": "v1.2", "secretRef": secret_ref}}
    assert store.get(job_id).source_git_secret == "acme-git"


def test_mcp_cancel_leaves_the_request_showing_cancelled(
    namespace: str, kube: Any, start_operator: Any, make_repo: Any, service_as: Any
) -> None:
    """Before: cancel_job deleted the request, so `kubectl get ir` no longer showed the run."""
    service = service_as("codebase-mcp-server")  # its Role: create and patch, no delete
    repo = make_repo({"a.py": "x = 1\n"})
    started = service.start_indexing(str(repo))  # no operator yet: stays pending
    result = service.cancel_job(started["job_id"])
    assert result["cancelled"] is True and result["status"] == "cancelled"
    name = f"index-{started['job_id']}"
    assert kube.get_indexing_request(namespace, name)["spec"]["status"] == "Cancelled"
    start_operator(WORKSPACE_MOUNT_PATH=str(repo.resolve().parent))
    wait_phase(kube, namespace, name, "Cancelled")
    assert jobs_for(kube, namespace, uuid.UUID(started["job_id"])) == []


def test_mcp_launcher_errors_are_readable_and_fail_the_row(
    store: JobStore, make_repo: Any, service_as: Any
) -> None:
    from mcp_server.core.errors import LauncherError

    # The indexer's ServiceAccount may do nothing at all: the API server says 403.
    service = service_as("codebase-mcp-indexer")
    with pytest.raises(LauncherError, match=r"403 Forbidden.*RBAC"):
        service.start_indexing(str(make_repo({"a.py": "x = 1\n"})))
    (row,) = store.list(limit=10)
    assert row.status is JobStatus.FAILED and "could not create the IndexingRequest" in (
        row.error_message or ""
    )


@pytest.mark.parametrize(
    ("exit_code", "reason", "expected"),
    [
        (
            "1",
            "Error",
            ["the indexer failed (exit code 1)", "EmbeddingError: server unreachable", "(PodFailurePolicy)"],
        ),
        ("2", "Error", ["refused its input (exit code 2)", "(PodFailurePolicy)"]),
        ("137", "OOMKilled", ["OOMKilled", "exit code 137", "(BackoffLimitExceeded)"]),
    ],
)
def test_a_failing_pod_fails_the_job_with_its_exit_code_and_message(
    namespace: str,
    kube: Any,
    store: JobStore,
    start_operator: Any,
    exit_code: str,
    reason: str,
    expected: list[str],
) -> None:
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "broken",
            {"source": {"path": "/workspace/broken"}},
            labels={"codebase-mcp.dev/test-fail-exit-code": exit_code},
            annotations={
                "codebase-mcp.dev/test-fail-message": "EmbeddingError: server unreachable",
                "codebase-mcp.dev/test-fail-reason": reason,
            },
        ),
    )
    row = wait_row(store, namespace, "broken", JobStatus.FAILED, operator)
    for fragment in expected:
        assert fragment in (row.error_message or "")
    status = wait_phase(kube, namespace, "broken", "Failed")
    assert status["message"] == row.error_message
    assert {c["type"]: c["status"] for c in status["conditions"]}["Finished"] == "True"


def test_a_sharded_request_is_an_indexed_job_whose_pods_learn_their_shard(
    namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    """The real Job controller runs the shards: an Indexed Job, `parallelism` pods at a time, each
    with its completion index. kwok's pods run no indexer, so no shard publishes: the Job's
    success must not pass for the run's (the row fails, saying so), and no single pod's success
    may complete the row before the Job does."""
    operator = start_operator(CODEBASE_SHARD_PARALLELISM="2")
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "mono", {"source": {"path": "/workspace/mono"}, "shards": 3}, annotations={RUN: "1s"}
        ),
    )
    row = wait_row(store, namespace, "mono", JobStatus.FAILED, operator)
    assert row.shards == 3
    assert row.error_message == "all 3 shards ended but none published the index"
    (job,) = jobs_for(kube, namespace, row.id)
    assert (job["spec"]["completionMode"], job["spec"]["completions"], job["spec"]["parallelism"]) == (
        "Indexed",
        3,
        2,
    )
    assert job_outcome(job) == "Complete"
    pods = kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    env = {e["name"] for e in pods[0]["spec"]["containers"][0]["env"]}
    assert "JOB_COMPLETION_INDEX" in env  # what `indexer run` reads for its shard
    assert wait_phase(kube, namespace, "mono", "Failed")["message"] == row.error_message


def test_a_failing_shard_is_retried_alone_then_fails_the_run_naming_it(
    namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "flaky",
            {"source": {"path": "/workspace/flaky"}, "shards": 2},
            labels={"codebase-mcp.dev/test-fail-exit-code": "1"},
            annotations={"codebase-mcp.dev/test-fail-message": "EmbeddingError: server unreachable"},
        ),
    )
    row = wait_row(store, namespace, "flaky", JobStatus.FAILED, operator, timeout=60)
    message = row.error_message or ""
    assert re.fullmatch(
        r"shard [12] of 2: the indexer failed \(exit code 1\): EmbeddingError: server unreachable "
        r"\((MaxFailedIndexesExceeded|FailedIndexes)\)",
        message,
    ), message
    pods = kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}")
    per_index: dict[str, int] = {}
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        per_index[index] = per_index.get(index, 0) + 1
    # backoffLimitPerIndex 1: the shard that failed the run ran twice, by itself.
    assert max(per_index.values()) == 2, per_index
    assert wait_phase(kube, namespace, "flaky", "Failed")["message"] == message


def test_a_job_past_its_deadline_fails_with_deadline_exceeded(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "slow", {"source": {"path": "/workspace/slow"}, "timeoutSeconds": 60}, annotations={RUN: "10m"}
        ),
    )
    row = wait_row(store, namespace, "slow", JobStatus.RUNNING, operator)
    (job,) = jobs_for(kube, namespace, row.id)
    assert job["spec"]["activeDeadlineSeconds"] == 60
    # The schema's minimum timeout is 60 s; shorten the live Job's deadline (a mutable field) so
    # the real job controller enforces it within the test's time.
    cluster.kubectl(
        "patch",
        "job",
        job["metadata"]["name"],
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"activeDeadlineSeconds":2}}',
    )
    failed = wait_row(store, namespace, "slow", JobStatus.FAILED, operator)
    assert "DeadlineExceeded" in (failed.error_message or "")
    assert wait_phase(kube, namespace, "slow", "Failed")["message"] == failed.error_message


def test_a_pod_stuck_pending_fails_the_job_and_its_job_is_deleted(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator(POD_PENDING_TIMEOUT_SECONDS="3")
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "stuck",
            {"source": {"path": "/workspace/stuck"}},
            labels={"codebase-mcp.dev/test-stuck-pending": "ImagePullBackOff"},
        ),
    )
    row = wait_for(lambda: row_of(store, namespace, "stuck"), timeout=30, message="the row")
    wait_for(
        lambda: "ImagePullBackOff" in status_of(kube, namespace, "stuck").get("message", ""),
        timeout=30,
        message="the waiting reason in the status",
    )
    failed = wait_row(store, namespace, "stuck", JobStatus.FAILED, operator, timeout=40)
    assert "stayed Pending for more than 3 s" in (failed.error_message or "")
    assert "ImagePullBackOff" in (failed.error_message or "")
    wait_for(lambda: not jobs_for(kube, namespace, row.id), timeout=30, message="the Job to be deleted")
    wait_for(
        lambda: not kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}"),
        timeout=30,
        message="its pod to be deleted (propagation Background)",
    )
    assert wait_phase(kube, namespace, "stuck", "Failed")["message"] == failed.error_message


def test_deleting_a_request_cancels_its_job_and_deletes_the_job(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request("doomed", {"source": {"path": "/workspace/doomed"}}, annotations={RUN: "10m"}),
    )
    row = wait_row(store, namespace, "doomed", JobStatus.RUNNING, operator)
    wait_phase(kube, namespace, "doomed", "Running")
    # No finalizer: deletion never waits for the operator (or its database) to be available.
    assert not kube.get_indexing_request(namespace, "doomed")["metadata"].get("finalizers")
    cluster.kubectl("delete", "ir", "doomed", "-n", namespace, "--timeout=20s")
    cancelled = wait_row(store, namespace, "doomed", JobStatus.CANCELLED, operator)
    assert "was deleted" in (cancelled.error_message or "")
    wait_for(lambda: not jobs_for(kube, namespace, row.id), timeout=30, message="the Job to be deleted")
    wait_for(
        lambda: not kube.list_pods(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}"),
        timeout=30,
        message="its pods to be deleted",
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"source": {"path": "/a", "git": {"url": "file:///r"}}}, "exactly one of path or git"),
        ({"source": {}}, "exactly one of path or git"),
        ({"source": {"path": "relative/dir"}}, "must be an absolute path"),
        ({"source": {"path": "/workspace/../etc"}}, "'..'"),
        ({"projectId": "Not_A_Label", "source": {"path": "/a"}}, "spec.projectId"),
        ({"jobId": "123", "source": {"path": "/a"}}, "spec.jobId"),
        ({"timeoutSeconds": 10, "source": {"path": "/a"}}, "spec.timeoutSeconds"),
        ({"timeoutSeconds": 8 * 24 * 3600, "source": {"path": "/a"}}, "spec.timeoutSeconds"),
        ({"source": {"git": {"url": "ftp://example.com/r.git"}}}, "spec.source.git.url"),
        ({"source": {"git": {"url": "file:///r", "ref": "--upload-pack=x"}}}, "source.git.ref"),
    ],
)
def test_the_api_server_refuses_invalid_specs(
    namespace: str, kube: Any, spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(KubernetesError) as excinfo:
        kube.create_indexing_request(namespace, indexing_request("invalid", spec))
    assert excinfo.value.status == 422
    assert message in str(excinfo.value)


def test_the_spec_cannot_change_after_creation(cluster: DevCluster, namespace: str, kube: Any) -> None:
    kube.create_indexing_request(namespace, indexing_request("fixed", {"source": {"path": "/workspace/a"}}))
    patch = cluster.kubectl(
        "patch",
        "ir",
        "fixed",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        '{"spec":{"projectId":"other"}}',
        check=False,
    )
    assert patch.returncode != 0 and "spec is immutable" in patch.stderr


def test_the_operator_refuses_what_the_schema_cannot_judge(
    namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    """Second line of defence: spec.jobId naming another project's job passes the schema."""
    operator = start_operator()
    other = store.create(repo_path="/workspace/a", project_id="other-team")
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "hijack", {"projectId": "default", "source": {"path": "/workspace/a"}, "jobId": str(other.id)}
        ),
    )
    status = wait_phase(kube, namespace, "hijack", "Failed")
    assert "project 'other-team'" in status["message"]
    assert {c["type"]: c["reason"] for c in status["conditions"]}["Accepted"] == "InvalidSpec"
    assert store.get(other.id).status is JobStatus.PENDING  # another team's job is left alone
    assert not jobs_for(kube, namespace, other.id)
    assert operator.healthy()


def test_rbac_keeps_the_server_and_the_indexer_narrow(cluster: DevCluster, namespace: str) -> None:
    def can(account: str, verb: str, resource: str) -> bool:
        # `can-i VERB x/status` would ask about an object named "status": subresources need a flag.
        resource, _, subresource = resource.partition("/")
        result = cluster.kubectl(
            "auth",
            "can-i",
            verb,
            resource,
            *([f"--subresource={subresource}"] if subresource else []),
            "-n",
            namespace,
            f"--as=system:serviceaccount:{namespace}:{account}",
            check=False,
        )
        return result.stdout.strip() == "yes"

    assert can("codebase-mcp-server", "create", "indexingrequests.codebase-mcp.dev")
    assert can("codebase-mcp-server", "patch", "indexingrequests.codebase-mcp.dev")  # spec.status: Cancelled
    assert not can("codebase-mcp-server", "delete", "indexingrequests.codebase-mcp.dev")
    assert not can("codebase-mcp-server", "create", "jobs.batch")
    assert not can("codebase-mcp-server", "list", "pods")
    assert can("codebase-mcp-operator", "create", "jobs.batch")
    assert can("codebase-mcp-operator", "patch", "indexingrequests.codebase-mcp.dev/status")
    assert not can("codebase-mcp-operator", "create", "pods")
    assert not can("codebase-mcp-operator", "list", "secrets")
    for verb, resource in (
        ("get", "pods"),
        ("list", "indexingrequests.codebase-mcp.dev"),
        ("get", "secrets"),
    ):
        assert not can("codebase-mcp-indexer", verb, resource)
    sa = cluster.kubectl(
        "get", "sa", "codebase-mcp-indexer", "-n", namespace, "-o", "jsonpath={.automountServiceAccountToken}"
    ).stdout
    assert sa == "false"
