"""The batch/v1 Job that runs one indexing job: a pure function of the request, the job id and the
settings, so it is unit-tested without a cluster and a restarted operator builds the same Job.

Why these fields:
- The name is derived from the job id alone, so creating it twice (a restart, two events racing)
  meets a 409 Conflict instead of making a second Job.
- backoffLimit 0 and a podFailurePolicy: the indexer's own exit codes (1 failed, 2 invalid input,
  3 not runnable) are final, a retry cannot help; a pod disrupted by the cluster (eviction,
  preemption, node drain) is replaced without counting as a failure.
- activeDeadlineSeconds is the job's timeout. No ttlSecondsAfterFinished at creation: the operator
  sets it once it has recorded the Job's outcome, so an operator outage longer than the TTL cannot
  lose the outcome (the TTL controller would delete the finished Job before anyone read it).
- The pod runs with the restricted Pod Security profile: non-root, read-only root filesystem,
  no privilege escalation, no capabilities, RuntimeDefault seccomp; /tmp is an emptyDir (git
  clones, the embedder's scratch files).
- DATABASE_URL comes from a Secret reference: the URL (with its password) is never in a manifest.
- Kueue pass-through: with a queue name (spec.queueName, else KUEUE_QUEUE_NAME) the Job is created
  with `suspend: true` and the `kueue.x-k8s.io/queue-name` label; Kueue unsuspends it when its
  ClusterQueue has quota. The operator neither holds such a Job back nor counts it against
  MAX_CONCURRENT_INDEXING_JOBS (two limits on one Job would leave Kueue's quota idle).
- spec.shards > 1: an Indexed Job (completionMode Indexed, completions N), each pod indexing the
  files of shard JOB_COMPLETION_INDEX; parallelism is CODEBASE_SHARD_PARALLELISM (0: all N);
  backoffLimitPerIndex 1, so a shard that fails (exit 1, or a crash) runs once more by itself
  while the others carry on, and maxFailedIndexes 0, so a shard that fails twice fails the Job
  at once instead of letting the rest run for nothing. Exits 2 and 3 still fail the whole Job:
  a refused input or a cancelled job is the same for every shard.
- A source.git Job clones in an init container (`indexer clone`), the only container that mounts
  the source.git.secretRef Secret and the only one without DATABASE_URL; the indexer container
  then indexes the checkout in the shared /tmp emptyDir and never sees the credentials.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from codebase_operator.spec import RequestSpec
from mcp_server.core.settings import Settings
from mcp_server.indexer.outcome import FAILURE_EXITS, RETRY_NEVER, SHARD_RETRIES
from mcp_server.runners.kube_api import ObjectRef

CONTAINER_NAME = "indexer"
CLONE_CONTAINER_NAME = "clone"  # the init container of source.git Jobs
CHECKOUT_DIR = "/tmp/source"
GIT_CREDENTIALS_DIR = "/var/run/secrets/codebase-mcp/git"
TERMINATION_LOG = "/dev/termination-log"
LABEL_PREFIX = "codebase-mcp.dev/"
JOB_ID_LABEL = "codebase-mcp.dev/job-id"
PROJECT_LABEL = "codebase-mcp.dev/project"
REQUEST_ANNOTATION = "codebase-mcp.dev/request"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
MANAGED_BY = "codebase-mcp-operator"
MANAGED_SELECTOR = f"app.kubernetes.io/managed-by={MANAGED_BY}"
TMP_SIZE_LIMIT = "4Gi"

# Test-only pass-through (`codebase-mcp operator --test-hooks`): `codebase-mcp.dev/test-<hook>` on the
# IndexingRequest becomes `codebase-mcp.dev/<hook>` on the pod, where the kwok stage rules in
# deploy/dev/kwok-stages.yaml read it. An allowlist, so a hook can never overwrite our own labels.
TEST_HOOK_PREFIX = "codebase-mcp.dev/test-"
TEST_LABEL_HOOKS = frozenset({"fail-exit-code", "stuck-pending"})
TEST_ANNOTATION_HOOKS = frozenset({"pending-duration", "run-duration", "fail-reason", "fail-message"})


def job_name(job_id: uuid.UUID) -> str:
    """`cbm-index-<first 8 hex of the id>-<6 hex of its hash>`: readable, unique, <= 63 chars."""
    digest = hashlib.sha256(str(job_id).encode()).hexdigest()[:6]
    return f"cbm-index-{job_id.hex[:8]}-{digest}"


def labels_for(job_id: uuid.UUID, project_id: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "codebase-mcp",
        "app.kubernetes.io/component": "indexer",
        "app.kubernetes.io/part-of": "codebase-mcp",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        JOB_ID_LABEL: str(job_id),
        PROJECT_LABEL: project_id,
    }


def queue_name_for(spec: RequestSpec, settings: Settings) -> str | None:
    """The Kueue LocalQueue of this request's Job, or None when Kueue is not used."""
    return spec.queue_name or settings.kubernetes.kueue_queue_name


def queued_by_kueue(job: Mapping[str, Any]) -> str | None:
    """The LocalQueue of a Job that Kueue manages, else None."""
    return ((job.get("metadata") or {}).get("labels") or {}).get(KUEUE_QUEUE_LABEL)


def is_suspended(job: Mapping[str, Any]) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def passthrough_test_hooks(
    labels: Mapping[str, str] | None, annotations: Mapping[str, str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """The pod labels and annotations asked for by `codebase-mcp.dev/test-*` keys."""

    def pick(source: Mapping[str, str] | None, allowed: frozenset[str]) -> dict[str, str]:
        picked = {}
        for key, value in (source or {}).items():
            if key.startswith(TEST_HOOK_PREFIX) and key[len(TEST_HOOK_PREFIX) :] in allowed:
                picked[LABEL_PREFIX + key[len(TEST_HOOK_PREFIX) :]] = str(value)
        return picked

    return pick(labels, TEST_LABEL_HOOKS), pick(annotations, TEST_ANNOTATION_HOOKS)


def _indexer_env(settings: Settings, spec: RequestSpec) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {
            "name": "DATABASE_URL",
            "valueFrom": {
                "secretKeyRef": {
                    "name": settings.kubernetes.database_url_secret_name,
                    "key": settings.kubernetes.database_url_secret_key,
                }
            },
        },
        # Read-only root filesystem: everything the process writes goes to the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},
        {"name": "CODEBASE_MCP_HOME", "value": "/tmp/codebase-mcp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "CODEBASE_MCP_LOG_LEVEL", "value": settings.logging.level},
        {"name": "CODEBASE_MAX_FILE_BYTES", "value": str(settings.indexing.max_file_bytes)},
        {"name": "CODEBASE_INDEXER_WORKERS", "value": str(settings.indexing.workers)},
        {"name": "CODEBASE_VECTOR_BUILD_MEMORY_MB", "value": str(settings.indexing.vector_build_memory_mb)},
        {"name": "CODEBASE_VECTOR_BUILD_WORKERS", "value": str(settings.indexing.vector_build_workers)},
        # The index must be written with the embedding model the MCP server searches with.
        {"name": "EMBEDDING_BACKEND", "value": settings.embedding.backend},
        {"name": "EMBEDDING_BATCH_SIZE", "value": str(settings.embedding.batch_size)},
        {"name": "EMBEDDING_TIMEOUT_SECONDS", "value": str(settings.embedding.timeout_seconds)},
    ]
    optional = {
        "EMBEDDING_MODEL": settings.embedding.model,
        "EMBEDDING_URL": settings.embedding.url,
        "EMBEDDING_DIMENSION": settings.embedding.dimension,
        "EMBEDDING_MODEL_PATH": settings.embedding.model_path,
        "CODEBASE_EXTRA_IGNORES": ",".join(settings.indexing.extra_ignores) or None,
    }
    env += [{"name": name, "value": str(value)} for name, value in optional.items() if value is not None]
    if spec.path is not None and settings.kubernetes.workspace_pvc_name:
        # Defence in depth: the indexer itself refuses paths outside the mounted workspace.
        env.append({"name": "CODEBASE_ALLOWED_ROOTS", "value": settings.kubernetes.workspace_mount_path})
    return env


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _clone_container(spec: RequestSpec, settings: Settings) -> dict[str, Any]:
    """`indexer clone`: fetches the source into the pod's /tmp; no database, no other secret."""
    assert spec.git_url is not None
    command = ["codebase-mcp", "indexer", "clone", "--url", spec.git_url, "--into", CHECKOUT_DIR]
    command += ["--ref", spec.git_ref] if spec.git_ref else []
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.git_secret:
        command += ["--credentials", GIT_CREDENTIALS_DIR]
        mounts.append({"name": "git-credentials", "mountPath": GIT_CREDENTIALS_DIR, "readOnly": True})
    return {
        "name": CLONE_CONTAINER_NAME,
        "image": settings.kubernetes.indexer_image,
        "imagePullPolicy": settings.kubernetes.indexer_image_pull_policy,
        "command": [*command, "--termination-log", TERMINATION_LOG],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "CODEBASE_MCP_HOME", "value": "/tmp/codebase-mcp"},
            {"name": "PYTHONUNBUFFERED", "value": "1"},
            {"name": "CODEBASE_MCP_LOG_LEVEL", "value": settings.logging.level},
        ],
        # The indexer's resources: a clone of a large repository needs its memory too.
        "resources": _resources(settings),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def _resources(settings: Settings) -> dict[str, Any]:
    k = settings.kubernetes
    return {
        "requests": {"cpu": k.indexer_cpu_request, "memory": k.indexer_memory_request},
        "limits": {"cpu": k.indexer_cpu_limit, "memory": k.indexer_memory_limit},
    }


def build_job(
    *,
    request: ObjectRef,
    spec: RequestSpec,
    job_id: uuid.UUID,
    settings: Settings,
    test_hooks: bool = False,
    request_labels: Mapping[str, str] | None = None,
    request_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The Job manifest for one indexing job of the IndexingRequest `request`."""
    labels = labels_for(job_id, spec.project_id)
    queue = queue_name_for(spec, settings)
    job_labels = {**labels, KUEUE_QUEUE_LABEL: queue} if queue else labels
    priority_class = spec.priority_class_name or settings.kubernetes.indexer_priority_class_name
    annotations = {REQUEST_ANNOTATION: request.name}
    pod_labels, pod_annotations = dict(labels), dict(annotations)
    if test_hooks:
        hook_labels, hook_annotations = passthrough_test_hooks(request_labels, request_annotations)
        pod_labels = {**hook_labels, **pod_labels}
        pod_annotations = {**hook_annotations, **pod_annotations}

    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}]
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.path is not None and settings.kubernetes.workspace_pvc_name:
        volumes.append(
            {
                "name": "workspace",
                "persistentVolumeClaim": {
                    "claimName": settings.kubernetes.workspace_pvc_name,
                    "readOnly": True,
                },
            }
        )
        mounts.append(
            {"name": "workspace", "mountPath": settings.kubernetes.workspace_mount_path, "readOnly": True}
        )

    command = ["codebase-mcp", "indexer", "run", "--job-id", str(job_id)]
    init_containers: list[dict[str, Any]] = []
    if spec.git_url is not None:
        command += ["--checkout", CHECKOUT_DIR]
        init_containers.append(_clone_container(spec, settings))
        if spec.git_secret:
            volumes.append(
                {"name": "git-credentials", "secret": {"secretName": spec.git_secret, "defaultMode": 0o440}}
            )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": settings.kubernetes.indexer_image,
        "imagePullPolicy": settings.kubernetes.indexer_image_pull_policy,
        "command": command,
        "env": _indexer_env(settings, spec),
        "resources": _resources(settings),
        "securityContext": _container_security(),
        "volumeMounts": mounts,
        # The indexer writes its failure reason here; the kubelet copies it into the pod status.
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if settings.kubernetes.indexer_env_secret_name:
        container["envFrom"] = [{"secretRef": {"name": settings.kubernetes.indexer_env_secret_name}}]
    if settings.kubernetes.indexer_gpu_count:
        container["resources"]["limits"][settings.kubernetes.indexer_gpu_resource_name] = str(
            settings.kubernetes.indexer_gpu_count
        )

    failure_rules: list[dict[str, Any]] = [
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": CONTAINER_NAME,
                "operator": "In",
                # A shard's exit 1 (a failure that may be transient) counts against its own
                # backoffLimitPerIndex instead; refused input and "not runnable" are final.
                "values": [int(code) for code in (FAILURE_EXITS if spec.shards == 1 else RETRY_NEVER)],
            },
        },
    ]
    if init_containers:
        failure_rules.append(
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": CLONE_CONTAINER_NAME, "operator": "NotIn", "values": [0]},
            }
        )
    failure_rules.append({"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]})
    if spec.shards > 1:
        parallelism = settings.jobs.shard_parallelism or spec.shards
        completion: dict[str, Any] = {
            "completionMode": "Indexed",
            "completions": spec.shards,
            "parallelism": min(spec.shards, parallelism),
            "backoffLimitPerIndex": SHARD_RETRIES,
            "maxFailedIndexes": 0,
        }
    else:
        completion = {"backoffLimit": 0}

    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job_id),
            "namespace": request.namespace,
            "labels": job_labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": request.api_version,
                    "kind": request.kind,
                    "name": request.name,
                    "uid": request.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            **({"suspend": True} if queue else {}),
            **completion,
            "activeDeadlineSeconds": spec.timeout_seconds or settings.jobs.timeout_seconds,
            "podFailurePolicy": {"rules": failure_rules},
            "template": {
                "metadata": {"labels": pod_labels, "annotations": pod_annotations},
                "spec": {
                    "restartPolicy": "Never",
                    **(
                        {"nodeSelector": dict(settings.kubernetes.indexer_node_selector)}
                        if settings.kubernetes.indexer_node_selector
                        else {}
                    ),
                    **(
                        {"tolerations": list(settings.kubernetes.indexer_tolerations)}
                        if settings.kubernetes.indexer_tolerations
                        else {}
                    ),
                    **({"priorityClassName": priority_class} if priority_class else {}),
                    "serviceAccountName": settings.kubernetes.indexer_service_account,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        **settings.kubernetes.indexer_pod_security_context,
                        "runAsNonRoot": True,
                    },
                    **({"initContainers": init_containers} if init_containers else {}),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }
