"""Leader election over a coordination.k8s.io/v1 Lease: only one operator replica acts.

Why a Lease (and not kopf peering or a PostgreSQL advisory lock):
- kopf's peering needs the cluster-scoped KopfPeering CRDs installed and, by design, freezes every
  replica when two run with the same priority, which is exactly a rolling update or `kubectl scale`.
- A session-level advisory lock lives on one database connection: poolers in transaction mode
  (PgBouncer) break it, and it says nothing about the API server, which is where Jobs are created.
- A Lease is the Kubernetes convention (kube-controller-manager, controller-runtime): namespaced
  (RBAC on one named object), visible (`kubectl get lease`), and lost by a replica that cannot reach
  the API server, i.e. one that could not create Jobs anyway.

The rules, as client-go's leaderelection does them:
- A Lease is free when it has no holder, or when its record (holder, renewTime) has not changed for
  `leaseDurationSeconds` as measured on *our* clock since we first saw that record (no comparison of
  timestamps written by other machines, so clock skew does not matter).
- The holder renews every `renew_seconds`. It stops acting `renew_deadline` after its last successful
  renewal (measured from before the request was sent), which is shorter than the lease duration:
  a partitioned leader has stopped before anyone else may take over.
- Writes carry the resourceVersion read, so two candidates racing for a free Lease cannot both win.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from mcp_server.runners.kube_api import Conflict, KubernetesError

log = logging.getLogger("codebase_operator")


class LeaseApi(Protocol):
    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None: ...
    def create_lease(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]: ...
    def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


def _micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        kube: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_seconds: float = 15.0,
        renew_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_started_leading: Callable[[], None] | None = None,
    ) -> None:
        if not 0 < renew_seconds < lease_seconds:
            raise ValueError("renew_seconds must be shorter than lease_seconds")
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        # Stop acting well before anyone else may take over (client-go: renewDeadline < leaseDuration).
        self.renew_deadline = max(renew_seconds, lease_seconds * 2 / 3)
        self._clock = clock
        self.on_started_leading = on_started_leading
        self._leading_until = float("-inf")
        self._observed: tuple[str | None, str | None] | None = None
        self._observed_at = float("-inf")
        self._was_leader = False

    def is_leader(self) -> bool:
        return self._clock() < self._leading_until

    def step(self) -> bool:
        """Try once to acquire or renew the Lease; whether we lead afterwards."""
        started = self._clock()
        try:
            acquired = self._try_acquire_or_renew(started)
        except KubernetesError as exc:
            log.warning(
                "leader election: cannot read or write Lease %s/%s: %s", self.namespace, self.name, exc
            )
            acquired = False
        if acquired:
            self._leading_until = started + self.renew_deadline
        leading = self.is_leader()
        if leading and not self._was_leader:
            log.info("leader election: %s now leads (Lease %s/%s)", self.identity, self.namespace, self.name)
            if self.on_started_leading is not None:
                self.on_started_leading()
        elif self._was_leader and not leading:
            log.warning(
                "leader election: %s lost the Lease %s/%s; standing by",
                self.identity,
                self.namespace,
                self.name,
            )
        self._was_leader = leading
        return leading

    def _try_acquire_or_renew(self, now: float) -> bool:
        lease = self.kube.get_lease(self.namespace, self.name)
        wall = datetime.now(UTC)
        if lease is None:
            try:
                self.kube.create_lease(self.namespace, self._body(None, wall, transitions=0, acquire=True))
            except Conflict:
                return False  # another candidate created it first
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        record = (holder, spec.get("renewTime"))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        duration = float(spec.get("leaseDurationSeconds") or self.lease_seconds)
        if holder not in (None, self.identity) and now < self._observed_at + duration:
            return False  # held by a live leader
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        body = self._body(lease, wall, transitions=transitions, acquire=holder != self.identity)
        if holder == self.identity:
            body["spec"]["acquireTime"] = spec.get("acquireTime") or body["spec"]["acquireTime"]
        try:
            self.kube.replace_lease(self.namespace, self.name, body)
        except Conflict:
            return False  # changed meanwhile (someone else renewed or took it)
        return True

    def _body(
        self, lease: Mapping[str, Any] | None, wall: datetime, *, transitions: int, acquire: bool
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if lease is not None:
            old = lease.get("metadata") or {}
            metadata["resourceVersion"] = old.get("resourceVersion")
            if old.get("labels"):
                metadata["labels"] = dict(old["labels"])
        stamp = _micro_time(wall)
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, round(self.lease_seconds)),
                "acquireTime": stamp if acquire else None,
                "renewTime": stamp,
                "leaseTransitions": transitions,
            },
        }

    def release(self) -> None:
        """On a clean shutdown: give the Lease up, so a standby takes over at once."""
        if not self.is_leader():
            return
        self._leading_until = float("-inf")
        self._was_leader = False
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            body = dict(lease)
            body["spec"] = {**(lease.get("spec") or {}), "holderIdentity": None, "leaseDurationSeconds": 1}
            self.kube.replace_lease(self.namespace, self.name, body)
            log.info("leader election: %s released the Lease", self.identity)
        except KubernetesError as exc:
            log.warning("leader election: could not release the Lease: %s", exc)

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(self.renew_seconds)
        self.release()


class AlwaysLeader:
    """Leader election turned off (OPERATOR_LEADER_ELECTION=false): this replica always acts."""

    def is_leader(self) -> bool:
        return True

    def run_forever(self, stop: threading.Event) -> None:
        stop.wait()


__all__ = ["AlwaysLeader", "LeaseElector"]
