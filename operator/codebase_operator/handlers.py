"""kopf wiring: which events reach which Reconciler method. No logic lives here.

A fresh registry per operator (not kopf's global one), so building an operator has no import-time
side effects and tests can build several. No handler needs a finalizer: deleting an
IndexingRequest is never blocked by the operator being down or the database being unreachable
(the Job goes with its owner through the garbage collector, and the resync cancels the row later).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf
from sqlalchemy.exc import SQLAlchemyError

from codebase_operator.jobs_builder import MANAGED_BY
from codebase_operator.reconciler import UNREACHABLE, Reconciler, describe_unreachable
from mcp_server.core.errors import DatabaseUnavailable
from mcp_server.runners.kube_api import GROUP, PLURAL, VERSION, Unavailable

log = logging.getLogger("codebase_operator")

RETRY_DELAY_SECONDS = 5.0
MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


@contextmanager
def _retry_when_unavailable() -> Iterator[None]:
    """The database or the API server is away: let kopf retry the handler, not mark it failed."""
    try:
        yield
    except (SQLAlchemyError, DatabaseUnavailable, Unavailable) as exc:
        raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=RETRY_DELAY_SECONDS) from exc


@contextmanager
def _left_to_the_resync(body: kopf.Body) -> Iterator[None]:
    """A Job or pod event that cannot be reflected now (database or API away) is not retried by
    kopf (event handlers never are); the periodic resync re-reads every Job and pod and reflects
    it once the dependency is back. Say so in one line instead of a traceback per event."""
    try:
        yield
    except UNREACHABLE as exc:
        name = f"{body.get('kind', 'object')} {body.get('metadata', {}).get('name', '?')}"
        log.warning("%s not reflected yet, the resync will: %s", name, describe_unreachable(exc))


def build_registry(reconciler: Reconciler) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # The same credentials as mcp_server.runners.kube_api: in-cluster service account, else KUBECONFIG.
        info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
        return info

    @kopf.on.resume(GROUP, VERSION, PLURAL, registry=registry, backoff=RETRY_DELAY_SECONDS)
    @kopf.on.create(GROUP, VERSION, PLURAL, registry=registry, backoff=RETRY_DELAY_SECONDS)
    def admit_request(body: kopf.Body, **_: Any) -> None:
        with _retry_when_unavailable():
            reconciler.admit(_plain(body))

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def request_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        if event.get("type") == "DELETED":
            reconciler.request_deleted(_plain(body))

    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=registry)
    def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        with _left_to_the_resync(body):
            reconciler.job_changed(_plain(body), deleted=event.get("type") == "DELETED")

    @kopf.on.event("v1", "pods", labels=MANAGED, registry=registry)
    def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        with _left_to_the_resync(body):
            reconciler.pod_changed(_plain(body), deleted=event.get("type") == "DELETED")

    @kopf.on.probe(id="resync", registry=registry)
    def resync_probe(**_: Any) -> dict[str, Any]:
        return reconciler.health()

    return registry


def _plain(body: kopf.Body) -> dict[str, Any]:
    """The raw object as plain dicts (kopf's Body is a read-only view over them)."""
    return {key: body[key] for key in body}
