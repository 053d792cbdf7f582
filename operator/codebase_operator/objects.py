"""What every part of the operator shares: the Kubernetes API it calls, reading object metadata,
job ids, and log lines that carry the job id.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol

from mcp_server.db.errors import DATABASE_ERRORS, describe_database_error
from mcp_server.runners.kube_api import ObjectRef, Unavailable

log = logging.getLogger("codebase_operator")

Body = Mapping[str, Any]
_JOB_ID_NAMESPACE = uuid.UUID("6c1b8f3e-2a4d-4f0e-9a51-63b0d7c2e8a1")

# Errors that mean "PostgreSQL or the API server is away for now", not "this code is wrong".
UNREACHABLE: tuple[type[Exception], ...] = (*DATABASE_ERRORS, Unavailable)


def describe_unreachable(exc: Exception) -> str:
    """One line for the log: which dependency is away and its own first line of explanation."""
    if not isinstance(exc, Unavailable):
        return describe_database_error(exc)
    detail = str(exc).strip().splitlines()
    what = "the Kubernetes API is unreachable"
    return f"{what} ({detail[0][:300]})" if detail else what


class KubeApi(Protocol):
    """The part of `runners.kube_api.KubeClient` the operator uses (a fake implements it in tests)."""

    def get_indexing_request(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def list_indexing_requests(self, namespace: str | None) -> list[dict[str, Any]]: ...
    def patch_indexing_request_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]: ...
    def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def list_jobs(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]: ...
    def patch_job(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]: ...
    def delete_job(self, namespace: str, name: str) -> bool: ...
    def list_pods(self, namespace: str | None, *, label_selector: str) -> list[dict[str, Any]]: ...
    def list_events(self, namespace: str, *, field_selector: str) -> list[dict[str, Any]]: ...
    def post_event(
        self,
        regarding: ObjectRef,
        *,
        reason: str,
        message: str,
        warning: bool = False,
        component: str = ...,
    ) -> None: ...


class JobLog(logging.LoggerAdapter[logging.Logger]):
    """Every line about a job carries its id (a `job_id` field in the JSON logs, and in the text)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        extra = dict(self.extra or {})
        kwargs["extra"] = {**extra, **(kwargs.get("extra") or {})}
        return f"job {extra.get('job_id')}: {msg}", kwargs


def job_log(job_id: uuid.UUID | str | None, request: str | None = None) -> JobLog:
    return JobLog(log, {"job_id": str(job_id) if job_id else None, "request": request})


def derived_job_id(request: ObjectRef) -> uuid.UUID:
    """The job id of a request applied without spec.jobId: stable across operator restarts (it
    comes from the object's uid), and different for a re-created object of the same name."""
    return uuid.uuid5(_JOB_ID_NAMESPACE, f"{request.namespace}/{request.name}/{request.uid}")


def meta(body: Body) -> Mapping[str, Any]:
    return body.get("metadata") or {}


def key(body: Body) -> tuple[str, str]:
    m = meta(body)
    return str(m.get("namespace", "")), str(m.get("name", ""))


def owner_request(obj: Body) -> tuple[str, str] | None:
    """(name, uid) of the IndexingRequest that owns a Job."""
    for owner in meta(obj).get("ownerReferences") or []:
        if owner.get("kind") == "IndexingRequest":
            return str(owner.get("name")), str(owner.get("uid"))
    return None


def spec_of(body: Body) -> Mapping[str, Any]:
    spec = body.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return value is not None
