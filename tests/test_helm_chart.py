"""The Helm chart (charts/codebase-mcp) without a cluster: lint, render, schema, labels, security,
and agreement with what the rest of the repository says (deploy/crds, deploy/rbac, deploy/base, the
CLI, the settings). The same chart against a real API server: tests/kubernetes/test_chart_install.py.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_chart import (
    CHART,
    RELEASE,
    ROOT,
    SCHEMA_ERROR,
    VALUE_SETS,
    Tools,
    containers,
    extract_tools,
    find,
    helm,
    is_hook,
    objects,
    one,
    pod_specs,
    template,
    write_values,
)

from mcp_server.core.settings import GROUPS, load_settings
from mcp_server.frontends.cli import build_parser
from mcp_server.runners.kube_api import API_VERSION

STANDARD_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/component",
)
# Operator settings the chart passes on before mcp_server/core/settings.py reads them (the operator
# ignores unknown variables): GPU requests and scheduling of indexer pods.
PENDING_SETTINGS: set[str] = set()


@pytest.fixture(scope="session")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    return extract_tools(tmp_path_factory.mktemp("helm-bin"))


@pytest.fixture(scope="session")
def rendered(tools: Tools, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each value set of helm_chart.VALUE_SETS, rendered once."""
    directory = tmp_path_factory.mktemp("values")
    return {
        name: objects(template(tools, write_values(directory, values, name)))
        for name, values in VALUE_SETS.items()
    }


def config_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", f"{RELEASE}-config")["data"])


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- lint and render ------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_chart_passes_helm_lint_strict(tools: Tools, tmp_path: Path, value_set: str) -> None:
    values = write_values(tmp_path, VALUE_SETS[value_set])
    proc = helm(tools, "lint", "--strict", str(CHART), "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in proc.stdout


def test_default_install_is_server_operator_crd_and_least_privilege_rbac(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["defaults"]
    kinds = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert kinds == sorted(
        [
            "ConfigMap/codebase-mcp-config",
            "CustomResourceDefinition/indexingrequests.codebase-mcp.dev",
            "Deployment/codebase-mcp-operator",
            "Deployment/codebase-mcp-server",
            "Job/codebase-mcp-migrate",
            "Pod/codebase-mcp-test-server",
            "Role/codebase-mcp-operator",
            "Role/codebase-mcp-server",
            "RoleBinding/codebase-mcp-operator",
            "RoleBinding/codebase-mcp-server",
            "Secret/codebase-mcp-auth",
            "Service/codebase-mcp-server",
            "ServiceAccount/codebase-mcp-indexer",
            "ServiceAccount/codebase-mcp-operator",
            "ServiceAccount/codebase-mcp-server",
        ]
    )
    # External database by default: no database Secret is made, the existing one is referenced.
    config = config_of(docs)
    assert (config["DATABASE_URL_SECRET_NAME"], config["DATABASE_URL_SECRET_KEY"]) == (
        "codebase-mcp-database",
        "url",
    )
    assert config["CODEBASE_LAUNCHER"] == "kubernetes"
    assert config["INDEXER_IMAGE"] == "codebase-mcp-indexer:0.1.0"
    assert config["INDEXER_SERVICE_ACCOUNT"] == "codebase-mcp-indexer"


def test_operator_is_a_single_recreated_replica_with_liveness_and_metrics(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for value_set in ("defaults", "everything-on"):
        docs = rendered[value_set]
        operator = one(docs, "Deployment", f"{RELEASE}-operator")
        assert operator["spec"]["replicas"] == 1
        assert operator["spec"]["strategy"] == {"type": "Recreate"}
        (container,) = operator["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        config = config_of(docs)
        assert ports == {
            "metrics": int(config["OPERATOR_METRICS_PORT"]),
            "health": int(config["OPERATOR_HEALTH_PORT"]),
        }
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        assert env_of(container)["CODEBASE_K8S_NAMESPACE"] == {
            "fieldRef": {"fieldPath": "metadata.namespace"}
        }


def test_server_serves_http_with_the_token_from_a_secret(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["defaults"]
    server = one(docs, "Deployment", f"{RELEASE}-server")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"]
    env = env_of(container)
    assert env["CODEBASE_MCP_AUTH_TOKEN"] == {"secretKeyRef": {"name": "codebase-mcp-auth", "key": "token"}}
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "codebase-mcp-database", "key": "url"}}
    # /healthz is served without the token; every other path needs it.
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    token = one(docs, "Secret", "codebase-mcp-auth")["data"]["token"]
    assert len(token) >= 40  # base64 of 40 random characters
    service = one(docs, "Service", f"{RELEASE}-server")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http"}]

    # An existing Secret replaces the generated one.
    docs = rendered["everything-on"]
    assert not find(docs, "Secret", "codebase-mcp-auth")
    (container,) = one(docs, "Deployment", f"{RELEASE}-server")["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["CODEBASE_MCP_AUTH_TOKEN"] == {
        "secretKeyRef": {"name": "mcp-token", "key": "bearer"}
    }


def _quantity_bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9, "MB": 2**20}
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    return int(float(number) * units.get(unit, 1))


def test_the_bundled_database_has_the_shared_memory_the_vector_index_build_uses(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """Found on the real node: a container's default 64 MB /dev/shm failed the first index of
    1,500 files ("could not resize shared memory segment") when the parallel HNSW build asked for
    its graph's shared memory, up to the build's memory budget."""
    from mcp_server.core.settings import IndexingSettings
    from mcp_server.index.vector_indexes import BuildBudget

    docs = rendered["everything-on"]
    config = one(docs, "ConfigMap", f"{RELEASE}-config")["data"]
    indexing = IndexingSettings.model_validate(
        {key: value for key, value in config.items() if key.startswith("CODEBASE_VECTOR_BUILD_")}
    )
    budget = BuildBudget.for_server(
        embedded=False, memory_mb=indexing.vector_build_memory_mb, workers=indexing.vector_build_workers
    )
    assert budget.workers > 0  # a parallel build, so the graph lives in /dev/shm
    spec = one(docs, "StatefulSet", f"{RELEASE}-postgresql")["spec"]["template"]["spec"]
    (mount,) = [m for m in spec["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert volume["emptyDir"]["medium"] == "Memory"
    assert _quantity_bytes(volume["emptyDir"]["sizeLimit"]) > budget.memory_bytes


def test_everything_on_adds_the_database_the_workspace_and_gpus(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["everything-on"]
    statefulset = one(docs, "StatefulSet", f"{RELEASE}-postgresql")
    assert statefulset["spec"]["template"]["spec"]["containers"][0]["image"] == "pgvector/pgvector:0.8.0-pg17"
    claim = statefulset["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "20Gi" and claim["storageClassName"] == "fast"
    secret = one(docs, "Secret", f"{RELEASE}-postgresql")["stringData"]
    assert secret["url"] == "postgresql://codebase:s3cret@codebase-mcp-postgresql:5432/codebase"
    assert one(docs, "Service", f"{RELEASE}-postgresql")["spec"]["clusterIP"] == "None"

    # The bundled database does not exist before install: no pre-install hook; pods wait and migrate.
    assert not find(docs, "Job")
    for name in ("server", "operator"):
        spec = one(docs, "Deployment", f"{RELEASE}-{name}")["spec"]["template"]["spec"]
        assert [c["name"] for c in spec["initContainers"]] == ["wait-for-database", "migrate"]
        assert spec["initContainers"][1]["args"] == ["db", "upgrade"]
        assert spec["initContainers"][1]["image"] == spec["containers"][0]["image"]
        assert spec["imagePullSecrets"] == [{"name": "registry-credentials"}]

    config = config_of(docs)
    assert config["DATABASE_URL_SECRET_NAME"] == f"{RELEASE}-postgresql"
    assert config["INDEXER_IMAGE"] == "registry.example.com/team/codebase-mcp-indexer:1.2.3"
    assert config["INDEXER_IMAGE_PULL_POLICY"] == "Always"
    assert (config["INDEXER_GPU_COUNT"], config["INDEXER_GPU_RESOURCE_NAME"]) == ("1", "nvidia.com/gpu")
    assert json.loads(config["INDEXER_NODE_SELECTOR"]) == {"accelerator": "nvidia"}
    assert json.loads(config["INDEXER_TOLERATIONS"])[0]["key"] == "nvidia.com/gpu"
    assert config["INDEXER_ENV_SECRET_NAME"] == "embedding-credentials"
    assert (config["WORKSPACE_PVC_NAME"], config["WORKSPACE_MOUNT_PATH"]) == ("repositories", "/srv/repos")

    server = one(docs, "Deployment", f"{RELEASE}-server")["spec"]["template"]["spec"]
    mount = next(m for m in server["containers"][0]["volumeMounts"] if m["name"] == "workspace")
    assert mount == {"name": "workspace", "mountPath": "/srv/repos", "readOnly": True}
    volume = next(v for v in server["volumes"] if v["name"] == "workspace")
    assert volume["persistentVolumeClaim"] == {"claimName": "repositories", "readOnly": True}
    assert env_of(server["containers"][0])["CODEBASE_ALLOWED_ROOTS"] == "/srv/repos"
    assert server["containers"][0]["envFrom"][1] == {"secretRef": {"name": "embedding-credentials"}}
    indexer_sa = one(docs, "ServiceAccount", f"{RELEASE}-indexer")
    assert indexer_sa["imagePullSecrets"] == [{"name": "registry-credentials"}]


def test_database_url_value_gives_the_migration_hook_its_own_secret(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["external-url"]
    release_secret = one(docs, "Secret", f"{RELEASE}-database")
    hook_secret = one(docs, "Secret", f"{RELEASE}-database-migration")
    assert not is_hook(release_secret)
    assert release_secret["stringData"] == hook_secret["stringData"]
    job = one(docs, "Job", f"{RELEASE}-migrate")
    # The Secret must exist before the Job: a lower hook weight, deleted with it.
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        job["metadata"]["annotations"]["helm.sh/hook-weight"]
    )
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["DATABASE_URL"] == {
        "secretKeyRef": {"name": f"{RELEASE}-database-migration", "key": "url"}
    }
    assert config_of(docs)["DATABASE_URL_SECRET_NAME"] == f"{RELEASE}-database"
    assert config_of(docs)["INDEXER_GPU_COUNT"] == "2"


def test_migration_hook_runs_before_install_and_upgrade_and_is_cleaned_up(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    job = one(rendered["defaults"], "Job", f"{RELEASE}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = job["spec"]["template"]["spec"]
    # Runs before the release's ServiceAccounts exist: the default one, without a token.
    assert "serviceAccountName" not in spec and spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["args"] == ["db", "upgrade"]
    assert not find(rendered["pods-migrate"], "Job")


def test_both_an_external_url_and_the_bundled_database_is_refused(tools: Tools, tmp_path: Path) -> None:
    values = write_values(
        tmp_path, {"postgresql": {"enabled": True}, "database": {"url": "postgresql://a@b/c"}}
    )
    proc = helm(tools, "template", RELEASE, str(CHART), "-f", str(values), check=False)
    assert proc.returncode != 0 and "not both" in proc.stderr


# --- the values schema ----------------------------------------------------------------------------

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": ({"replicas": 2}, "additional properties 'replicas' not allowed"),
    "unknown nested key (a typo)": ({"server": {"replicas": 2}}, "'replicas' not allowed"),
    "negative replicas": ({"server": {"replicaCount": -1}}, "/server/replicaCount"),
    "replicas as a string": ({"server": {"replicaCount": "two"}}, "/server/replicaCount"),
    "zero concurrent jobs": ({"indexer": {"maxConcurrentJobs": 0}}, "/indexer/maxConcurrentJobs"),
    "too many concurrent jobs": ({"indexer": {"maxConcurrentJobs": 65}}, "/indexer/maxConcurrentJobs"),
    "job timeout under the CRD's minimum": (
        {"indexer": {"jobTimeoutSeconds": 10}},
        "/indexer/jobTimeoutSeconds",
    ),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "bad database pull policy": (
        {"postgresql": {"image": {"pullPolicy": "always"}}},
        "/postgresql/image/pullPolicy",
    ),
    "bad log level": ({"logLevel": "verbose"}, "/logLevel"),
    "bad embedding backend": ({"embedding": {"backend": "word2vec"}}, "/embedding/backend"),
    "not a quantity": (
        {"indexer": {"resources": {"limits": {"cpu": "lots"}}}},
        "/indexer/resources/limits/cpu",
    ),
    "indexer resource the operator cannot set": (
        {"indexer": {"resources": {"limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1Gi"}}}},
        "'ephemeral-storage' not allowed",
    ),
    "port out of range": ({"server": {"port": 70000}}, "/server/port"),
    "bad service type": ({"server": {"service": {"type": "Ingress"}}}, "/server/service/type"),
    "gpu flag as a string": ({"indexer": {"gpu": {"enabled": "yes"}}}, "/indexer/gpu/enabled"),
    "relative workspace path": ({"workspace": {"mountPath": "workspace"}}, "/workspace/mountPath"),
    "workspace at /tmp": ({"workspace": {"mountPath": "/tmp"}}, "/workspace/mountPath"),
    "database url that is not PostgreSQL": ({"database": {"url": "mysql://db/x"}}, "/database/url"),
    "bad migration mode": ({"migrations": {"mode": "manual"}}, "/migrations/mode"),
    "image pull secrets as strings": ({"imagePullSecrets": ["registry"]}, "/imagePullSecrets/0"),
    "tolerations as a map": ({"server": {"tolerations": {"key": "x"}}}, "/server/tolerations"),
    "crds.install as a string": ({"crds": {"install": "true"}}, "/crds/install"),
    "a tag with an @ but no digest": ({"image": {"tag": "1.0@latest"}}, "/image/tag"),
}


@pytest.mark.parametrize(
    ("tag", "suffix"),
    [("sha256:" + "a" * 64, "@sha256:" + "a" * 64), ("1.2@sha256:" + "b" * 64, ":1.2@sha256:" + "b" * 64)],
    ids=["digest", "tag-and-digest"],
)
def test_images_may_be_pinned_by_digest(tools: Tools, tmp_path: Path, tag: str, suffix: str) -> None:
    values = write_values(tmp_path, {"image": {"tag": tag, "registry": "registry.example/acme"}})
    docs = objects(helm(tools, "template", RELEASE, str(CHART), "-f", str(values)).stdout)
    operator = one(docs, "Deployment", f"{RELEASE}-operator")
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example/acme/codebase-mcp-operator" + suffix
    assert config_of(docs)["INDEXER_IMAGE"] == "registry.example/acme/codebase-mcp-indexer" + suffix


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_schema_rejects_bad_values(tools: Tools, tmp_path: Path, case: str) -> None:
    values, expected = BAD_VALUES[case]
    proc = helm(
        tools, "template", RELEASE, str(CHART), "-f", str(write_values(tmp_path, values)), check=False
    )
    assert proc.returncode != 0, f"{case}: helm accepted {values}"
    assert SCHEMA_ERROR in proc.stderr, proc.stderr
    assert expected in proc.stderr, proc.stderr


# --- what every object must have ------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_object_carries_the_standard_labels(
    rendered: dict[str, list[dict[str, Any]]], value_set: str
) -> None:
    for doc in rendered[value_set]:
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        labels = doc["metadata"].get("labels") or {}
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert not missing, f"{name} lacks {missing}"
        assert (
            labels["app.kubernetes.io/instance"] == RELEASE
            and labels["app.kubernetes.io/part-of"] == "codebase-mcp"
        )
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert all(label in pod_labels for label in STANDARD_LABELS), name
            selector = doc["spec"].get("selector", {}).get("matchLabels", {})
            assert selector.items() <= pod_labels.items(), name
            # Selectors are immutable: nothing in them may change with a chart or app version.
            assert not {"app.kubernetes.io/version", "helm.sh/chart"} & selector.keys(), name


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_pod_meets_the_restricted_pod_security_profile(
    rendered: dict[str, list[dict[str, Any]]], value_set: str
) -> None:
    for name, spec in pod_specs(rendered[value_set]):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in containers(spec):
            where = f"{name} container {container['name']}"
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["capabilities"] == {"drop": ["ALL"]}, where
            assert container["resources"].get("requests"), f"{where} has no resource requests"
            assert container["resources"].get("limits", {}).get("memory"), f"{where} has no memory limit"
            if container["name"] != "wait-for-database":
                tmp = next((m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"), None)
                assert tmp is not None and "emptyDir" in volumes[tmp["name"]], (
                    f"{where}: /tmp is not an emptyDir"
                )


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_nothing_is_cluster_scoped_but_the_crd(
    rendered: dict[str, list[dict[str, Any]]], value_set: str
) -> None:
    for doc in rendered[value_set]:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        assert doc["kind"] not in ("ClusterRole", "ClusterRoleBinding", "Namespace"), doc["kind"]
        assert doc["metadata"]["namespace"] == RELEASE, f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_every_container_command_is_a_codebase_mcp_command(
    rendered: dict[str, list[dict[str, Any]]], value_set: str
) -> None:
    """The images' ENTRYPOINT is `codebase-mcp`; `args` must parse with the real CLI parser."""
    parser = build_parser()
    for name, spec in pod_specs(rendered[value_set]):
        if name == "Pod/codebase-mcp-test-server":
            continue  # `helm test`: a Python one-liner in the server image, tested on its own below
        for container in containers(spec):
            if "codebase-mcp-" not in container["image"]:
                continue  # the database image
            assert "command" not in container, f"{name}/{container['name']} overrides the entrypoint"
            parser.parse_args(container["args"])


def test_config_map_holds_settings_the_program_reads(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    aliases = {
        str(field.validation_alias) for group in GROUPS.values() for field in group.model_fields.values()
    }
    for value_set, docs in rendered.items():
        config = config_of(docs)
        unknown = set(config) - aliases - PENDING_SETTINGS
        assert not unknown, f"{value_set}: the ConfigMap sets variables no setting reads: {sorted(unknown)}"
        # And the values are valid settings, as the server and the operator will load them.
        for key, value in config.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        assert settings.jobs.launcher == "kubernetes"
        assert settings.jobs.max_concurrent == int(config["MAX_CONCURRENT_INDEXING_JOBS"])
        for key in config:
            monkeypatch.delenv(key)


# --- agreement with the rest of the repository ----------------------------------------------------


def test_crd_template_is_deploy_crds_with_labels_added(rendered: dict[str, list[dict[str, Any]]]) -> None:
    source = ROOT / "deploy" / "crds" / "indexingrequests.yaml"
    assert (CHART / "files" / "indexingrequests.yaml").read_bytes() == source.read_bytes(), (
        "charts/codebase-mcp/files/indexingrequests.yaml differs from deploy/crds/: run deploy/render.sh"
    )
    expected = yaml.safe_load(source.read_text())
    crd = one(rendered["defaults"], "CustomResourceDefinition", "indexingrequests.codebase-mcp.dev")
    assert crd["spec"] == expected["spec"]
    assert expected["metadata"]["labels"].items() <= crd["metadata"]["labels"].items()
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_crd_can_be_left_out(tools: Tools, tmp_path: Path) -> None:
    docs = objects(template(tools, write_values(tmp_path, {"crds": {"install": False, "keep": False}})))
    assert not find(docs, "CustomResourceDefinition")


@pytest.mark.parametrize(
    ("component", "rbac_file"), [("server", "mcp-server.yaml"), ("operator", "operator.yaml")]
)
def test_roles_grant_exactly_what_deploy_rbac_grants(
    rendered: dict[str, list[dict[str, Any]]], component: str, rbac_file: str
) -> None:
    reference = [d for d in yaml.safe_load_all((ROOT / "deploy" / "rbac" / rbac_file).read_text()) if d]
    (expected,) = [d for d in reference if d["kind"] == "Role"]
    role = one(rendered["defaults"], "Role", f"{RELEASE}-{component}")
    assert role["rules"] == expected["rules"]
    binding = one(rendered["defaults"], "RoleBinding", f"{RELEASE}-{component}")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-{component}", "namespace": RELEASE}
    ]


def test_indexer_service_account_has_no_role_and_no_token(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["defaults"]
    assert one(docs, "ServiceAccount", f"{RELEASE}-indexer")["automountServiceAccountToken"] is False
    for binding in find(docs, "RoleBinding"):
        assert all(s["name"] != f"{RELEASE}-indexer" for s in binding["subjects"])


def test_deploy_base_is_the_rendered_chart(tools: Tools, tmp_path: Path) -> None:
    """deploy/base is generated by deploy/render.sh; it must never drift from the chart."""
    out = tmp_path / "base"
    proc = subprocess.run(
        [str(ROOT / "deploy" / "render.sh"), "--out", str(out)],
        env={**os.environ, "HELM": str(tools.helm)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    committed = ROOT / "deploy" / "base"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in committed.iterdir()), "run deploy/render.sh"
    for name in names:
        assert (out / name).read_text() == (committed / name).read_text(), (
            f"deploy/base/{name}: run deploy/render.sh"
        )


def test_deploy_base_has_no_helm_bookkeeping_and_no_secret_values() -> None:
    base = ROOT / "deploy" / "base"
    text = "".join(p.read_text() for p in base.glob("*.yaml"))
    assert "helm.sh/" not in text and "managed-by: Helm" not in text
    docs = [d for p in sorted(base.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d]
    assert not [d for d in docs if d["kind"] in ("Secret", "Job")]


def test_example_overlay_moves_everything_to_its_namespace_and_registry(tools: Tools) -> None:
    proc = subprocess.run(
        [str(tools.kubectl), "kustomize", str(ROOT / "deploy" / "overlays" / "example")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    docs = objects(proc.stdout)
    for doc in docs:
        if doc["kind"] not in ("CustomResourceDefinition", "Namespace"):
            assert doc["metadata"]["namespace"] == "code-search", doc["metadata"]["name"]
    for binding in find(docs, "RoleBinding"):
        assert all(s["namespace"] == "code-search" for s in binding["subjects"])
    images = {c["image"] for _, spec in pod_specs(docs) for c in containers(spec)}
    assert images == {
        "registry.example.com/codebase-mcp-server:0.1.0",
        "registry.example.com/codebase-mcp-operator:0.1.0",
    }
    config = config_of(docs)
    assert config["INDEXER_IMAGE"] == "registry.example.com/codebase-mcp-indexer:0.1.0"
    assert config["WORKSPACE_PVC_NAME"] == "repositories"


def test_notes_tell_how_to_connect_an_mcp_client_and_index(tools: Tools) -> None:
    proc = helm(tools, "install", RELEASE, str(CHART), "--dry-run=client", "--namespace", "search")
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert "kubectl -n search port-forward service/codebase-mcp-server 8000:8000" in notes
    assert "get secret codebase-mcp-auth -o jsonpath='{.data.token}'" in notes
    assert '"url": "http://127.0.0.1:8000/mcp"' in notes and "Authorization" in notes
    assert "kind: IndexingRequest" in notes
    assert f"apiVersion: {API_VERSION}" in notes  # read from the chart's CRD, not spelled out


# --- metrics ----------------------------------------------------------------------------------------


def test_the_service_monitor_is_optional_and_scrapes_metrics_with_the_servers_token(
    tools: Tools, tmp_path: Path, rendered: dict[str, list[dict[str, Any]]]
) -> None:
    assert not find(rendered["defaults"], "ServiceMonitor")
    docs = objects(
        template(tools, write_values(tmp_path, {"metrics": {"serviceMonitor": {"enabled": True}}}))
    )
    (monitor,) = find(docs, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics" and endpoint["port"] == "http"
    server = one(docs, "Deployment", f"{RELEASE}-server")
    token = env_of(containers(server["spec"]["template"]["spec"])[0])["CODEBASE_MCP_AUTH_TOKEN"]
    assert endpoint["authorization"]["credentials"] == token["secretKeyRef"]
    service = one(docs, "Service", f"{RELEASE}-server")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_the_grafana_dashboard_charts_the_servers_metrics() -> None:
    dashboard = json.loads((CHART / "dashboards" / "codebase-mcp.json").read_text())
    expressions = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for metric in (
        "codebase_mcp_jobs",
        "codebase_mcp_search_seconds_bucket",
        "codebase_mcp_tool_calls_total",
        "codebase_mcp_index_chunks",
        "codebase_mcp_index_bytes",
    ):
        assert metric in expressions, metric


def test_helm_test_asks_the_servers_healthz_through_its_service(tools: Tools) -> None:
    docs = objects(template(tools, namespace="search"))
    pod = one(docs, "Pod", "codebase-mcp-test-server")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = pod["spec"]["containers"]
    assert (
        container["image"]
        == one(docs, "Deployment", "codebase-mcp-server")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
    )
    assert container["command"][:2] == ["python", "-c"]
    assert container["command"][-1] == "http://codebase-mcp-server.search.svc:8000/healthz"
    service = one(docs, "Service", "codebase-mcp-server")
    assert service["spec"]["ports"][0]["port"] == 8000
    # Restricted, like the other pods; no token, no API access.
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"


def test_the_healthz_check_passes_against_a_server_that_answers(tools: Tools) -> None:
    pod = one(objects(template(tools)), "Pod", "codebase-mcp-test-server")
    script = pod["spec"]["containers"][0]["command"][2]

    class Healthz(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Healthz) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
        proc = subprocess.run(
            [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=60, check=False
        )
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"{url} 200 ok"


def test_helm_test_can_be_turned_off(tools: Tools, tmp_path: Path) -> None:
    docs = objects(template(tools, write_values(tmp_path, {"tests": {"enabled": False}})))
    assert find(docs, "Pod") == []


def test_the_helm_test_pod_is_scheduled_like_the_server(tools: Tools, tmp_path: Path) -> None:
    """Without the server's scheduling the check may land on a node that cannot run the server's
    image (in the dev cluster: the kwok node, where no container runs)."""
    scheduling = {"nodeSelector": {"pool": "search"}, "tolerations": [{"key": "pool", "operator": "Exists"}]}
    docs = objects(template(tools, write_values(tmp_path, {"server": scheduling})))
    pod = one(docs, "Pod", "codebase-mcp-test-server")
    server = one(docs, "Deployment", "codebase-mcp-server")["spec"]["template"]["spec"]
    assert pod["spec"]["nodeSelector"] == server["nodeSelector"] == {"pool": "search"}
    assert pod["spec"]["tolerations"] == server["tolerations"]
