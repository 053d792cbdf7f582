"""The Helm chart against a real API server (deploy/dev/cluster.sh): schema validation of every
rendered object, a real server-side apply into a fresh namespace that enforces the restricted Pod
Security profile, the ServiceAccounts' real permissions, and the migration hook's command run for
real against PostgreSQL.

No Deployment or StatefulSet controller runs in the test cluster (and no container runs at all:
kwok fakes the kubelet), so pod admission is checked by creating each pod template as a Pod with
a server-side dry run, and the migration Job's pod is created for real by the Job controller.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster import DevCluster
from helm_chart import (
    CHART,
    EVERYTHING_ON,
    EXTERNAL_URL,
    PODS_MIGRATE,
    RELEASE,
    Tools,
    extract_tools,
    helm,
    objects,
    one,
    pod_specs,
    template,
    write_values,
)
from sqlalchemy import create_engine, make_url, text

from mcp_server.core.settings import Settings
from mcp_server.db import database
from mcp_server.runners.kube_api import API_VERSION

CODEBASE_MCP = Path(sys.executable).with_name("codebase-mcp")
PSA_WARNING = "would violate PodSecurity"
CRD_NAME = "indexingrequests.codebase-mcp.dev"


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    return extract_tools(tmp_path_factory.mktemp("helm-bin"))


@pytest.fixture
def chart_namespace(cluster: DevCluster) -> Iterator[str]:
    """A fresh namespace with nothing in it (no deploy/rbac), enforcing the restricted profile."""
    name = f"chart-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/warn=restricted",
    )
    yield name
    cluster.delete_namespace(name)


def render(tools: Tools, tmp_path: Path, namespace: str, values: dict[str, Any]) -> str:
    return template(tools, write_values(tmp_path, values), namespace=namespace)


def server_side(cluster: DevCluster, manifests: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=codebase-mcp-chart-test",
        *extra,
        "-f",
        "-",
        input=manifests,
        check=False,
    )


# --- schema and admission -------------------------------------------------------------------------


@pytest.mark.kubernetes
@pytest.mark.parametrize(
    "values",
    [{}, EVERYTHING_ON, EXTERNAL_URL, PODS_MIGRATE],
    ids=["defaults", "everything-on", "external-url", "pods-migrate"],
)
def test_every_rendered_object_passes_the_api_servers_validation(
    cluster: DevCluster, tools: Tools, tmp_path: Path, chart_namespace: str, values: dict[str, Any]
) -> None:
    manifests = render(tools, tmp_path, chart_namespace, values)
    proc = server_side(cluster, manifests, "--dry-run=server")
    assert proc.returncode == 0, proc.stderr
    assert PSA_WARNING not in proc.stderr, proc.stderr
    assert proc.stdout.count("serverside-applied (server dry run)") == len(objects(manifests))


@pytest.mark.kubernetes
@pytest.mark.parametrize("values", [{}, EVERYTHING_ON], ids=["defaults", "everything-on"])
def test_every_pod_template_is_admitted_under_the_restricted_profile(
    cluster: DevCluster, tools: Tools, tmp_path: Path, chart_namespace: str, values: dict[str, Any]
) -> None:
    rendered = objects(render(tools, tmp_path, chart_namespace, values))
    # The ServiceAccounts first, as in an install: with a real node the API server runs the
    # ServiceAccount admission plugin, which refuses a pod whose account does not exist.
    accounts = [doc for doc in rendered if doc.get("kind") == "ServiceAccount"]
    if accounts:
        cluster.kubectl("apply", "-n", chart_namespace, "-f", "-", input=yaml.safe_dump_all(accounts))
    for name, spec in pod_specs(rendered):
        # A StatefulSet's claim templates become volumes of its pods; any volume will do here.
        volumes = list(spec.get("volumes", []))
        known = {v["name"] for v in volumes}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in known:
                    volumes.append({"name": mount["name"], "emptyDir": {}})
                    known.add(mount["name"])
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"admission-{uuid.uuid4().hex[:6]}", "namespace": chart_namespace},
            "spec": {**spec, "volumes": volumes, "restartPolicy": spec.get("restartPolicy", "Always")},
        }
        proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"


@pytest.mark.kubernetes
def test_the_helm_test_pod_is_admitted_under_the_restricted_profile(
    cluster: DevCluster, tools: Tools, tmp_path: Path, chart_namespace: str
) -> None:
    """`helm test` runs it only where the server really answers (the real node); here: the API
    server and pod security admission accept it as rendered, with no warning."""
    (pod,) = [doc for doc in objects(render(tools, tmp_path, chart_namespace, {})) if doc["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    proc = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode == 0, proc.stderr
    assert PSA_WARNING not in proc.stderr, proc.stderr


# --- a real install -------------------------------------------------------------------------------


@pytest.mark.kubernetes
def test_chart_applies_for_real_and_its_crd_becomes_established(
    cluster: DevCluster, tools: Tools, tmp_path: Path, chart_namespace: str
) -> None:
    manifests = render(tools, tmp_path, chart_namespace, {})
    proc = server_side(cluster, manifests)
    assert proc.returncode == 0, proc.stderr
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", f"crd/{CRD_NAME}")
    for doc in objects(manifests):
        kind, name = doc["kind"].lower(), doc["metadata"]["name"]
        scope = [] if doc["kind"] == "CustomResourceDefinition" else ["-n", chart_namespace]
        got = json.loads(cluster.kubectl("get", f"{kind}/{name}", *scope, "-o", "json").stdout)
        assert got["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE

    # The migration Job (a Helm hook; here applied as a plain Job) gets its pod past admission, and
    # the fake kubelet runs it to completion.
    job = f"{RELEASE}-migrate"
    cluster.kubectl("wait", "--for=condition=Complete", "--timeout=60s", f"job/{job}", "-n", chart_namespace)

    # An IndexingRequest is accepted in the release's namespace by the chart's CRD.
    request = {
        "apiVersion": API_VERSION,
        "kind": "IndexingRequest",
        "metadata": {"name": "example", "namespace": chart_namespace},
        "spec": {"source": {"git": {"url": "file:///srv/repo.git"}}},
    }
    cluster.kubectl("create", "-f", "-", input=json.dumps(request))
    got = json.loads(cluster.kubectl("get", "ir/example", "-n", chart_namespace, "-o", "json").stdout)
    assert got["spec"]["projectId"] == "default"  # the CRD's defaulting


# --- permissions ----------------------------------------------------------------------------------

MAY: dict[str, list[tuple[str, str]]] = {
    "server": [
        ("create", "indexingrequests.codebase-mcp.dev"),
        ("patch", "indexingrequests.codebase-mcp.dev"),  # spec.status: Cancelled (cancel_indexing_job)
    ],
    "operator": [
        ("watch", "indexingrequests.codebase-mcp.dev"),
        ("patch", "indexingrequests.codebase-mcp.dev/status"),
        ("update", "indexingrequests.codebase-mcp.dev/finalizers"),
        ("create", "jobs.batch"),
        ("patch", "jobs.batch"),
        ("delete", "jobs.batch"),
        ("watch", "jobs.batch"),
        ("list", "pods"),
        ("watch", "pods"),
        ("create", "events"),
        ("list", "events"),
        ("create", "leases.coordination.k8s.io"),
    ],
    "indexer": [],
}
NOBODY_MAY = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("get", "pods/log"),
    ("update", "configmaps"),
    ("create", "serviceaccounts/token"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("update", "deployments.apps"),
    ("*", "*"),
]
CLUSTER_WIDE = [
    ("list", "namespaces"),
    ("list", "nodes"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("list", "indexingrequests.codebase-mcp.dev"),  # with --all-namespaces
    ("list", "jobs.batch"),
]
MUST_NOT: dict[str, list[tuple[str, str]]] = {
    "server": [
        ("delete", "indexingrequests.codebase-mcp.dev"),
        ("update", "indexingrequests.codebase-mcp.dev"),
        ("get", "indexingrequests.codebase-mcp.dev"),
        ("list", "indexingrequests.codebase-mcp.dev"),
        ("patch", "indexingrequests.codebase-mcp.dev/status"),
        ("create", "jobs.batch"),
        ("get", "pods"),
    ],
    "operator": [
        ("create", "indexingrequests.codebase-mcp.dev"),
        ("delete", "indexingrequests.codebase-mcp.dev"),
        ("patch", "indexingrequests.codebase-mcp.dev"),
        ("update", "indexingrequests.codebase-mcp.dev"),
        ("update", "indexingrequests.codebase-mcp.dev/status"),
        ("get", "jobs.batch"),
        ("get", "pods"),
        ("patch", "pods"),
        ("patch", "events"),
        ("create", "events.events.k8s.io"),
        ("delete", "leases.coordination.k8s.io"),
    ],
    "indexer": [
        ("get", "indexingrequests.codebase-mcp.dev"),
        ("get", "pods"),
        ("get", "jobs.batch"),
        ("get", "configmaps"),
        ("create", "events"),
    ],
}


def can_i(cluster: DevCluster, namespace: str, account: str, verb: str, resource: str, *scope: str) -> bool:
    who = f"--as=system:serviceaccount:{namespace}:{RELEASE}-{account}"
    # `can-i VERB pods/log` would ask about a pod named "log": subresources need --subresource.
    resource, _, subresource = resource.partition("/")
    flags = [who, *(scope or ("-n", namespace))] + ([f"--subresource={subresource}"] if subresource else [])
    proc = cluster.kubectl("auth", "can-i", verb, resource, *flags, check=False)
    answer = proc.stdout.strip()
    assert answer in ("yes", "no"), proc.stderr
    return answer == "yes"


@pytest.mark.kubernetes
def test_service_accounts_may_do_their_job_and_nothing_more(
    cluster: DevCluster, tools: Tools, tmp_path: Path, chart_namespace: str
) -> None:
    manifests = "\n---\n".join(
        yaml.safe_dump(d)
        for d in objects(render(tools, tmp_path, chart_namespace, {}))
        if d["kind"] in ("ServiceAccount", "Role", "RoleBinding")
    )
    assert server_side(cluster, manifests).returncode == 0
    wrong: list[str] = []
    for account in ("server", "operator", "indexer"):
        for verb, resource in MAY[account]:
            if not can_i(cluster, chart_namespace, account, verb, resource):
                wrong.append(f"{account} cannot {verb} {resource}")
        for verb, resource in MUST_NOT[account] + NOBODY_MAY:
            if can_i(cluster, chart_namespace, account, verb, resource):
                wrong.append(f"{account} can {verb} {resource}")
        for verb, resource in CLUSTER_WIDE:
            if can_i(cluster, chart_namespace, account, verb, resource, "--all-namespaces"):
                wrong.append(f"{account} can {verb} {resource} cluster-wide")
        # Nothing in another namespace either.
        for verb, resource in MAY[account]:
            if can_i(cluster, chart_namespace, account, verb, resource, "-n", "default"):
                wrong.append(f"{account} can {verb} {resource} in namespace default")
    assert not wrong, "\n".join(wrong)


# --- the migration hook's command -----------------------------------------------------------------


@pytest.fixture
def fresh_database_url(session_settings: Settings) -> Iterator[str]:
    """A new, empty database on the tests' embedded PostgreSQL."""
    admin_url = make_url(database.database_url(session_settings))
    name = f"chart_migrate_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.mark.parametrize("values", [{}, PODS_MIGRATE], ids=["hook", "init-container"])
def test_migration_command_brings_a_fresh_database_to_head(
    tools: Tools, tmp_path: Path, fresh_database_url: str, values: dict[str, Any]
) -> None:
    """The chart's migration container, run for real (its args; the image's entrypoint is
    codebase-mcp) with DATABASE_URL as its Secret would give it. Twice: an upgrade to the same
    version must be a no-op."""
    docs = objects(template(tools, write_values(tmp_path, values)))
    if values:
        spec = one(docs, "Deployment", f"{RELEASE}-server")["spec"]["template"]["spec"]
        (container,) = [c for c in spec["initContainers"] if c["name"] == "migrate"]
    else:
        (container,) = one(docs, "Job", f"{RELEASE}-migrate")["spec"]["template"]["spec"]["containers"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CODEBASE_MCP_HOME": str(tmp_path / "home")}
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    env["DATABASE_URL"] = fresh_database_url
    for _ in range(2):
        proc = subprocess.run(
            [str(CODEBASE_MCP), *container["args"]],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
    engine = create_engine(make_url(fresh_database_url))
    try:
        assert database.current_revision(engine) == database.head_revision(engine)
    finally:
        engine.dispose()


@pytest.mark.kubernetes
@pytest.mark.timeout(300)
def test_releases_install_beside_a_crd_they_do_not_own(
    cluster: DevCluster, tools: Tools, chart_namespace: str
) -> None:
    """The session applied the CRD with kubectl (as `deploy/base` users leave it): two releases in
    two namespaces install anyway and say they use it. Then the CRD as an uninstalled release
    leaves it (`helm.sh/resource-policy: keep`, its ownership annotations still on): a release under
    a new name installs beside it too, instead of failing with "invalid ownership metadata"."""
    other = f"chart-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", other)
    installed: list[tuple[str, str]] = []
    crd_name = "crd/indexingrequests.codebase-mcp.dev"
    kept_by = {
        "meta.helm.sh/release-name": "uninstalled",
        "meta.helm.sh/release-namespace": "long-gone",
        "helm.sh/resource-policy": "keep",
    }
    try:
        for release, namespace in (("first", chart_namespace), ("second", other), ("third", other)):
            if release == "third":
                before = cluster.kubectl("get", crd_name, "-o", "jsonpath={.metadata.annotations}").stdout
                assert "meta.helm.sh/release-name" not in before  # first and second took nothing over
                cluster.kubectl(
                    "annotate", crd_name, "--overwrite", *(f"{k}={v}" for k, v in kept_by.items())
                )
                cluster.kubectl("label", crd_name, "--overwrite", "app.kubernetes.io/managed-by=Helm")
            proc = helm(
                tools,
                "install",
                release,
                str(CHART),
                "-n",
                namespace,
                "--no-hooks",
                "--set",
                "database.url=postgresql://u:p@db.invalid/x",
                "--kubeconfig",
                str(cluster.kubeconfig),
                check=False,
            )
            assert proc.returncode == 0, proc.stderr
            installed.append((release, namespace))
            assert "already existed" in proc.stdout
        annotations = json.loads(
            cluster.kubectl("get", crd_name, "-o", "jsonpath={.metadata.annotations}").stdout or "{}"
        )
        assert annotations.get("meta.helm.sh/release-name") == "uninstalled"  # nobody took it over
    finally:
        cluster.kubectl("annotate", crd_name, *(f"{k}-" for k in kept_by), check=False)
        cluster.kubectl("label", crd_name, "app.kubernetes.io/managed-by-", check=False)
        for release, namespace in installed:
            helm(
                tools,
                "uninstall",
                release,
                "-n",
                namespace,
                "--kubeconfig",
                str(cluster.kubeconfig),
                check=False,
            )
        cluster.delete_namespace(other)
