"""The operator under stress on a real control plane: killed mid-job, and many requests at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from codebase_operator.jobs_builder import JOB_ID_LABEL, MANAGED_SELECTOR
from codebase_operator.reflection import job_outcome
from database_faults import bring_database_back, pg_ctl
from devcluster import DevCluster, indexing_request, jobs_for, wait_for, wait_phase, wait_row
from sqlalchemy.engine import Engine

from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.settings import Settings

pytestmark = pytest.mark.kubernetes

RUN = "codebase-mcp.dev/test-run-duration"
REQUESTS = 50  # the load test: across five projects, with a limit of two


@pytest.mark.parametrize("job_finishes", ["while the operator is down", "after the restart"])
def test_an_operator_killed_mid_job_converges_after_restart(
    namespace: str, kube: Any, store: JobStore, start_operator: Any, job_finishes: str
) -> None:
    first = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request(
            "survivor",
            {"source": {"path": "/workspace/survivor"}},
            annotations={RUN: "6s" if job_finishes == "while the operator is down" else "12s"},
        ),
    )
    row = wait_row(store, namespace, "survivor", JobStatus.RUNNING, first)
    first.kill()  # SIGKILL while the pod runs

    def finished_job() -> dict[str, Any] | None:
        jobs = jobs_for(kube, namespace, row.id)
        return jobs[0] if jobs and job_outcome(jobs[0]) == "Complete" else None

    if job_finishes == "while the operator is down":
        wait_for(finished_job, timeout=30, message="the Job to complete while no operator runs")
        assert store.get(row.id).status is JobStatus.RUNNING  # nobody has reflected it yet
    else:
        assert finished_job() is None

    second = start_operator()
    if finished_job() is None:
        assert store.get(row.id).status is JobStatus.RUNNING  # adopted, not restarted or finished
    wait_for(lambda: store.get(row.id).status is JobStatus.COMPLETED, timeout=30, message=second.log_tail)
    wait_phase(kube, namespace, "survivor", "Completed")
    assert len(jobs_for(kube, namespace, row.id)) == 1
    assert len(store.list(limit=10)) == 1


def test_a_queue_left_by_a_killed_operator_is_resumed_once_after_restart(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    first = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1")
    kube.create_indexing_request(
        namespace,
        indexing_request("blocker", {"source": {"path": "/workspace/blocker"}}, annotations={RUN: "10m"}),
    )
    blocker = wait_row(store, namespace, "blocker", JobStatus.RUNNING, first)
    kube.create_indexing_request(
        namespace, indexing_request("queued", {"source": {"path": "/workspace/queued"}})
    )
    queued = wait_for(
        lambda: store.find_by_k8s_name(namespace=namespace, name="queued"), timeout=30, message=first.log_tail
    )
    wait_phase(kube, namespace, "queued", "Pending")
    assert not jobs_for(kube, namespace, queued.id)  # no free slot
    first.kill()
    # While no operator runs, the running request is deleted (its DELETED event is never seen).
    cluster.kubectl("delete", "ir", "blocker", "-n", namespace, "--timeout=20s")

    second = start_operator(MAX_CONCURRENT_INDEXING_JOBS="1")
    wait_for(lambda: store.get(blocker.id).status is JobStatus.CANCELLED, timeout=30, message=second.log_tail)
    wait_for(lambda: store.get(queued.id).status is JobStatus.COMPLETED, timeout=40, message=second.log_tail)
    assert len(jobs_for(kube, namespace, queued.id)) == 1
    wait_for(
        lambda: not jobs_for(kube, namespace, blocker.id),
        timeout=30,
        message="the deleted request's Job to be gone",
    )


@pytest.mark.timeout(180)
def test_updates_missed_while_the_database_is_away_land_once_it_is_back(
    namespace: str,
    kube: Any,
    store: JobStore,
    start_operator: Any,
    settings: Settings,
    engine: Engine,
) -> None:
    """Fault 3, operator side: the database stops while a pod runs; meanwhile the pod succeeds
    and another request is applied. Nothing is lost: when the database returns, the running job
    completes (not earlier, not twice) and the new request gets its row and its Job."""
    operator = start_operator()
    kube.create_indexing_request(
        namespace,
        indexing_request("before-outage", {"source": {"path": "/workspace/a"}}, annotations={RUN: "3s"}),
    )
    first = wait_row(store, namespace, "before-outage", JobStatus.RUNNING, operator)
    failed_before = _resync_errors(operator.metrics())
    try:
        pg_ctl(settings, "-w", "-m", "fast", "stop")
        kube.create_indexing_request(
            namespace, indexing_request("during-outage", {"source": {"path": "/workspace/b"}})
        )

        def first_job_complete() -> bool:
            jobs = jobs_for(kube, namespace, first.id)
            return bool(jobs) and job_outcome(jobs[0]) == "Complete"

        wait_for(first_job_complete, timeout=30, message="the Job to complete while the database is away")
        wait_for(
            lambda: _resync_errors(operator.metrics()) >= failed_before + 3,
            timeout=30,
            message="three resyncs failing against the missing database",
        )
        # Liveness stays up through the outage (before: /healthz failed after 120 s without a
        # resync, and the kubelet would have restarted the operator in a loop).
        assert operator.healthy(), operator.log_tail()
        pg_ctl(settings, "-w", "restart")
        back = time.monotonic()
    finally:
        bring_database_back(settings, engine)

    wait_for(lambda: store.get(first.id).status is JobStatus.COMPLETED, timeout=30, message=operator.log_tail)
    first_recovered = time.monotonic() - back
    second = wait_row(store, namespace, "during-outage", JobStatus.COMPLETED, operator, timeout=40)
    second_recovered = time.monotonic() - back
    print(
        f"\nfault 3 [operator]: after the database returned, the missed completion landed in "
        f"{first_recovered:.1f} s and the request applied during the outage completed in "
        f"{second_recovered:.1f} s"
    )
    for name in ("before-outage", "during-outage"):
        # The resource's status is patched after the row changes: wait for it, do not race it.
        wait_phase(kube, namespace, name, "Completed")
    for row in (first, second):
        assert len(jobs_for(kube, namespace, row.id)) == 1
    assert len(store.list(limit=10)) == 2
    final = store.get(first.id)
    assert final.started_at is not None and final.completed_at is not None
    assert final.started_at == first.started_at <= final.completed_at


def _resync_errors(metrics: str) -> float:
    prefix = "codebase_mcp_operator_resync_errors_total "
    return sum(float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix))


class JobWatcher(threading.Thread):
    """Follows the Jobs of a namespace through the API's watch stream (every change, in order) and
    records the most that were unfinished at once, and the order they were created in."""

    def __init__(self, cluster: DevCluster, namespace: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client, watch

        from mcp_server.runners.kube_api import load_configuration

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
            # The API server ends a watch after timeout_seconds; a slow run outlives one stream.
            while not self.stopped:
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
            self.resource_version = job.metadata.resource_version
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


@pytest.mark.timeout(300)
def test_fifty_requests_across_five_projects_never_run_more_than_two_jobs(
    cluster: DevCluster, namespace: str, kube: Any, store: JobStore, start_operator: Any
) -> None:
    operator = start_operator(MAX_CONCURRENT_INDEXING_JOBS="2")
    watcher = JobWatcher(cluster, namespace)
    watcher.start()
    names = [f"burst-{i:02d}" for i in range(REQUESTS)]
    started = time.monotonic()
    for i, name in enumerate(names):
        spec = {"projectId": f"load-{i % 5}", "source": {"path": f"/workspace/{name}"}}
        kube.create_indexing_request(namespace, indexing_request(name, spec, annotations={RUN: "500ms"}))

    most_running = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        counts = store.count_by_status()
        most_running = max(most_running, counts[JobStatus.RUNNING])
        if counts[JobStatus.COMPLETED] == REQUESTS:
            break
        time.sleep(0.05)
    watcher.stop()
    print(f"\nload [kubernetes]: {REQUESTS} requests completed in {time.monotonic() - started:.1f} s")
    assert store.count_by_status()[JobStatus.COMPLETED] == REQUESTS, operator.log_tail()
    assert watcher.error is None, watcher.error

    assert watcher.max_unfinished == 2  # the limit was reached and never exceeded
    assert most_running <= 2
    rows = sorted(store.list(limit=REQUESTS + 10), key=lambda r: r.created_at)
    assert len(rows) == REQUESTS
    assert {r.project_id for r in rows} == {f"load-{p}" for p in range(5)}
    # The first two start while the rows are still being committed (a row's created_at is its
    # transaction's start, so rows can become visible out of order); every Job after them waited
    # in the queue and must start oldest request first.
    expected = [str(r.id) for r in rows]
    assert sorted(watcher.created) == sorted(expected)
    queued = [job_id for job_id in watcher.created if job_id not in watcher.created[:2]]
    assert queued == [job_id for job_id in expected if job_id in queued]

    def phases() -> dict[str, str | None]:
        requests = {r["metadata"]["name"]: r for r in kube.list_indexing_requests(namespace)}
        return {name: (requests.get(name, {}).get("status") or {}).get("phase") for name in names}

    # Each resource's status is patched after its row changes: wait for the last ones to land.
    wait_for(
        lambda: set(phases().values()) == {"Completed"},
        timeout=30,
        message=lambda: f"every request to say Completed: {phases()}",
    )
