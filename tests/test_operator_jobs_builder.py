"""The Job manifest the operator creates for an indexing job (a pure function: no cluster)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from codebase_operator.jobs_builder import (
    CONTAINER_NAME,
    JOB_ID_LABEL,
    KUEUE_QUEUE_LABEL,
    MANAGED_SELECTOR,
    build_job,
    is_suspended,
    job_name,
    passthrough_test_hooks,
    queued_by_kueue,
)
from codebase_operator.spec import parse_spec
from hypothesis import given
from hypothesis import strategies as st

from mcp_server.core.errors import InvalidInput
from mcp_server.core.settings import Settings, load_settings
from mcp_server.runners.kube_api import API_VERSION, ObjectRef

REQUEST = ObjectRef(
    api_version=API_VERSION,
    kind="IndexingRequest",
    namespace="team-a",
    name="myapp",
    uid="0b5e9d3c-1111-2222-3333-444455556666",
)
JOB_ID = uuid.UUID("3f2a9c1e-7b4d-4e8a-9c0f-123456789abc")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def settings(**overrides: object) -> Settings:
    return load_settings(overrides=overrides)


def manifest(spec: dict[str, object] | None = None, **overrides: object) -> dict:  # type: ignore[type-arg]
    parsed = parse_spec(
        spec or {"projectId": "web", "source": {"path": "/workspace/myapp"}}, workspace_root="/workspace"
    )
    return build_job(request=REQUEST, spec=parsed, job_id=JOB_ID, settings=settings(**overrides))


def pod_spec(job: dict) -> dict:  # type: ignore[type-arg]
    return job["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def container(job: dict) -> dict:  # type: ignore[type-arg]
    return pod_spec(job)["containers"][0]  # type: ignore[no-any-return]


@given(st.uuids())
def test_job_name_is_deterministic_short_and_a_dns_label(job_id: uuid.UUID) -> None:
    name = job_name(job_id)
    assert name == job_name(uuid.UUID(str(job_id)))
    assert name.startswith(f"cbm-index-{job_id.hex[:8]}-")
    assert len(name) <= 63 and DNS_LABEL.fullmatch(name)


def test_job_runs_the_indexer_entrypoint_for_its_job_id() -> None:
    job = manifest()
    assert job["metadata"]["name"] == job_name(JOB_ID)
    assert container(job)["name"] == CONTAINER_NAME
    assert container(job)["command"] == ["codebase-mcp", "indexer", "run", "--job-id", str(JOB_ID)]
    assert container(job)["terminationMessagePath"] == "/dev/termination-log"


def test_job_is_owned_by_its_indexing_request() -> None:
    (owner,) = manifest()["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": API_VERSION,
        "kind": "IndexingRequest",
        "name": "myapp",
        "uid": REQUEST.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def test_deadline_is_the_requests_timeout_or_the_configured_default() -> None:
    spec = {"source": {"path": "/workspace/a"}, "timeoutSeconds": 900}
    assert manifest(spec)["spec"]["activeDeadlineSeconds"] == 900
    job = manifest(INDEXING_JOB_TIMEOUT_SECONDS=1234, JOB_TTL_SECONDS_AFTER_FINISHED=60)
    assert job["spec"]["activeDeadlineSeconds"] == 1234
    # The TTL is set only once the outcome is recorded (tests/test_operator_reconciler.py).
    assert "ttlSecondsAfterFinished" not in job["spec"]
    assert job["spec"]["backoffLimit"] == 0


def test_indexer_exit_codes_fail_the_job_and_disruptions_are_ignored() -> None:
    rules = manifest()["spec"]["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": CONTAINER_NAME, "operator": "In", "values": [1, 2, 3]},
    }
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert pod_spec(manifest())["restartPolicy"] == "Never"  # required by podFailurePolicy


def test_pod_meets_the_restricted_pod_security_profile() -> None:
    job = manifest()
    pod = pod_spec(job)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container(job)["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "tmp", "mountPath": "/tmp"} in container(job)["volumeMounts"]
    assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])


def test_database_url_comes_from_a_secret_and_never_appears_in_the_manifest() -> None:
    secret_url = "postgresql://indexer:s3cret-password@db:5432/codebase"
    job = manifest(
        DATABASE_URL=secret_url,
        DATABASE_URL_SECRET_NAME="pg",
        DATABASE_URL_SECRET_KEY="dsn",
        EMBEDDING_API_KEY="sk-never-inline",
    )
    env = {e["name"]: e for e in container(job)["env"]}
    assert env["DATABASE_URL"] == {
        "name": "DATABASE_URL",
        "valueFrom": {"secretKeyRef": {"name": "pg", "key": "dsn"}},
    }
    text = json.dumps(job)
    assert "s3cret-password" not in text and "sk-never-inline" not in text
    assert "EMBEDDING_API_KEY" not in env


def test_embedding_settings_follow_the_operator_so_index_and_search_agree() -> None:
    env = {
        e["name"]: e.get("value")
        for e in container(
            manifest(
                EMBEDDING_BACKEND="ollama",
                EMBEDDING_MODEL="nomic-embed-text",
                EMBEDDING_URL="http://ollama:11434",
            )
        )["env"]
    }
    assert env["EMBEDDING_BACKEND"] == "ollama"
    assert env["EMBEDDING_MODEL"] == "nomic-embed-text"
    assert env["EMBEDDING_URL"] == "http://ollama:11434"


def test_optional_env_secret_is_loaded_with_env_from() -> None:
    assert "envFrom" not in container(manifest())
    assert container(manifest(INDEXER_ENV_SECRET_NAME="indexer-env"))["envFrom"] == [
        {"secretRef": {"name": "indexer-env"}}
    ]


def test_workspace_volume_is_mounted_read_only_for_path_sources_only() -> None:
    job = manifest(WORKSPACE_PVC_NAME="workspace", WORKSPACE_MOUNT_PATH="/workspace")
    assert {"name": "workspace", "mountPath": "/workspace", "readOnly": True} in container(job)[
        "volumeMounts"
    ]
    (volume,) = [v for v in pod_spec(job)["volumes"] if v["name"] == "workspace"]
    assert volume["persistentVolumeClaim"] == {"claimName": "workspace", "readOnly": True}
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert env["CODEBASE_ALLOWED_ROOTS"] == "/workspace"

    git = manifest({"source": {"git": {"url": "file:///srv/repo.git"}}}, WORKSPACE_PVC_NAME="workspace")
    assert all(v["name"] != "workspace" for v in pod_spec(git)["volumes"])
    assert len(manifest()["spec"]["template"]["spec"]["volumes"]) == 1  # no PVC configured: /tmp only


def test_image_resources_and_service_account_come_from_settings() -> None:
    job = manifest(
        INDEXER_IMAGE="registry.local/codebase-mcp:1.2.3",
        INDEXER_IMAGE_PULL_POLICY="Always",
        INDEXER_CPU_REQUEST="500m",
        INDEXER_CPU_LIMIT="4",
        INDEXER_MEMORY_REQUEST="1Gi",
        INDEXER_MEMORY_LIMIT="3Gi",
        INDEXER_SERVICE_ACCOUNT="indexer",
    )
    assert container(job)["image"] == "registry.local/codebase-mcp:1.2.3"
    assert container(job)["imagePullPolicy"] == "Always"
    assert container(job)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "4", "memory": "3Gi"},
    }
    assert pod_spec(job)["serviceAccountName"] == "indexer"


def test_job_and_pod_carry_the_labels_the_operator_watches() -> None:
    job = manifest()
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[JOB_ID_LABEL] == str(JOB_ID)
        assert labels["codebase-mcp.dev/project"] == "web"
        assert f"app.kubernetes.io/managed-by={labels['app.kubernetes.io/managed-by']}" == MANAGED_SELECTOR
    assert job["spec"]["template"]["metadata"]["annotations"]["codebase-mcp.dev/request"] == "myapp"


def test_test_hooks_are_copied_to_the_pod_only_when_enabled() -> None:
    labels = {"codebase-mcp.dev/test-fail-exit-code": "1", "codebase-mcp.dev/test-job-id": "hijack"}
    annotations = {"codebase-mcp.dev/test-run-duration": "5s", "unrelated": "x"}
    parsed = parse_spec({"source": {"path": "/workspace/a"}}, workspace_root="/workspace")

    def pod_meta(enabled: bool) -> dict:  # type: ignore[type-arg]
        job = build_job(
            request=REQUEST,
            spec=parsed,
            job_id=JOB_ID,
            settings=settings(),
            test_hooks=enabled,
            request_labels=labels,
            request_annotations=annotations,
        )
        return job["spec"]["template"]["metadata"]  # type: ignore[no-any-return]

    enabled = pod_meta(True)
    assert enabled["labels"]["codebase-mcp.dev/fail-exit-code"] == "1"
    assert enabled["annotations"]["codebase-mcp.dev/run-duration"] == "5s"
    assert enabled["labels"][JOB_ID_LABEL] == str(JOB_ID)  # not on the allowlist: never overridden
    assert "unrelated" not in enabled["annotations"]
    disabled = pod_meta(False)
    assert "codebase-mcp.dev/fail-exit-code" not in disabled["labels"]
    assert "codebase-mcp.dev/run-duration" not in disabled["annotations"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"codebase-mcp.dev/test-stuck-pending": "ImagePullBackOff"},
            {"codebase-mcp.dev/stuck-pending": "ImagePullBackOff"},
        ),
        ({"codebase-mcp.dev/stuck-pending": "true"}, {}),  # only the test- prefixed form is copied
        ({"codebase-mcp.dev/test-anything-else": "1"}, {}),
    ],
)
def test_only_allowlisted_test_hooks_pass_through(labels: dict[str, str], expected: dict[str, str]) -> None:
    assert passthrough_test_hooks(labels, None)[0] == expected


def test_gpu_node_selector_and_tolerations_reach_the_indexer_pod() -> None:
    job = manifest(
        indexer_gpu_count=1,
        indexer_node_selector={"accelerator": "h100"},
        indexer_tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    spec = pod_spec(job)
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"accelerator": "h100"}
    assert spec["tolerations"][0]["key"] == "gpu"


def test_no_gpu_request_by_default() -> None:
    spec = pod_spec(manifest())
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in spec and "tolerations" not in spec


def test_scheduling_settings_are_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INDEXER_NODE_SELECTOR", '{"accelerator": "h100"}')
    monkeypatch.setenv("INDEXER_TOLERATIONS", '[{"key": "gpu", "operator": "Exists"}]')
    monkeypatch.setenv("INDEXER_GPU_COUNT", "2")
    loaded = load_settings()
    assert (loaded.kubernetes.indexer_node_selector, loaded.kubernetes.indexer_gpu_count) == (
        {"accelerator": "h100"},
        2,
    )
    assert loaded.kubernetes.indexer_tolerations == [{"key": "gpu", "operator": "Exists"}]


def test_indexer_pods_honour_the_charts_pod_security_context() -> None:
    default = manifest()["spec"]["template"]["spec"]["securityContext"]
    assert default["runAsUser"] == 10001 and default["runAsNonRoot"] is True
    # OpenShift: no fixed ids, the namespace's assigned range applies; runAsNonRoot stays.
    openshift = manifest(INDEXER_POD_SECURITY_CONTEXT={"seccompProfile": {"type": "RuntimeDefault"}})
    context = openshift["spec"]["template"]["spec"]["securityContext"]
    assert context == {"seccompProfile": {"type": "RuntimeDefault"}, "runAsNonRoot": True}


def test_a_git_job_clones_in_an_init_container_that_alone_mounts_the_credentials() -> None:
    spec = {
        "source": {"git": {"url": "https://example.invalid/r.git", "ref": "v1", "secretRef": {"name": "tok"}}}
    }
    pod = manifest(spec)["spec"]["template"]["spec"]
    (clone,) = pod["initContainers"]
    assert clone["command"][:3] == ["codebase-mcp", "indexer", "clone"]
    assert "--credentials" in clone["command"] and "tok" not in " ".join(clone["command"])
    assert pod["containers"][0]["command"][-2:] == ["--checkout", "/tmp/source"]
    rules = manifest(spec)["spec"]["podFailurePolicy"]["rules"]
    assert {"containerName": "clone", "operator": "NotIn", "values": [0]} in [
        r.get("onExitCodes") for r in rules
    ]


def test_without_a_queue_the_job_is_not_suspended_and_has_no_kueue_label() -> None:
    job = manifest()
    assert "suspend" not in job["spec"]
    assert KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]
    assert "priorityClassName" not in pod_spec(job)


def test_a_requests_queue_name_creates_the_job_suspended_with_the_kueue_label() -> None:
    job = manifest({"source": {"path": "/workspace/a"}, "queueName": "indexing"})
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "indexing"
    # Kueue reads the label on the Job; the pods keep only our own labels.
    assert KUEUE_QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    assert queued_by_kueue(job) == "indexing" and is_suspended(job)


def test_the_configured_queue_and_priority_class_apply_unless_the_request_names_its_own() -> None:
    job = manifest(KUEUE_QUEUE_NAME="shared", INDEXER_PRIORITY_CLASS_NAME="batch-low")
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "shared"
    assert pod_spec(job)["priorityClassName"] == "batch-low"
    own = manifest(
        {"source": {"path": "/workspace/a"}, "queueName": "mine", "priorityClassName": "urgent"},
        KUEUE_QUEUE_NAME="shared",
        INDEXER_PRIORITY_CLASS_NAME="batch-low",
    )
    assert own["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "mine"
    assert pod_spec(own)["priorityClassName"] == "urgent"


def test_a_priority_class_alone_does_not_suspend_the_job() -> None:
    job = manifest({"source": {"path": "/workspace/a"}, "priorityClassName": "urgent"})
    assert pod_spec(job)["priorityClassName"] == "urgent"
    assert "suspend" not in job["spec"]


@pytest.mark.parametrize("field", ["queueName", "priorityClassName"])
@pytest.mark.parametrize("value", ["Upper", "-dash", "", 7])
def test_malformed_queue_and_priority_class_names_are_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidInput, match=f"spec.{field}"):
        parse_spec({"source": {"path": "/workspace/a"}, field: value}, workspace_root="/workspace")


def test_an_unsharded_request_is_one_pod_that_is_never_retried() -> None:
    spec = manifest()["spec"]
    assert spec["backoffLimit"] == 0
    assert "completionMode" not in spec and "backoffLimitPerIndex" not in spec


def test_a_sharded_request_is_an_indexed_job_whose_shards_retry_alone() -> None:
    job = manifest({"projectId": "web", "source": {"path": "/workspace/mono"}, "shards": 5})
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 5 and spec["parallelism"] == 5
    # One retry per shard; a shard that fails twice fails the Job at once.
    assert spec["backoffLimitPerIndex"] == 1 and spec["maxFailedIndexes"] == 0
    assert "backoffLimit" not in spec
    # Exit 1 counts against the shard's own retries; refused input and "not runnable" are final.
    (fail_job,) = [r for r in spec["podFailurePolicy"]["rules"] if r.get("onExitCodes")]
    assert fail_job["action"] == "FailJob"
    assert fail_job["onExitCodes"]["values"] == [2, 3]
    # The pod learns its shard from JOB_COMPLETION_INDEX: the command names none.
    assert container(job)["command"] == ["codebase-mcp", "indexer", "run", "--job-id", str(JOB_ID)]


def test_shard_parallelism_bounds_the_pods_of_a_sharded_job_at_once() -> None:
    spec = {"projectId": "web", "source": {"path": "/workspace/mono"}, "shards": 8}
    assert manifest(spec, CODEBASE_SHARD_PARALLELISM=3)["spec"]["parallelism"] == 3
    assert manifest(spec, CODEBASE_SHARD_PARALLELISM=20)["spec"]["parallelism"] == 8


@pytest.mark.parametrize("shards", [0, 65, -1, "4", 2.5, True])
def test_spec_shards_must_be_an_integer_from_1_to_64(shards: object) -> None:
    with pytest.raises(InvalidInput, match=r"spec\.shards must be an integer from 1 to 64"):
        parse_spec({"projectId": "web", "source": {"path": "/w/x"}, "shards": shards}, workspace_root="/w")
