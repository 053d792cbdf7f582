"""The chart installed on the dev cluster's real node (deploy/dev/cluster.sh up --real-node), for
test_real_node.py and deploy/dev/smoke-real.sh.

Everything is real: the images from deploy/dev/images.sh, pods run by a kubelet with containerd,
the bundled PostgreSQL, Services through kube-proxy, names through CoreDNS, the workspace volume a
hostPath PersistentVolume. The test reaches the server through its Service's ClusterIP and the
database through its pod's address; both are on the node's bridge, so no packet leaves the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import yaml
from devcluster import REAL_NODE_LABEL, DevCluster, wait_for
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine

from mcp_server.core.jobs import JobStore

ROOT = Path(__file__).resolve().parents[2]
IMAGES_SH = ROOT / "deploy" / "dev" / "images.sh"
CHART = ROOT / "charts" / "codebase-mcp"
RELEASE = "codebase-mcp"  # so every object is named codebase-mcp-<component>
WORKSPACE_MOUNT = "/workspace"

ON_THE_REAL_NODE: dict[str, Any] = {
    "nodeSelector": {REAL_NODE_LABEL: "true"},
    "tolerations": [{"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
}
SMALL = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "768Mi"}}


@dataclass(frozen=True)
class Tags:
    app: str  # codebase-mcp-server, -operator, -indexer
    postgresql: str


def build_images(timeout: float = 3000) -> Tags:
    """Build (or find in the cache) the four images and import them into the node; their tags."""
    proc = subprocess.run([str(IMAGES_SH)], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"deploy/dev/images.sh failed:\n{proc.stderr[-4000:]}")
    lines = dict(line.partition("=")[::2] for line in proc.stdout.strip().splitlines()[-2:])
    return Tags(app=lines["CODEBASE_MCP_IMAGE_TAG"], postgresql=lines["CODEBASE_MCP_POSTGRESQL_TAG"])


def host_directory(prefix: str) -> Path:
    """A directory pods can read: not under pytest's tmp (mode 0700 for root), world-traversable."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    return path


def make_readable(path: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)


@dataclass
class Release:
    """One `helm install` of charts/codebase-mcp in its own namespace, on the real node."""

    cluster: DevCluster
    namespace: str
    tags: Tags
    workspace: Path
    database_dir: Path
    figures: dict[str, Any] = field(default_factory=dict)
    _engine: Engine | None = None

    # --- install ----------------------------------------------------------------------------

    def values(self) -> dict[str, Any]:
        return {
            # The session's fixture applied deploy/crds already (the same CRD) and owns it.
            "crds": {"install": False},
            "image": {"tag": self.tags.app, "pullPolicy": "Never"},
            "postgresql": {
                "enabled": True,
                "image": {
                    "repository": "codebase-mcp-postgresql",
                    "tag": self.tags.postgresql,
                    "pullPolicy": "Never",
                },
                "persistence": {"size": "1Gi"},
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}},
                **ON_THE_REAL_NODE,
            },
            "workspace": {"existingClaim": "workspace", "mountPath": WORKSPACE_MOUNT},
            "server": {"resources": SMALL, **ON_THE_REAL_NODE},
            "operator": {"resources": SMALL, "resyncSeconds": 2, **ON_THE_REAL_NODE},
            "indexer": {
                "podPendingTimeoutSeconds": 300,
                "jobTtlSecondsAfterFinished": 900,
                "resources": {
                    "requests": {"cpu": "100m", "memory": "256Mi"},
                    "limits": {"cpu": "2", "memory": "1Gi"},
                },
                **ON_THE_REAL_NODE,
            },
        }

    def create_volumes(self) -> None:
        """The workspace (read-only, the repositories) and the database's volume: hostPath PVs."""
        ns = self.namespace
        docs = [
            _pv(f"{ns}-workspace", self.workspace, "ReadOnlyMany", ns, "workspace"),
            _pvc("workspace", ns, "ReadOnlyMany", f"{ns}-workspace"),
            _pv(f"{ns}-database", self.database_dir, "ReadWriteOnce", ns, f"data-{RELEASE}-postgresql-0"),
        ]
        self.cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def install(self, values_file: Path) -> None:
        t0 = time.monotonic()
        self.helm("install", RELEASE, str(CHART), "--namespace", self.namespace, "-f", str(values_file))
        for kind, name in (
            ("statefulset", f"{RELEASE}-postgresql"),
            ("deployment", f"{RELEASE}-server"),
            ("deployment", f"{RELEASE}-operator"),
        ):
            self.rollout(kind, name)
        self.figures["install_to_ready_s"] = round(time.monotonic() - t0, 1)

    def rollout(self, kind: str, name: str, timeout: float = 600) -> None:
        proc = self.kubectl(
            "rollout",
            "status",
            f"{kind}/{name}",
            f"--timeout={int(timeout)}s",
            check=False,
            timeout=timeout + 30,
        )
        if proc.returncode != 0:
            raise AssertionError(f"{kind}/{name} did not become ready: {proc.stderr}\n{self.describe_pods()}")

    def helm(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.cluster.bin_dir / "helm"), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def kubectl(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl("-n", self.namespace, *args, **kwargs)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def describe_pods(self) -> str:
        proc = self.kubectl("get", "pods", "-o", "wide", check=False)
        events = self.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False)
        return f"{proc.stdout}\n{events.stdout[-3000:]}"

    # --- using it -----------------------------------------------------------------------------

    def secret(self, name: str, key: str) -> str:
        import base64

        data = self.get("secret", name)["data"]
        return base64.b64decode(data[key]).decode()

    @property
    def server_url(self) -> str:
        service = self.get("service", f"{RELEASE}-server")
        return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}/mcp"

    @property
    def token(self) -> str:
        return self.secret(f"{RELEASE}-auth", "token")

    def engine(self) -> Engine:
        """The bundled database, at its pod's address (the test reads rows, the product writes them)."""
        if self._engine is None:
            pod = self.get("pod", f"{RELEASE}-postgresql-0")
            url = URL.create(
                "postgresql+psycopg",
                username="codebase",
                password=self.secret(f"{RELEASE}-postgresql", "password"),
                host=pod["status"]["podIP"],
                port=5432,
                database="codebase",
            )
            self._engine = create_engine(url, pool_pre_ping=True)
        return self._engine

    def store(self) -> JobStore:
        return JobStore(self.engine())

    def call_tools(self, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Each tool call's structured result, over one streamable HTTP session with the bearer token."""

        async def run() -> list[dict[str, Any]]:
            # The Service's cluster DNS name as Host, as an in-cluster client sends it (the server
            # answers only to names the chart allows; this machine's resolver does not know the
            # cluster's names, so the connection goes to the Service's IP).
            host = f"{RELEASE}-server.{self.namespace}.svc"
            transport = StreamableHttpTransport(
                self.server_url, headers={"Authorization": f"Bearer {self.token}", "Host": host}
            )
            async with Client(transport, timeout=60) as client:
                results = []
                for name, arguments in calls:
                    result = await client.call_tool(name, arguments)
                    results.append(dict(result.structured_content or {}))
                return results

        return anyio.run(run)

    def tool(self, name: str, **arguments: Any) -> dict[str, Any]:
        return self.call_tools((name, arguments))[0]

    def indexer_pods(self, job_id: uuid.UUID | str) -> list[dict[str, Any]]:
        return list(self.get("pods", "-l", f"codebase-mcp.dev/job-id={job_id}")["items"])

    @contextmanager
    def operator_env(self, **env: str) -> Iterator[None]:
        """Run the operator with these settings (a real rollout of its Deployment), then restore it."""
        deployment = f"deployment/{RELEASE}-operator"
        self.kubectl("set", "env", deployment, *(f"{k}={v}" for k, v in env.items()))
        self.rollout("deployment", f"{RELEASE}-operator")
        try:
            yield
        finally:
            self.kubectl("set", "env", deployment, *(f"{k}-" for k in env))
            self.rollout("deployment", f"{RELEASE}-operator")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _pv(name: str, path: Path, mode: str, namespace: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name, "labels": {"codebase-mcp.dev/test": namespace}},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": [mode],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
        },
    }


def _pvc(name: str, namespace: str, mode: str, volume: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": [mode],
            "storageClassName": "",
            "volumeName": volume,
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


# --- repositories ---------------------------------------------------------------------------------


def write_repository(path: Path, *, files: int, marker: str) -> None:
    """`files` Python modules of 24 functions each (several chunks a module, so a run lasts long
    enough on an idle machine for its live counters to be seen: with 6 functions a module, 1,500
    files were indexed in 2 s and no poll saw them between 0 and the total); one of them defines
    `marker` (a word no other file has)."""
    for i in range(files):
        package = path / f"pkg{i // 100:02d}"
        package.mkdir(parents=True, exist_ok=True)
        body = [f'"""Module {i} of a generated repository."""', ""]
        for j in range(24):
            body += [
                f"def handler_{i}_{j}(payload, retries={j}):",
                f'    """Handle payload {j} of module {i}: validate, transform and store it."""',
                "    values = [item * 2 for item in payload if item is not None]",
                f"    checked = [value for value in values if value % {j + 2} != {i % (j + 2)}]",
                "    if not checked and retries:",
                f"        return handler_{i}_{j}(payload[1:], retries - 1)",
                f"    return sum(checked) + {i * 100 + j}",
                "",
            ]
        if i == files // 2:
            body += [
                f"def {marker}(flux, capacitor):",
                f'    """The {marker} routine: calibrate the flux against the capacitor."""',
                "    return flux * capacitor",
                "",
            ]
        (package / f"module_{i}.py").write_text("\n".join(body))


def wait_until(check: Any, *, timeout: float, message: Any, interval: float = 0.2) -> Any:
    return wait_for(check, timeout=timeout, interval=interval, message=message)
