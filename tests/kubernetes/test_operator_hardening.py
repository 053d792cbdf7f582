"""What breaks an operator on real clusters (issue 10), each reproduced on the control plane:
OwnerReferencesPermissionEnforcement, an outage longer than the Job TTL, two replicas, two
requests for one repository, and a ResourceQuota that blocks pod creation.
"""

from __future__ import annotations

import collections
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from codebase_operator.jobs_builder import job_name
from codebase_operator.reflection import job_outcome
from devcluster import DevCluster, indexing_request, jobs_for, status_of, wait_for, wait_phase, wait_row
from test_operator_resilience import JobWatcher

from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.runners.kube_api import KubernetesError

pytestmark = pytest.mark.kubernetes

RUN = "codebase-mcp.dev/test-run-duration"


def path_request(
    name: str, path: str | None = None, *, run: str = "500ms", project: str = "default"
) -> dict[str, Any]:
    spec = {"projectId": project, "source": {"path": path or f"/workspace/{name}"}}
    return indexing_request(name, spec, annotations={RUN: run})


def event_reasons(cluster: DevCluster, namespace: str, name: str) -> list[str]:
    return cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.name={name},involvedObject.kind=IndexingRequest",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()


# --- 1. OwnerReferencesPermissionEnforcement ------------------------------------------------------


@pytest.mark.timeout(180)
def test_the_dev_cluster_enforces_owner_reference_permissions_and_the_operator_has_them(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any, tmp_path: Path
) -> None:
    # An account that may create Jobs but not update the owner's finalizers is refused: the
    # plugin is on, so a Role missing `indexingrequests/finalizers: update` fails here, not in
    # production on OpenShift.
    cluster.kubectl("create", "serviceaccount", "no-finalizers", "-n", namespace)
    cluster.kubectl(
        "create", "role", "no-finalizers", "-n", namespace, "--verb=create", "--resource=jobs.batch"
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "no-finalizers",
        "-n",
        namespace,
        "--role=no-finalizers",
        f"--serviceaccount={namespace}:no-finalizers",
    )
    owner = kube.create_indexing_request(namespace, path_request("owner"))
    narrow = cluster.client(
        cluster.service_account_kubeconfig(namespace, "no-finalizers", tmp_path / "nf.kc")
    )
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "owned",
            "ownerReferences": [
                {
                    "apiVersion": owner["apiVersion"],
                    "kind": owner["kind"],
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
        },
    }
    with pytest.raises(KubernetesError, match="cannot set blockOwnerDeletion"):
        narrow.create_job(namespace, job)
    narrow.close()

    operator = start_operator()
    wait_row(store, namespace, "owner", JobStatus.COMPLETED, operator)
    wait_phase(kube, namespace, "owner", "Completed")
    assert " 403 " not in operator.log_text() and "Forbidden" not in operator.log_text()


# --- 2. an outage longer than the Job TTL ----------------------------------------------------------


@pytest.mark.timeout(240)
def test_an_operator_outage_longer_than_the_job_ttl_keeps_a_success(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    ttl = {"JOB_TTL_SECONDS_AFTER_FINISHED": "1"}
    first = start_operator(**ttl)
    kube.create_indexing_request(namespace, path_request("survivor", run="3s"))
    row = wait_row(store, namespace, "survivor", JobStatus.RUNNING, first)
    first.kill()

    # A Job of our own with the same TTL, finishing after ours, shows when the TTL controller
    # has acted: once it is gone, a finished Job with a TTL would be gone too.
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(sentinel_job("ttl-sentinel")))
    wait_for(
        lambda: cluster.kubectl("get", "job", "ttl-sentinel", "-n", namespace, check=False).returncode != 0,
        timeout=90,
        message="the TTL controller to delete the sentinel Job",
    )
    jobs = jobs_for(kube, namespace, row.id)
    assert len(jobs) == 1, "the finished indexing Job was deleted while no operator could record it"
    assert job_outcome(jobs[0]) == "Complete"
    assert jobs[0]["spec"].get("ttlSecondsAfterFinished") is None  # no TTL until recorded
    assert store.get(row.id).status is JobStatus.RUNNING

    second = start_operator(**ttl)
    wait_row(store, namespace, "survivor", JobStatus.COMPLETED, second)
    wait_phase(kube, namespace, "survivor", "Completed")
    # Recorded: now the TTL applies and the Job goes.
    wait_for(
        lambda: not jobs_for(kube, namespace, row.id), timeout=60, message="the Job to be deleted by its TTL"
    )
    assert store.get(row.id).status is JobStatus.COMPLETED


def sentinel_job(name: str) -> dict[str, Any]:
    """A plain Job with a 1 s TTL whose pod (run by kwok) passes the restricted profile."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "ttlSecondsAfterFinished": 1,
            "template": {
                "metadata": {"annotations": {"codebase-mcp.dev/run-duration": "4s"}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "c",
                            "image": "sentinel:1",
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }


# --- 3. two replicas ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_two_operator_replicas_never_exceed_the_limit_nor_post_an_event_twice(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    election = {"OPERATOR_LEASE_SECONDS": "4", "MAX_CONCURRENT_INDEXING_JOBS": "2"}
    replicas = [start_operator(**election), start_operator(**election)]
    watcher = JobWatcher(cluster, namespace)
    watcher.start()
    names = [f"pair-{i}" for i in range(6)]
    for name in names:
        kube.create_indexing_request(namespace, path_request(name, run="1500ms"))
    wait_for(
        lambda: store.count_by_status()[JobStatus.COMPLETED] == len(names),
        timeout=120,
        message=lambda: f"all {len(names)} completed: {store.count_by_status()}",
    )
    for name in names:
        wait_phase(kube, namespace, name, "Completed")
    watcher.stop()
    assert watcher.error is None, watcher.error
    assert watcher.max_unfinished == 2
    assert len(watcher.created) == len(names)
    for name in names:
        reasons = collections.Counter(event_reasons(cluster, namespace, name))
        assert reasons == {"Accepted": 1, "JobCreated": 1, "Running": 1, "Completed": 1}, (name, reasons)

    # The leader dies without releasing the Lease: the standby takes over once it expires.
    assert sum(op.leads() for op in replicas) == 1
    leader = next(op for op in replicas if op.leads())
    standby = next(op for op in replicas if op is not leader)
    leader.kill()
    kube.create_indexing_request(namespace, path_request("after-failover"))
    wait_row(store, namespace, "after-failover", JobStatus.COMPLETED, standby, timeout=60)
    assert standby.leads()
    holder = cluster.kubectl(
        "get", "lease", "codebase-mcp-operator", "-n", namespace, "-o", "jsonpath={.spec.holderIdentity}"
    ).stdout
    assert holder and holder in standby.log_text()


# --- 4. admission -------------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_a_second_request_for_the_same_repository_and_project_waits_for_the_first(
    namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator()
    kube.create_indexing_request(namespace, path_request("first", "/workspace/shared", run="4s"))
    first = wait_row(store, namespace, "first", JobStatus.RUNNING, operator)
    kube.create_indexing_request(namespace, path_request("second", "/workspace/shared"))
    second = wait_for(
        lambda: store.find_by_k8s_name(namespace=namespace, name="second"),
        timeout=30,
        message=operator.log_tail,
    )
    wait_for(
        lambda: "same repository and project" in status_of(kube, namespace, "second").get("message", ""),
        timeout=30,
        message=lambda: f"second to say why it waits: {status_of(kube, namespace, 'second')}",
    )
    assert not jobs_for(kube, namespace, second.id)  # a free slot, yet no Job
    wait_row(store, namespace, "first", JobStatus.COMPLETED, operator)
    done = wait_row(store, namespace, "second", JobStatus.COMPLETED, operator)
    assert done.started_at is not None and first.id != done.id
    assert store.get(first.id).completed_at <= done.started_at  # type: ignore[operator]


@pytest.mark.timeout(180)
def test_a_resource_quota_that_blocks_pods_fails_the_job_within_seconds_and_frees_its_slot(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods"},
        "spec": {"hard": {"pods": "0"}},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(quota))
    wait_for(
        lambda: (
            cluster.kubectl(
                "get", "resourcequota", "no-pods", "-n", namespace, "-o", "jsonpath={.status.hard.pods}"
            ).stdout
            == "0"
        ),
        timeout=30,
        message="the quota controller to publish the quota",
    )
    operator = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1", POD_PENDING_TIMEOUT_SECONDS="15")
    kube.create_indexing_request(namespace, path_request("blocked"))
    blocked = wait_for(
        lambda: store.find_by_k8s_name(namespace=namespace, name="blocked"),
        timeout=30,
        message=operator.log_tail,
    )
    started = time.monotonic()
    wait_for(
        lambda: "FailedCreate" in status_of(kube, namespace, "blocked").get("message", ""),
        timeout=30,
        message=lambda: f"the quota to show in the status: {status_of(kube, namespace, 'blocked')}",
    )
    # The status stays: no publisher puts the plain "waiting for its pod" message back.
    assert "exceeded quota" in status_of(kube, namespace, "blocked")["message"]
    # Only now the second request, so that the first surely holds the only slot (two rows
    # created in the same millisecond are admitted in either order).
    kube.create_indexing_request(namespace, path_request("next"))
    wait_for(
        lambda: "free slot" in status_of(kube, namespace, "next").get("message", ""),
        timeout=30,
        message=lambda: f"next to wait for the slot: {status_of(kube, namespace, 'next')}",
    )
    failed = wait_row(store, namespace, "blocked", JobStatus.FAILED, operator, timeout=60)
    assert time.monotonic() - started < 60  # not the hour of activeDeadlineSeconds
    assert "could not create its pod" in (failed.error_message or "")
    assert "exceeded quota" in (failed.error_message or "")
    wait_phase(kube, namespace, "blocked", "Failed")
    wait_for(lambda: not jobs_for(kube, namespace, blocked.id), timeout=30, message="the blocked Job to go")

    cluster.kubectl("delete", "resourcequota", "no-pods", "-n", namespace)
    wait_row(store, namespace, "next", JobStatus.COMPLETED, operator, timeout=60)  # it got the slot
    assert job_name(blocked.id) not in {
        j["metadata"]["name"] for j in kube.list_jobs(namespace, label_selector="")
    }
    assert uuid.UUID(status_of(kube, namespace, "blocked")["jobId"]) == blocked.id


# --- 5. git sources ------------------------------------------------------------------------------------

SECRET_TOKEN = "ghp_NeverInTheSpecRowOrLog"


def test_a_git_request_with_a_credentials_secret_and_a_commit_sha_runs_and_the_token_goes_nowhere(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    cluster.kubectl(
        "create", "secret", "generic", "repo-token", "-n", namespace, f"--from-literal=token={SECRET_TOKEN}"
    )
    sha = "0123456789abcdef0123456789abcdef01234567"
    operator = start_operator()
    git = {"url": "file:///srv/git/app.git", "ref": sha, "secretRef": {"name": "repo-token"}}
    kube.create_indexing_request(namespace, indexing_request("private", {"source": {"git": git}}))
    row = wait_row(store, namespace, "private", JobStatus.COMPLETED, operator, timeout=60)
    assert (row.source_git_url, row.source_git_ref) == ("file:///srv/git/app.git", sha)
    (job,) = jobs_for(kube, namespace, row.id)
    pod = job["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["clone"]
    assert ["--ref", sha] == pod["initContainers"][0]["command"][7:9]
    text = (
        yaml.safe_dump(job)
        + repr(row)
        + operator.log_text()
        + yaml.safe_dump(status_of(kube, namespace, "private"))
    )
    assert SECRET_TOKEN not in text


def test_the_api_server_refuses_git_urls_that_carry_credentials(namespace: str, kube: Any) -> None:
    for url in (f"https://x:{SECRET_TOKEN}@github.com/a/b.git", f"https://{SECRET_TOKEN}@github.com/a/b.git"):
        with pytest.raises(KubernetesError, match="must not carry credentials") as refused:
            kube.create_indexing_request(
                namespace, indexing_request("leaky", {"source": {"git": {"url": url}}})
            )
        assert "422" in str(refused.value)
    # An ssh user name is not a credential.
    kube.create_indexing_request(
        namespace, indexing_request("ssh-user", {"source": {"git": {"url": "ssh://git@github.com/a/b.git"}}})
    )
