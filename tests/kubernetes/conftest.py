"""Fixtures for the tests against the local control plane (deploy/dev/cluster.sh).

The session uses a running dev cluster when there is one (KUBECONFIG with the `codebase-mcp-dev`
context, or `cluster.sh status` in CODEBASE_MCP_K8S_STATE), else runs `cluster.sh up` (and `down`
at the end); with `--real-node` when CI=true or CODEBASE_MCP_REAL_NODE=1 and the machine can run
one (test_real_node.py fails on CI, with the reason, when it cannot). If no cluster can be had,
the tests FAIL when CI=true and are skipped with the reason otherwise. Each test gets its own
namespace (restricted Pod Security, deploy/rbac applied) and, when it asks for one, its own
operator subprocess authenticated as the operator's ServiceAccount.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).parent))

from devcluster import ClusterUnavailable, DevCluster, OperatorProcess, real_node_unavailable_reason

from mcp_server.core.jobs import JobStore

UP_TIMEOUT_SECONDS = float(os.environ.get("CODEBASE_MCP_K8S_UP_TIMEOUT", "3600"))


def real_node_wanted() -> bool:
    """CI always wants one; elsewhere CODEBASE_MCP_REAL_NODE=1 asks (scripts/test sets it)."""
    ci = os.environ.get("CI", "").lower() == "true"
    return ci or os.environ.get("CODEBASE_MCP_REAL_NODE", "").lower() in ("1", "true")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the Kubernetes test cluster is required on CI: {reason}", pytrace=False)
    pytest.skip(f"no Kubernetes test cluster: {reason}")


@pytest.fixture(scope="session")
def cluster() -> Iterator[DevCluster]:
    real_node = real_node_wanted() and real_node_unavailable_reason() is None
    try:
        found = DevCluster.find_or_start(timeout=UP_TIMEOUT_SECONDS, real_node=real_node)
    except (ClusterUnavailable, OSError, KeyError) as exc:
        _unavailable(str(exc))
        raise  # unreachable: skip/fail raise
    try:
        found.apply_crd()
        yield found
    finally:
        found.stop()


@pytest.fixture
def namespace(cluster: DevCluster) -> Iterator[str]:
    name = cluster.create_namespace()
    cluster.create_workspace_claim(name)
    yield name
    cluster.delete_namespace(name)


@pytest.fixture
def kube(cluster: DevCluster) -> Any:
    """An admin client (mcp_server.runners.kube_api.KubeClient) for the test's own reads and writes."""
    client = cluster.client()
    yield client
    client.close()


@pytest.fixture
def store(clean_db: Engine) -> JobStore:
    return JobStore(clean_db)


@pytest.fixture
def start_operator(
    cluster: DevCluster, namespace: str, clean_db: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start `codebase-mcp operator` for the test's namespace; extra env vars as keyword arguments."""
    started: list[OperatorProcess] = []

    def start(**env: str) -> OperatorProcess:
        # Each its own kubeconfig and log (two may run at once: the leader-election tests).
        workdir = tmp_path / f"operator-{len(started)}"
        workdir.mkdir()
        operator = OperatorProcess(cluster, namespace, workdir, env)
        started.append(operator)
        return operator.start()

    yield start
    for operator in started:
        operator.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for operator in started:
            print(operator.log_tail(80))
    # Every operator here runs as the chart's ServiceAccount under deploy/rbac's Role (the chart's,
    # checked equal by tests/test_helm_chart.py): each test's flows are a replay under the reduced
    # Role, and a verb the code needs but the Role lacks shows as a 403 in the log.
    refused = [
        line for operator in started for line in operator.log_text().splitlines() if _refused_by_rbac(line)
    ]
    if refused:
        pytest.fail("the operator was refused by RBAC:\n" + "\n".join(refused[:5]))


def _refused_by_rbac(line: str) -> bool:
    return "Forbidden" in line and ("cannot " in line or " 403" in line)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
