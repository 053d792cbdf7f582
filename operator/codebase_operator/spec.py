"""An IndexingRequest's spec, judged again by the operator (the second line of defence).

The CRD schema (deploy/crds/indexingrequests.yaml) refuses malformed specs at the API server. The
operator still validates every spec it acts on, with the same functions the MCP tools use
(mcp_server.core.validation), because a schema can be edited, installed in an older version, or
bypassed, and because some rules depend on the operator's configuration (the workspace mount).
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_server.core.errors import InvalidInput
from mcp_server.core.shards import MAX_SHARDS
from mcp_server.core.validation import (
    K8S_NAME_RE,
    NO_WORKSPACE_ADVICE,
    check_path_syntax,
    git_repository_key,
    validate_git_source,
    validate_job_id,
    validate_project_id,
)

_QUEUE_NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
CANCELLED = "Cancelled"  # the one value of spec.status
MIN_TIMEOUT_SECONDS = 60
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class RequestSpec:
    project_id: str
    path: str | None
    git_url: str | None
    git_ref: str | None
    job_id: uuid.UUID | None
    force_reindex: bool
    timeout_seconds: int | None
    git_secret: str | None = None  # source.git.secretRef.name: credentials for the clone only
    queue_name: str | None = None  # spec.queueName: a Kueue LocalQueue
    priority_class_name: str | None = None
    shards: int = 1  # spec.shards: >1 runs as an Indexed Job, one pod per shard
    cancelled: bool = False  # spec.status: Cancelled (Tekton's convention): stop, keep the request

    @property
    def repo_key(self) -> str:
        """What the job row records as `repo_path`: the path, or the URL (with its ref) for git."""
        if self.path is not None:
            return self.path
        assert self.git_url is not None
        return git_repository_key(self.git_url, self.git_ref)


def parse_spec(spec: Any, *, workspace_root: str | None) -> RequestSpec:
    """The validated spec, or InvalidInput saying what is wrong (in the words of the CRD fields).

    `workspace_root`: where the shared workspace volume is mounted in the indexer pods; a
    `source.path` must lie under it. None: the operator has no workspace, so a path request is
    refused here rather than failing in its pod (the indexer would find nothing at the path).
    """
    if not isinstance(spec, Mapping):
        raise InvalidInput("spec must be an object")
    project = spec.get("projectId", "default")
    if not isinstance(project, str):
        raise InvalidInput("spec.projectId must be a string")
    try:
        project_id = validate_project_id(project)
    except InvalidInput as exc:
        raise InvalidInput(f"spec.projectId: {exc}") from None

    source = spec.get("source")
    if not isinstance(source, Mapping):
        raise InvalidInput("spec.source must be an object with exactly one of path or git")
    has_path, has_git = source.get("path") is not None, source.get("git") is not None
    if has_path == has_git:
        raise InvalidInput("spec.source needs exactly one of path or git")
    path = git_url = git_ref = git_secret = None
    if has_path:
        raw = source["path"]
        if not isinstance(raw, str):
            raise InvalidInput("spec.source.path must be a string")
        try:
            path = check_path_syntax(raw)
        except InvalidInput as exc:
            raise InvalidInput(f"spec.source.path: {exc}") from None
        if workspace_root is None:
            raise InvalidInput(
                f"spec.source.path {path!r} needs the shared workspace volume, and this operator has "
                f"none: {NO_WORKSPACE_ADVICE} (spec.source.git)"
            )
        if not _is_under(path, workspace_root):
            raise InvalidInput(
                f"spec.source.path {path!r} is outside the workspace volume mounted at {workspace_root}"
            )
    else:
        git = source["git"]
        if not isinstance(git, Mapping):
            raise InvalidInput("spec.source.git must be an object with url and optional ref")
        url, ref = git.get("url"), git.get("ref")
        if not isinstance(url, str):
            raise InvalidInput("spec.source.git.url must be a string")
        if ref is not None and not isinstance(ref, str):
            raise InvalidInput("spec.source.git.ref must be a string")
        git_url, git_ref = validate_git_source(url, ref)
        secret_ref = git.get("secretRef")
        if secret_ref is not None:
            name = secret_ref.get("name") if isinstance(secret_ref, Mapping) else None
            if not isinstance(name, str) or not K8S_NAME_RE.fullmatch(name):
                raise InvalidInput("spec.source.git.secretRef.name must name a Secret in this namespace")
            git_secret = name

    job_id = None
    if spec.get("jobId") is not None:
        try:
            job_id = validate_job_id(spec["jobId"])
        except InvalidInput as exc:
            raise InvalidInput(f"spec.jobId: {exc}") from None

    force = spec.get("forceReindex", False)
    if not isinstance(force, bool):
        raise InvalidInput("spec.forceReindex must be true or false")

    timeout = spec.get("timeoutSeconds")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int)
        or not MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise InvalidInput(
            f"spec.timeoutSeconds must be an integer from {MIN_TIMEOUT_SECONDS} to {MAX_TIMEOUT_SECONDS}"
        )
    queue_name = _optional_name(spec, "queueName", _QUEUE_NAME_RE, "a Kueue LocalQueue in this namespace")
    priority_class = _optional_name(spec, "priorityClassName", K8S_NAME_RE, "a PriorityClass")
    shards = 1 if spec.get("shards") is None else spec["shards"]
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        # No `auto` here: the operator cannot count a tree it does not mount; the MCP tool can.
        raise InvalidInput(f"spec.shards must be an integer from 1 to {MAX_SHARDS}")
    wanted_status = spec.get("status")
    if wanted_status not in (None, CANCELLED):
        raise InvalidInput(
            f"spec.status may only be {CANCELLED!r} (to cancel the run), got {wanted_status!r}"
        )
    return RequestSpec(
        project_id=project_id,
        path=path,
        git_url=git_url,
        git_ref=git_ref,
        job_id=job_id,
        force_reindex=force,
        timeout_seconds=timeout,
        git_secret=git_secret,
        queue_name=queue_name,
        priority_class_name=priority_class,
        shards=shards,
        cancelled=wanted_status == CANCELLED,
    )


def _optional_name(spec: Mapping[str, Any], field: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = spec.get(field)
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInput(f"spec.{field} must name {what}")
    return value


def _is_under(path: str, root: str) -> bool:
    root = posixpath.normpath(root)
    return path == root or path.startswith(root.rstrip("/") + "/")
