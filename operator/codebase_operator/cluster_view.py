"""What the resync reads: the IndexingRequests, the managed Jobs and the managed pods.

kopf already runs one watch stream per kind for the event handlers; its in-memory indices
(`@kopf.index`, registered in `handlers`) keep the objects those streams deliver, so the resync
reads them there instead of sending three LIST requests to the API server every period. Until the
indices are known to be complete it lists, as it did before: kopf holds every event handler back
until all indices have their initial listing, so the first handler call proves completeness (with
no objects at all there is no call, and the lists are empty and cheap).

A cache lags the API server by a watch delay, so the view remembers its own writes until the cache
shows them, as controller-runtime's expectations do: a Job the resync just created is in the
snapshot before its watch event arrives (or the next pass would admit past the limit, or fail the
row for a "deleted" Job), and one it just deleted is not. Decisions that a stale cache could make
wrongly and that cannot be undone are confirmed with a direct request by the caller (`resync`).

The indices are written on kopf's event loop; a snapshot is copied there too
(`run_coroutine_threadsafe`), never by iterating live dicts from the resync thread.
"""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Mapping
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

from codebase_operator.jobs_builder import MANAGED_SELECTOR
from codebase_operator.objects import KubeApi, key

# A write the cache has not shown after this long is forgotten: the watch delivered and dropped
# it, or the object changed again; either way the cache is the better source by then.
EXPECTATION_SECONDS = 30.0
SNAPSHOT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Snapshot:
    requests: list[dict[str, Any]]
    jobs: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    source: str  # "index" or "api"


class ClusterView:
    def __init__(self, kube: KubeApi, namespace: str | None) -> None:
        self.kube = kube
        self.namespace = namespace
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._indices: Mapping[str, Mapping[Any, Any]] | None = None
        self._complete = False
        self._created: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._deleted: dict[tuple[str, str], float] = {}

    # --- wiring (handlers) ------------------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop, *, requests: Any, jobs: Any, pods: Any) -> None:
        """kopf's indices, and the loop that writes them (from a startup handler)."""
        with self._lock:
            self._loop = loop
            self._indices = {"requests": requests, "jobs": jobs, "pods": pods}

    def mark_complete(self) -> None:
        """Called by every event handler: kopf calls none before all indices are populated."""
        self._complete = True

    @property
    def from_index(self) -> bool:
        return self._complete and self._indices is not None

    # --- the resync's own writes ------------------------------------------------------------------

    def job_created(self, job: dict[str, Any]) -> None:
        with self._lock:
            self._created[key(job)] = (time.monotonic(), job)
            self._deleted.pop(key(job), None)

    def job_deleted(self, namespace: str, name: str) -> None:
        with self._lock:
            self._deleted[(namespace, name)] = time.monotonic()
            self._created.pop((namespace, name), None)

    # --- reading ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        indices, loop = self._indices, self._loop
        if not self.from_index or indices is None or loop is None or loop.is_closed():
            return self._listed()

        async def read() -> tuple[list[dict[str, Any]], ...]:
            return tuple(_values(indices[kind]) for kind in ("requests", "jobs", "pods"))

        try:
            requests, jobs, pods = asyncio.run_coroutine_threadsafe(read(), loop).result(
                SNAPSHOT_TIMEOUT_SECONDS
            )
        except (RuntimeError, TimeoutError, CancelledError):  # the loop stopped or is stuck: ask the API
            return self._listed()
        return Snapshot(requests=requests, jobs=self._with_own_writes(jobs), pods=pods, source="index")

    def _listed(self) -> Snapshot:
        return Snapshot(
            requests=self.kube.list_indexing_requests(self.namespace),
            jobs=self.kube.list_jobs(self.namespace, label_selector=MANAGED_SELECTOR),
            pods=self.kube.list_pods(self.namespace, label_selector=MANAGED_SELECTOR),
            source="api",
        )

    def _with_own_writes(self, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        now = time.monotonic()
        seen = {key(job) for job in jobs}
        with self._lock:
            self._created = {
                name: (since, job)
                for name, (since, job) in self._created.items()
                if name not in seen and now - since < EXPECTATION_SECONDS
            }
            self._deleted = {
                name: since
                for name, since in self._deleted.items()
                if name in seen and now - since < EXPECTATION_SECONDS
            }
            kept = [job for job in jobs if key(job) not in self._deleted]
            return kept + [copy.deepcopy(job) for _, job in self._created.values()]


def _values(index: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """Every object in a kopf index (key -> store of values), as copies of the plain dicts stored."""
    return [copy.deepcopy(value) for index_key in list(index) for value in index[index_key]]
