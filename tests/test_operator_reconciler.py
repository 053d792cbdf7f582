"""The operator's reconciliation logic against a fake Kubernetes API and the real job store.

The real control plane tests (tests/kubernetes/) prove the same behaviours end to end; these run in
a second and pin down the decisions: admission order and limit, restart safety, stuck pods,
deleted requests, invalid specs and refused adoptions.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from codebase_operator.jobs_builder import JOB_ID_LABEL, job_name
from codebase_operator.metrics import OperatorMetrics
from codebase_operator.reconciler import Reconciler, derived_job_id
from indexing import index_run

from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.settings import Settings
from mcp_server.runners.kube_api import API_VERSION, Conflict, ObjectRef

NS = "team-a"
_uids = itertools.count(1)


class FakeKube:
    """In-memory IndexingRequests, Jobs and pods with the KubeApi methods the Reconciler calls."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.events: list[tuple[str, str, str]] = []
        self.created: list[str] = []
        self.k8s_events: list[dict[str, Any]] = []  # what the Job controller records

    def add_request(
        self, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": API_VERSION,
            "kind": "IndexingRequest",
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": f"uid-{next(_uids)}",
                "generation": 1,
                "labels": labels or {},
            },
            "spec": spec,
        }
        self.requests[name] = body
        return copy.deepcopy(body)

    def get_indexing_request(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.requests.get(name)
        return copy.deepcopy(body) if body is not None else None

    def list_indexing_requests(self, namespace: str | None) -> list[dict[str, Any]]:
        return [copy.deepcopy(b) for b in self.requests.values()]

    def patch_indexing_request_status(self, namespace: str, name: str, status: Any) -> dict[str, Any]:
        current = self.requests[name].setdefault("status", {})
        for key, value in status.items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = copy.deepcopy(value)
        return copy.deepcopy(self.requests[name])

    def create_job(self, namespace: str, body: Any) -> dict[str, Any]:
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise Conflict(f"jobs.batch {name!r} already exists", status=409)
        self.jobs[name] = copy.deepcopy(dict(body))
        self.created.append(name)
        return copy.deepcopy(dict(body))

    def list_jobs(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in label_selector.split(",") if term)
        return [
            copy.deepcopy(j)
            for j in self.jobs.values()
            if wanted.items() <= (j["metadata"].get("labels") or {}).items()
        ]

    def patch_job(self, namespace: str, name: str, patch: Any) -> dict[str, Any]:
        self.jobs[name]["spec"].update(copy.deepcopy(patch["spec"]))
        return copy.deepcopy(self.jobs[name])

    def delete_job(self, namespace: str, name: str) -> bool:
        return self.jobs.pop(name, None) is not None

    def list_events(self, namespace: str, *, field_selector: str) -> list[dict[str, Any]]:
        wanted = dict(term.split("=", 1) for term in field_selector.split(","))
        found = []
        for event in self.k8s_events:
            fields = {
                "involvedObject.kind": event["involvedObject"]["kind"],
                "involvedObject.name": event["involvedObject"]["name"],
                "reason": event["reason"],
            }
            if all(fields.get(k) == v for k, v in wanted.items()):
                found.append(copy.deepcopy(event))
        return found

    def list_pods(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]:
        key, _, value = label_selector.partition("=")
        return [copy.deepcopy(p) for p in self.pods if p["metadata"]["labels"].get(key) == value]

    def post_event(
        self, regarding: ObjectRef, *, reason: str, message: str, warning: bool = False, component: str = ""
    ) -> None:
        self.events.append((regarding.name, reason, message))

    # --- playing the job controller -------------------------------------------------------------

    def failed_create(self, name: str, message: str) -> None:
        self.k8s_events.append(
            {
                "involvedObject": {"kind": "Job", "name": name},
                "reason": "FailedCreate",
                "message": message,
                "lastTimestamp": "2026-01-01T00:00:00Z",
            }
        )

    def finish(self, name: str, outcome: str, reason: str = "") -> dict[str, Any]:
        self.jobs[name]["status"] = {"conditions": [{"type": outcome, "status": "True", "reason": reason}]}
        return copy.deepcopy(self.jobs[name])

    def add_pod(
        self, job: str, phase: str, *, age_seconds: float = 0, waiting: str | None = None
    ) -> dict[str, Any]:
        labels = dict(self.jobs[job]["spec"]["template"]["metadata"]["labels"])
        created = datetime.now(UTC) - timedelta(seconds=age_seconds)
        state = {"waiting": {"reason": waiting, "message": "back-off pulling image"}} if waiting else {}
        pod = {
            "metadata": {
                "name": f"{job}-pod",
                "namespace": NS,
                "labels": labels,
                "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
            "status": {"phase": phase, "containerStatuses": [{"name": "indexer", "state": state}]},
        }
        self.pods.append(pod)
        return copy.deepcopy(pod)


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def store(clean_db: Any) -> JobStore:
    return JobStore(clean_db)


def make_reconciler(
    settings: Settings, store: JobStore, kube: FakeKube, **groups: dict[str, Any]
) -> Reconciler:
    groups = {**groups, "kubernetes": {"workspace_pvc_name": "workspace", **groups.get("kubernetes", {})}}
    tuned = settings.replace(**{"jobs": {"max_concurrent": 2}, **groups})
    return Reconciler(settings=tuned, jobs=store, kube=kube, metrics=OperatorMetrics(), namespace=NS)


def path_spec(name: str, **extra: Any) -> dict[str, Any]:
    return {"projectId": "default", "source": {"path": f"/workspace/{name}"}, **extra}


def admit_all(reconciler: Reconciler, kube: FakeKube, names: list[str]) -> list[uuid.UUID]:
    ids = []
    for name in names:
        body = kube.add_request(name, path_spec(name))
        reconciler.admit(body)
        ids.append(uuid.UUID(kube.requests[name]["status"]["jobId"]))
    return ids


def test_requests_are_admitted_oldest_first_and_never_beyond_the_limit(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    ids = admit_all(reconciler, kube, ["a", "b", "c", "d"])
    assert [store.get(i).status for i in ids] == [JobStatus.PENDING] * 4
    assert kube.requests["c"]["status"]["phase"] == "Pending"

    reconciler.resync()
    assert kube.created == [job_name(ids[0]), job_name(ids[1])]
    assert kube.requests["a"]["status"]["jobName"] == job_name(ids[0])
    assert "jobName" not in kube.requests["c"]["status"]

    reconciler.job_changed(kube.finish(job_name(ids[0]), "Complete"))
    assert store.get(ids[0]).status is JobStatus.COMPLETED
    assert kube.requests["a"]["status"]["phase"] == "Completed"
    reconciler.resync()
    assert kube.created[2:] == [job_name(ids[2])]  # one slot freed, the oldest waiting request took it


def test_a_restarted_operator_converges_without_duplicating_jobs(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    first = make_reconciler(settings, store, kube)
    (job_id,) = admit_all(first, kube, ["a"])
    first.resync()
    kube.finish(job_name(job_id), "Complete")  # finishes while no operator runs

    second = make_reconciler(settings, store, kube)
    second.admit(kube.get_indexing_request(NS, "a"))  # kopf's resume handler
    second.resync()
    second.resync()
    assert kube.created == [job_name(job_id)]
    assert store.get(job_id).status is JobStatus.COMPLETED
    assert kube.requests["a"]["status"]["phase"] == "Completed"


def test_a_request_without_job_id_gets_a_stable_derived_id(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    body = kube.add_request("a", path_spec("a"))
    reconciler.admit(body)
    reconciler.admit(kube.get_indexing_request(NS, "a"))
    expected = derived_job_id(ObjectRef.of(body))
    assert kube.requests["a"]["status"]["jobId"] == str(expected)
    assert len(store.list(limit=10)) == 1


def test_a_pod_stuck_pending_fails_the_job_and_deletes_it(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube, kubernetes={"pod_pending_timeout_seconds": 30})
    (job_id,) = admit_all(reconciler, kube, ["a"])
    reconciler.resync()
    kube.add_pod(job_name(job_id), "Pending", age_seconds=5, waiting="ImagePullBackOff")
    reconciler.resync()
    assert store.get(job_id).status is JobStatus.PENDING  # not yet

    kube.pods[0]["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    reconciler.resync()
    failed = store.get(job_id)
    assert failed.status is JobStatus.FAILED
    assert "ImagePullBackOff" in (failed.error_message or "") and "stayed Pending" in (
        failed.error_message or ""
    )
    assert job_name(job_id) not in kube.jobs
    assert kube.requests["a"]["status"]["phase"] == "Failed"


def test_running_pods_mark_the_row_running_and_failures_carry_the_exit_code(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    (job_id,) = admit_all(reconciler, kube, ["a"])
    reconciler.resync()
    pod = kube.add_pod(job_name(job_id), "Running")
    reconciler.pod_changed(pod)
    assert store.get(job_id).status is JobStatus.RUNNING
    assert kube.requests["a"]["status"]["phase"] == "Running"

    kube.pods[0]["status"] = {
        "phase": "Failed",
        "containerStatuses": [
            {
                "name": "indexer",
                "state": {"terminated": {"exitCode": 2, "message": "repo_path does not exist"}},
            }
        ],
    }
    reconciler.job_changed(kube.finish(job_name(job_id), "Failed", "PodFailurePolicy"))
    row = store.get(job_id)
    assert row.status is JobStatus.FAILED
    assert row.error_message == (
        "the indexer refused its input (exit code 2): repo_path does not exist (PodFailurePolicy)"
    )
    reasons = [reason for name, reason, _ in kube.events if name == "a"]
    assert reasons == ["Accepted", "JobCreated", "Running", "Failed"]


def test_a_deleted_request_cancels_its_row_and_deletes_its_job(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    first, second = admit_all(reconciler, kube, ["a", "b"])
    reconciler.resync()
    reconciler.request_deleted(kube.requests.pop("a"))
    assert store.get(first).status is JobStatus.CANCELLED
    assert job_name(first) not in kube.jobs

    kube.requests.pop("b")  # deleted while the operator was down: the resync notices
    reconciler.resync()
    assert store.get(second).status is JobStatus.CANCELLED
    assert "was deleted" in (store.get(second).error_message or "")
    assert kube.jobs == {}


def test_spec_status_cancelled_stops_the_run_and_keeps_the_request_with_phase_cancelled(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    """Before: the only way to cancel was deleting the request, so nothing showed it was cancelled."""
    reconciler = make_reconciler(settings, store, kube)
    running, queued = admit_all(reconciler, kube, ["a", "b"])
    reconciler.resync()
    assert job_name(running) in kube.jobs
    kube.requests["a"]["spec"]["status"] = "Cancelled"  # kubectl patch, or the MCP server's cancel_job
    reconciler.admit(kube.requests["a"])
    assert store.get(running).status is JobStatus.CANCELLED
    assert job_name(running) not in kube.jobs
    assert kube.requests["a"]["status"]["phase"] == "Cancelled"
    conditions = {c["type"]: c for c in kube.requests["a"]["status"]["conditions"]}
    assert (conditions["Complete"]["status"], conditions["Failed"]["status"]) == ("False", "False")
    assert conditions["Finished"]["reason"] == "Cancelled"

    # Set while no operator led: the resync cancels it instead of creating its Job.
    kube.requests["b"]["spec"]["status"] = "Cancelled"
    reconciler.resync()
    assert store.get(queued).status is JobStatus.CANCELLED and kube.jobs == {}
    assert "spec.status" in (store.get(queued).error_message or "")


def test_an_invalid_spec_fails_the_request_and_the_row_it_names(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    job_id = uuid.uuid4()
    body = kube.add_request("bad", {"source": {"path": "relative"}, "jobId": str(job_id)})
    reconciler.admit(body)
    assert kube.requests["bad"]["status"]["phase"] == "Failed"
    assert "relative" in kube.requests["bad"]["status"]["message"]
    row = store.get(job_id)
    assert row.status is JobStatus.FAILED and "invalid IndexingRequest team-a/bad" in (
        row.error_message or ""
    )
    reconciler.resync()
    assert kube.created == []


def test_a_job_id_of_another_project_is_not_adopted(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    other = store.create(repo_path="/workspace/a", project_id="other")
    body = kube.add_request("a", path_spec("a", jobId=str(other.id)))
    reconciler.admit(body)
    status = kube.requests["a"]["status"]
    assert status["phase"] == "Failed" and "project 'other'" in status["message"]
    assert store.get(other.id).status is JobStatus.PENDING  # someone else's row is left alone
    reconciler.resync()
    assert kube.created == []

    # ... and deleting the refused request touches neither that row nor a Job of that id.
    kube.jobs[job_name(other.id)] = {"metadata": {"name": job_name(other.id)}}
    reconciler.request_deleted(kube.requests.pop("a"))
    assert store.get(other.id).status is JobStatus.PENDING
    assert job_name(other.id) in kube.jobs


def test_the_mcp_servers_row_is_adopted_by_its_job_id(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    row = store.create(repo_path="/workspace/a", project_id="default")
    body = kube.add_request("index-x", path_spec("a", jobId=str(row.id)))
    reconciler.admit(body)
    adopted = store.get(row.id)
    assert (adopted.k8s_namespace, adopted.k8s_name) == (NS, "index-x")
    reconciler.resync()
    assert kube.created == [job_name(row.id)]
    assert kube.jobs[job_name(row.id)]["metadata"]["labels"][JOB_ID_LABEL] == str(row.id)


def test_a_succeeded_pod_completes_the_row_before_the_job_controller_does(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    (job_id,) = admit_all(reconciler, kube, ["a"])
    reconciler.resync()
    kube.add_pod(job_name(job_id), "Succeeded")
    kube.pods[0]["status"]["containerStatuses"][0]["state"] = {"terminated": {"exitCode": 0}}
    reconciler.pod_changed(kube.pods[0])
    assert store.get(job_id).status is JobStatus.COMPLETED
    assert kube.requests["a"]["status"]["phase"] == "Completed"
    reconciler.job_changed(kube.finish(job_name(job_id), "Complete"))  # later: nothing changes
    assert [r for n, r, _ in kube.events if n == "a"].count("Completed") == 1


def test_a_finished_job_gets_its_ttl_only_once_its_outcome_is_recorded(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube, kubernetes={"job_ttl_seconds_after_finished": 77})
    (job_id,) = admit_all(reconciler, kube, ["a"])
    reconciler.resync()
    name = job_name(job_id)
    assert "ttlSecondsAfterFinished" not in kube.jobs[name]["spec"]  # nothing may delete it yet

    kube.finish(name, "Complete")  # while no event reaches the operator (it is down)
    assert "ttlSecondsAfterFinished" not in kube.jobs[name]["spec"]
    reconciler.resync()
    assert store.get(job_id).status is JobStatus.COMPLETED
    assert kube.jobs[name]["spec"]["ttlSecondsAfterFinished"] == 77


def test_a_deleted_job_fails_its_row_with_what_happened(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    (job_id,) = admit_all(reconciler, kube, ["a"])
    reconciler.resync()
    kube.jobs.clear()  # deleted by someone while the operator was down
    reconciler.resync()
    row = store.get(job_id)
    assert row.status is JobStatus.FAILED
    assert "was deleted before its outcome was recorded" in (row.error_message or "")


def test_a_job_that_cannot_create_its_pod_says_why_then_fails_and_frees_its_slot(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube, kubernetes={"pod_pending_timeout_seconds": 30})
    ids = admit_all(reconciler, kube, ["a", "b", "c"])
    reconciler.resync()
    name = job_name(ids[0])
    quota = 'pods "x" is forbidden: exceeded quota: none, requested: pods=1, used: pods=0, limited: pods=0'
    kube.failed_create(name, quota)
    reconciler.resync()
    status = kube.requests["a"]["status"]
    assert (
        status["phase"] == "Pending"
        and "FailedCreate" in status["message"]
        and "exceeded quota" in status["message"]
    )
    assert store.get(ids[0]).status is JobStatus.PENDING  # not yet
    # Our status patch comes back as an event of the request; that handler knows nothing of the
    # FailedCreate, and must not put the plain "waiting for its pod" message back (a flicker
    # that also reverts the status every resync).
    events_before = list(kube.events)
    reconciler.admit(kube.get_indexing_request(NS, "a"))
    assert "FailedCreate" in kube.requests["a"]["status"]["message"]
    assert kube.events == events_before

    kube.jobs[name]["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    reconciler.resync()
    failed = store.get(ids[0])
    assert failed.status is JobStatus.FAILED
    assert "could not create its pod" in (failed.error_message or "") and "exceeded quota" in (
        failed.error_message or ""
    )
    assert name not in kube.jobs
    reconciler.resync()
    assert job_name(ids[2]) in kube.created  # the slot went to the next request


def test_two_requests_for_one_repository_and_project_never_run_at_once(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    first = kube.add_request("first", path_spec("same"))
    reconciler.admit(first)
    second = kube.add_request("second", path_spec("same"))
    reconciler.admit(second)
    other = kube.add_request("other-project", {**path_spec("same"), "projectId": "other"})
    reconciler.admit(other)
    ids = [uuid.UUID(kube.requests[n]["status"]["jobId"]) for n in ("first", "second", "other-project")]
    reconciler.resync()
    assert kube.created == [job_name(ids[0]), job_name(ids[2])]  # a free slot is not enough
    assert f"job {ids[0]} of the same repository and project" in kube.requests["second"]["status"]["message"]

    reconciler.job_changed(kube.finish(job_name(ids[0]), "Complete"))
    reconciler.resync()
    assert kube.created[-1] == job_name(ids[1])


def test_a_standby_replica_creates_no_job(settings: Settings, store: JobStore, kube: FakeKube) -> None:
    class Standby:
        def is_leader(self) -> bool:
            return False

    tuned = settings.replace(jobs={"max_concurrent": 2})
    standby = Reconciler(
        settings=tuned, jobs=store, kube=kube, metrics=OperatorMetrics(), namespace=NS, leader=Standby()
    )
    make_reconciler(settings, store, kube).admit(kube.add_request("a", path_spec("a")))
    standby.loop.resync()  # even if asked directly, it does not create Jobs
    assert kube.created == []
    assert standby.health()["leader"] is False


def test_a_refused_job_create_is_told_on_the_request_and_does_not_stop_the_others(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    from mcp_server.runners.kube_api import KubernetesError

    reconciler = make_reconciler(settings, store, kube)
    ids = admit_all(reconciler, kube, ["a", "b"])
    create = kube.create_job

    def refuse_a(namespace: str, body: Any) -> dict[str, Any]:
        if body["metadata"]["name"] == job_name(ids[0]):
            raise KubernetesError(
                "create Job failed (403 Forbidden): cannot set blockOwnerDeletion", status=403
            )
        return create(namespace, body)

    kube.create_job = refuse_a  # type: ignore[method-assign]
    reconciler.resync()
    assert "403 Forbidden" in kube.requests["a"]["status"]["message"]
    assert kube.created == [job_name(ids[1])]
    reconciler.resync()
    assert "403 Forbidden" in kube.requests["a"]["status"]["message"]  # stays, does not flap


def test_kueue_jobs_are_created_suspended_and_do_not_use_the_operators_slots(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    own = admit_all(reconciler, kube, ["a", "b", "c"])
    queued = []
    for name in ["q1", "q2", "q3"]:
        reconciler.admit(kube.add_request(name, path_spec(name, queueName="indexing")))
        queued.append(uuid.UUID(kube.requests[name]["status"]["jobId"]))
    reconciler.resync()
    # Every Kueue request gets its (suspended) Job at once; our own limit of 2 applies to the rest.
    assert set(kube.created) == {job_name(i) for i in [*own[:2], *queued]}
    for i in queued:
        assert kube.jobs[job_name(i)]["spec"]["suspend"] is True
    message = kube.requests["q1"]["status"]["message"]
    assert message.startswith("queued by Kueue") and "LocalQueue indexing" in message
    assert kube.requests["q1"]["status"]["jobName"] == job_name(queued[0])
    assert "queued by Kueue" not in kube.requests["a"]["status"]["message"]

    reconciler.resync()  # suspended Jobs hold no slot: still nothing for "c"
    assert job_name(own[2]) not in kube.created
    assert kube.requests["q2"]["status"]["message"].startswith("queued by Kueue")


def test_a_kueue_job_still_holds_its_repository(settings: Settings, store: JobStore, kube: FakeKube) -> None:
    reconciler = make_reconciler(settings, store, kube)
    reconciler.admit(kube.add_request("queued", path_spec("same", queueName="indexing")))
    reconciler.admit(kube.add_request("later", path_spec("same")))
    first = uuid.UUID(kube.requests["queued"]["status"]["jobId"])
    reconciler.resync()
    assert kube.created == [job_name(first)]
    assert f"job {first} of the same repository" in kube.requests["later"]["status"]["message"]


def _run_shards(engine: Any, row: Any, root: Any) -> None:
    """What the Indexed Job's pods do: each shard indexes its part, the last one publishes."""
    from mcp_server.core.shards import Shard

    for index in range(row.shards):
        index_run(
            engine,
            root,
            project_id=row.project_id,
            repository_key=row.repo_path,
            job_id=row.id,
            shard=Shard(index, row.shards),
        ).run()


def test_a_sharded_request_is_complete_when_its_indexed_job_is_and_a_shard_published(
    settings: Settings, store: JobStore, kube: FakeKube, clean_db: Any, make_repo: Any
) -> None:
    root = make_repo({f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(12)}, name="mono")
    reconciler = make_reconciler(settings, store, kube)
    body = kube.add_request("mono", path_spec("mono", shards=3))
    reconciler.admit(body)
    job_id = uuid.UUID(kube.requests["mono"]["status"]["jobId"])
    assert store.get(job_id).shards == 3
    reconciler.resync()
    job = kube.jobs[job_name(job_id)]
    assert (job["spec"]["completionMode"], job["spec"]["completions"]) == ("Indexed", 3)

    kube.add_pod(job_name(job_id), "Running")
    reconciler.pod_changed(kube.pods[0])
    assert store.get(job_id).status is JobStatus.RUNNING
    _run_shards(clean_db, store.get(job_id), root)
    # One shard's pod succeeding ends only its part: the row waits for the Job.
    kube.pods[0]["status"] = {
        "phase": "Succeeded",
        "containerStatuses": [{"name": "indexer", "state": {"terminated": {"exitCode": 0}}}],
    }
    reconciler.pod_changed(kube.pods[0])
    assert store.get(job_id).status is JobStatus.RUNNING
    reconciler.resync()
    shards = kube.requests["mono"]["status"]["shards"]
    assert [(s["index"], s["state"]) for s in shards] == [(0, "Done"), (1, "Done"), (2, "Done")]
    assert sum(s["filesIndexed"] for s in shards) == 12

    reconciler.job_changed(kube.finish(job_name(job_id), "Complete"))
    assert store.get(job_id).status is JobStatus.COMPLETED
    assert kube.requests["mono"]["status"]["phase"] == "Completed"


def test_a_sharded_job_complete_without_a_published_index_fails(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    reconciler.admit(kube.add_request("broken", path_spec("broken", shards=2)))
    job_id = uuid.UUID(kube.requests["broken"]["status"]["jobId"])
    reconciler.resync()
    reconciler.job_changed(kube.finish(job_name(job_id), "Complete"))
    row = store.get(job_id)
    assert row.status is JobStatus.FAILED
    assert row.error_message == "all 2 shards ended but none published the index"


def test_a_job_row_of_another_shard_count_is_not_adopted(
    settings: Settings, store: JobStore, kube: FakeKube
) -> None:
    reconciler = make_reconciler(settings, store, kube)
    row = store.create(repo_path="/workspace/a", project_id="default", shards=4)
    reconciler.admit(kube.add_request("index-y", path_spec("a", jobId=str(row.id), shards=2)))
    status = kube.requests["index-y"]["status"]
    assert status["phase"] == "Failed"
    assert "names a job of 4 shards, not of spec.shards 2" in status["message"]
    assert kube.created == []


# --- reading from kopf's indices (cluster_view) ----------------------------------------------------


class CountingKube(FakeKube):
    """Counts the LIST requests the resync's reading would send."""

    def __init__(self) -> None:
        super().__init__()
        self.lists: list[str] = []

    def list_indexing_requests(self, namespace: str | None) -> list[dict[str, Any]]:
        self.lists.append("indexingrequests")
        return super().list_indexing_requests(namespace)

    def list_jobs(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]:
        self.lists.append(f"jobs {label_selector}")
        return super().list_jobs(namespace, label_selector=label_selector)

    def list_pods(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]:
        self.lists.append("pods")
        return super().list_pods(namespace, label_selector=label_selector)


class Indices:
    """kopf's indices as the view reads them (key -> store of values), filled by the test, which
    decides how far they lag the API server; read on a real event loop in its own thread, as
    kopf's is."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.jobs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def catch_up(self, kube: FakeKube) -> None:
        self.requests = {(NS, n): [copy.deepcopy(b)] for n, b in kube.requests.items()}
        self.jobs = {(NS, n): [copy.deepcopy(j)] for n, j in kube.jobs.items()}

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


@pytest.fixture
def indices() -> Iterator[Indices]:
    made = Indices()
    yield made
    made.close()


def attach(reconciler: Reconciler, indices: Indices) -> None:
    # The dicts are replaced by catch_up: hand the view live proxies to whatever is current.
    class Live(dict[Any, Any]):
        def __init__(self, name: str) -> None:
            self.name = name

        def __iter__(self) -> Iterator[Any]:
            return iter(getattr(indices, self.name))

        def __getitem__(self, item: Any) -> Any:
            return getattr(indices, self.name)[item]

    reconciler.view.attach(indices.loop, requests=Live("requests"), jobs=Live("jobs"), pods=Live("pods"))
    reconciler.view.mark_complete()


def test_the_resync_reads_kopfs_indices_instead_of_listing_every_period(
    settings: Settings, store: JobStore, indices: Indices
) -> None:
    kube = CountingKube()
    reconciler = make_reconciler(settings, store, kube)
    ids = admit_all(reconciler, kube, ["a", "b"])
    reconciler.resync()  # not attached yet: it lists, as before kopf has indexed anything
    assert len(kube.lists) == 3
    attach(reconciler, indices)
    indices.catch_up(kube)
    kube.lists.clear()
    for _ in range(5):
        reconciler.resync()
    assert kube.lists == []
    assert kube.created == [job_name(ids[0]), job_name(ids[1])]
    assert reconciler.metrics.resync_reads.labels(source="index")._value.get() == 5


def test_a_job_the_index_does_not_show_yet_is_not_created_twice_counted_out_or_called_deleted(
    settings: Settings, store: JobStore, kube: FakeKube, indices: Indices
) -> None:
    reconciler = make_reconciler(settings, store, kube)  # at most 2 at once
    ids = admit_all(reconciler, kube, ["a", "b", "c"])
    attach(reconciler, indices)
    indices.catch_up(kube)  # the requests, with their status, but no Job yet
    reconciler.resync()
    assert kube.created == [job_name(ids[0]), job_name(ids[1])]
    store.mark_running(ids[0])  # its pod started, and the indexer said so, before the index knew
    for _ in range(3):  # the watch events of the new Jobs are late
        indices.requests = {(NS, n): [copy.deepcopy(b)] for n, b in kube.requests.items()}
        reconciler.resync()
    assert kube.created == [job_name(ids[0]), job_name(ids[1])]  # no third: the limit holds
    assert [store.get(i).status for i in ids] == [  # none "deleted"
        JobStatus.RUNNING,
        JobStatus.PENDING,
        JobStatus.PENDING,
    ]

    # A Job that the API server has but the index never showed (another replica created it):
    # asked before being called deleted.
    indices.catch_up(kube)
    reconciler.view._created.clear()
    del indices.jobs[(NS, job_name(ids[0]))]
    reconciler.resync()
    assert store.get(ids[0]).status is JobStatus.RUNNING
    # Really gone from the API server too: now it is.
    del kube.jobs[job_name(ids[0])]
    reconciler.resync()
    row = store.get(ids[0])
    assert row.status is JobStatus.FAILED and "was deleted before its outcome" in (row.error_message or "")


def test_a_job_the_resync_deleted_frees_its_slot_before_the_index_drops_it(
    settings: Settings, store: JobStore, kube: FakeKube, indices: Indices
) -> None:
    reconciler = make_reconciler(settings, store, kube, jobs={"max_concurrent": 1})
    ids = admit_all(reconciler, kube, ["a", "b"])
    attach(reconciler, indices)
    indices.catch_up(kube)
    reconciler.resync()
    assert kube.created == [job_name(ids[0])]
    indices.catch_up(kube)
    kube.requests.pop("a")
    reconciler.request_deleted(copy.deepcopy(indices.requests[(NS, "a")][0]))  # deletes its Job
    assert job_name(ids[0]) not in kube.jobs
    indices.requests.pop((NS, "a"))  # the index still has the Job
    reconciler.resync()
    assert kube.created == [job_name(ids[0]), job_name(ids[1])]
