"""kopf wiring: which events reach which Reconciler method. No logic lives here.

A fresh registry per operator (not kopf's global one), so building an operator has no import-time
side effects and tests can build several. Only event handlers, no change handlers: kopf then
writes nothing into the IndexingRequests (no progress annotations, no finalizer), so the operator
needs no `patch` or `update` on them, and deleting one is never blocked by the operator being down
or the database being unreachable (the Job goes with its owner through the garbage collector, and
the resync cancels the row later). What an event could not do (a dependency away, or this replica
not the leader) the resync does later: every handler is a shortcut for latency, never the only path.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import kopf

from codebase_operator.jobs_builder import MANAGED_BY
from codebase_operator.objects import UNREACHABLE, describe_unreachable, key
from codebase_operator.reconciler import Reconciler
from mcp_server.runners.kube_api import GROUP, PLURAL, VERSION

log = logging.getLogger("codebase_operator")

MANAGED = {"app.kubernetes.io/managed-by": MANAGED_BY}


@contextmanager
def _left_to_the_resync(body: kopf.Body) -> Iterator[None]:
    """An event that cannot be reflected now (database or API away) is not retried by kopf (event
    handlers never are); the periodic resync re-reads every object and reflects it once the
    dependency is back. Say so in one line instead of a traceback per event."""
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

    # The resync's view of the cluster (`cluster_view`): kopf keeps these from the watch streams
    # it runs for the handlers below, so the resync needs no LIST requests of its own.
    @kopf.index(GROUP, VERSION, PLURAL, id="requests_index", registry=registry)
    def requests_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {key(body): _plain(body)}

    @kopf.index("batch", "v1", "jobs", labels=MANAGED, id="jobs_index", registry=registry)
    def jobs_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {key(body): _plain(body)}

    @kopf.index("v1", "pods", labels=MANAGED, id="pods_index", registry=registry)
    def pods_index(body: kopf.Body, **_: Any) -> dict[tuple[str, str], dict[str, Any]]:
        return {key(body): _plain(body)}

    @kopf.on.startup(registry=registry)
    async def attach_indices(**kwargs: Any) -> None:
        # Async, so that this runs on the loop that writes the indices (the view copies them there).
        # kopf passes each index as the keyword argument named by its id (a nested function's
        # default id would be "build_registry.<locals>....").
        reconciler.view.attach(
            asyncio.get_running_loop(),
            requests=kwargs["requests_index"],
            jobs=kwargs["jobs_index"],
            pods=kwargs["pods_index"],
        )

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    def request_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        reconciler.view.mark_complete()  # kopf calls no handler before every index is populated
        if not reconciler.is_leader():
            return
        with _left_to_the_resync(body):
            if event.get("type") == "DELETED":
                reconciler.request_deleted(_plain(body))
            else:
                reconciler.admit(_plain(body))

    @kopf.on.event("batch", "v1", "jobs", labels=MANAGED, registry=registry)
    def job_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        reconciler.view.mark_complete()
        if not reconciler.is_leader():
            return
        with _left_to_the_resync(body):
            reconciler.job_changed(_plain(body), deleted=event.get("type") == "DELETED")

    @kopf.on.event("v1", "pods", labels=MANAGED, registry=registry)
    def pod_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        reconciler.view.mark_complete()
        if not reconciler.is_leader():
            return
        with _left_to_the_resync(body):
            reconciler.pod_changed(_plain(body), deleted=event.get("type") == "DELETED")

    @kopf.on.probe(id="resync", registry=registry)
    def resync_probe(**_: Any) -> dict[str, Any]:
        return reconciler.health()

    return registry


def _plain(body: kopf.Body) -> dict[str, Any]:
    """The raw object as plain dicts (kopf's Body is a read-only view over them)."""
    return {key: body[key] for key in body}
