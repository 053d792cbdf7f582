"""The operator under stress on a real control plane: killed mid-job, and many requests at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from codebase_operator.jobs_builder import JOB_ID_LABEL, MANAGED_SELECTOR
from codebase_operator.reflection import job_outcome
from devcluster import DevCluster, indexing_request, wait_for

from mcp_server.jobs import JobStatus, JobStore

pytestmark = pytest.mark.kubernetes

RUN = "codebase-mcp.dev/test-run-duration"


def test_an_operator_killed_mid_job_converges_after_restart(
    namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    first = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request("survivor", {"source": {"path": "/workspace/survivor"}}, annotations={RUN: "6s"}),
    )
    row = wait_for(
        lambda: (
            (r := store.find_by_k8s_name(namespace=namespace, name="survivor"))
            and r.status is JobStatus.RUNNING
            and r
        ),
        timeout=30,
        message=first.log_tail,
    )
    first.kill()  # SIGKILL while the pod runs

    def finished_job() -> dict[str, Any] | None:
        jobs = kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}")
        return jobs[0] if jobs and job_outcome(jobs[0]) == "Complete" else None

    wait_for(finished_job, timeout=30, message="the Job to complete while no operator runs")
    assert store.get(row.id).status is JobStatus.RUNNING  # nobody has reflected it yet

    second = start_operator()
    wait_for(lambda: store.get(row.id).status is JobStatus.COMPLETED, timeout=30, message=second.log_tail)
    wait_for(
        lambda: (
            ((kube.get_indexing_request(namespace, "survivor") or {}).get("status") or {}).get("phase")
            == "Completed"
        ),
        timeout=30,
        message="the resource to say Completed",
    )
    assert len(kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={row.id}")) == 1
    assert len(store.list(limit=10)) == 1


def test_a_queue_left_by_a_killed_operator_is_resumed_once_after_restart(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    first = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1")
    kube.create_indexing_request(
        namespace,
        indexing_request("blocker", {"source": {"path": "/workspace/blocker"}}, annotations={RUN: "10m"}),
    )
    blocker = wait_for(
        lambda: (
            (r := store.find_by_k8s_name(namespace=namespace, name="blocker"))
            and r.status is JobStatus.RUNNING
            and r
        ),
        timeout=30,
        message=first.log_tail,
    )
    kube.create_indexing_request(
        namespace, indexing_request("queued", {"source": {"path": "/workspace/queued"}})
    )
    queued = wait_for(
        lambda: store.find_by_k8s_name(namespace=namespace, name="queued"), timeout=30, message=first.log_tail
    )
    wait_for(
        lambda: (
            ((kube.get_indexing_request(namespace, "queued") or {}).get("status") or {}).get("phase")
            == "Pending"
        ),
        timeout=30,
        message="queued to be Pending",
    )
    assert not kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={queued.id}")  # no free slot
    first.kill()
    # While no operator runs, the running request is deleted (its DELETED event is never seen).
    cluster.kubectl("delete", "ir", "blocker", "-n", namespace, "--timeout=20s")

    second = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1")
    wait_for(lambda: store.get(blocker.id).status is JobStatus.CANCELLED, timeout=30, message=second.log_tail)
    wait_for(lambda: store.get(queued.id).status is JobStatus.COMPLETED, timeout=40, message=second.log_tail)
    assert len(kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={queued.id}")) == 1
    wait_for(
        lambda: not kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={blocker.id}"),
        timeout=30,
        message="the deleted request's Job to be gone",
    )


class JobWatcher(threading.Thread):
    """Follows the Jobs of a namespace through the API's watch stream (every change, in order) and
    records the most that were unfinished at once, and the order they were created in."""

    def __init__(self, cluster: DevCluster, namespace: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client, watch

        from mcp_server.kube import load_configuration

        self.api = client.BatchV1Api(client.ApiClient(load_configuration(str(cluster.kubeconfig))))
        self.watch = watch.Watch()
        self.namespace = namespace
        self.unfinished: set[str] = set()
        self.max_unfinished = 0
        self.created: list[str] = []
        self.resource_version = self.api.list_namespaced_job(namespace).metadata.resource_version
        self.stopped = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # the stream breaks when stopped; before that it is a failure
            if not self.stopped:
                self.error = exc

    def _follow(self) -> None:
        for event in self.watch.stream(
            self.api.list_namespaced_job,
            self.namespace,
            label_selector=MANAGED_SELECTOR,
            resource_version=self.resource_version,
            timeout_seconds=120,
        ):
            job = event["object"]
            labels = job.metadata.labels or {}
            job_id = labels.get(JOB_ID_LABEL)
            finished = any(
                c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or [])
            )
            if event["type"] == "ADDED" and job_id not in self.created:
                self.created.append(job_id)
            if event["type"] == "DELETED" or finished:
                self.unfinished.discard(job.metadata.name)
            else:
                self.unfinished.add(job.metadata.name)
            self.max_unfinished = max(self.max_unfinished, len(self.unfinished))

    def stop(self) -> None:
        self.stopped = True
        self.watch.stop()


@pytest.mark.timeout(180)
def test_ten_requests_at_once_never_run_more_than_two_jobs(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator(MAX_CONCURRENT_INDEXING_JOBS="2")
    watcher = JobWatcher(cluster, namespace)
    watcher.start()
    names = [f"burst-{i:02d}" for i in range(10)]
    for name in names:
        kube.create_indexing_request(
            namespace,
            indexing_request(name, {"source": {"path": f"/workspace/{name}"}}, annotations={RUN: "1500ms"}),
        )

    most_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = store.count_by_status()
        most_running = max(most_running, counts[JobStatus.RUNNING])
        if counts[JobStatus.COMPLETED] == 10:
            break
        time.sleep(0.05)
    watcher.stop()
    assert store.count_by_status()[JobStatus.COMPLETED] == 10, operator.log_tail()
    assert watcher.error is None, watcher.error

    assert watcher.max_unfinished == 2  # the limit was reached and never exceeded
    assert most_running <= 2
    rows = sorted(store.list(limit=20), key=lambda r: r.created_at)
    # The first two start while the ten rows are still being committed (a row's created_at is its
    # transaction's start, so rows can become visible out of order); every Job after them waited
    # in the queue and must start oldest request first.
    expected = [str(r.id) for r in rows]
    assert sorted(watcher.created) == sorted(expected)
    queued = [job_id for job_id in watcher.created if job_id not in watcher.created[:2]]
    assert queued == [job_id for job_id in expected if job_id in queued]
    for name in names:
        status = (kube.get_indexing_request(namespace, name) or {}).get("status") or {}
        assert status.get("phase") == "Completed", (name, status)
