"""Leader election over a Lease, against an in-memory Lease API with resourceVersions and a fake
clock (tests/kubernetes/test_operator_replicas.py runs two real operators on the control plane)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from codebase_operator.leadership import LeaseElector

from mcp_server.runners.kube_api import Conflict, Unavailable


class FakeLeases:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            raise Unavailable("cannot reach the API server")
        return copy.deepcopy(self.lease)

    def create_lease(self, namespace: str, body: Any) -> dict[str, Any]:
        if self.lease is not None:
            raise Conflict("already exists", status=409)
        return self._store(body)

    def replace_lease(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        if self.down:
            raise Unavailable("cannot reach the API server")
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified", status=409)
        return self._store(body)

    def _store(self, body: Any) -> dict[str, Any]:
        self.version += 1
        self.lease = copy.deepcopy(dict(body))
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(leases: FakeLeases, clock: Clock, identity: str) -> LeaseElector:
    return LeaseElector(
        leases,
        namespace="ns",
        name="lease",
        identity=identity,
        lease_seconds=15,
        renew_seconds=2,
        clock=clock,
    )


def test_only_one_of_two_candidates_leads_and_the_other_takes_over_after_the_lease_expires() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    assert a.step() is True
    assert b.step() is False
    for _ in range(10):  # a renews; b never gets it
        clock.now += 2
        assert a.step() and not b.step()

    leases.down = True  # a is partitioned from the API server
    clock.now += 2
    a.step()
    clock.now += 9  # past a's renew deadline (10 s after its last renewal), before the lease expires
    assert not a.is_leader()
    leases.down = False
    assert b.step() is False  # b saw the last renewal 11 s ago: not expired yet
    clock.now += 5
    assert b.step() is True  # 16 s without a change: b takes over
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == "b"
    assert leases.lease["spec"]["leaseTransitions"] == 1
    assert a.step() is False  # a, back, sees b renewing


def test_a_released_lease_is_taken_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.step()
    b.step()
    a.release()
    assert not a.is_leader()
    assert b.step() is True


def test_two_candidates_racing_for_a_free_lease_cannot_both_win() -> None:
    leases, clock = FakeLeases(), Clock()
    a, b = elector(leases, clock, "a"), elector(leases, clock, "b")
    a.step()
    a.release()
    stale = leases.get_lease("ns", "lease")
    assert b.step() is True
    # a acts on the read it made before b wrote: its write carries the old resourceVersion.
    leases.get_lease = lambda namespace, name: copy.deepcopy(stale)  # type: ignore[method-assign]
    assert a.step() is False


def test_the_renew_period_must_be_shorter_than_the_lease() -> None:
    with pytest.raises(ValueError):
        LeaseElector(FakeLeases(), namespace="n", name="l", identity="a", lease_seconds=2, renew_seconds=2)
