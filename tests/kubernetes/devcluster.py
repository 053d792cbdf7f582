"""Driving the local control plane (deploy/dev/cluster.sh) from Python: for the Kubernetes tests
and bench/k8s_reflection.py.

A running cluster is reused when KUBECONFIG points at it (only the dev cluster: its context is
named `codebase-mcp-dev`, so a real cluster is never touched) or when `cluster.sh status` says the
one in CODEBASE_MCP_K8S_STATE is up; otherwise `cluster.sh up` starts one (building the binaries
first if the cache has none).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from codebase_operator.jobs_builder import JOB_ID_LABEL

from mcp_server.core.jobs import Job, JobStatus, JobStore
from mcp_server.runners.kube_api import API_VERSION

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_SH = ROOT / "deploy" / "dev" / "cluster.sh"
DEV_CONTEXT = "codebase-mcp-dev"
RBAC_FILES = ("operator.yaml", "mcp-server.yaml", "indexer.yaml")
CODEBASE_MCP = Path(sys.executable).with_name("codebase-mcp")
REAL_NODE_LABEL = "codebase-mcp.dev/real-node"  # also the taint's key (deploy/dev/cluster.sh)


def real_node_unavailable_reason() -> str | None:
    """Why this machine cannot run the real node (`cluster.sh check-real-node`), or None."""
    proc = subprocess.run(
        [str(CLUSTER_SH), "check-real-node"], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"cluster.sh check-real-node exited {proc.returncode}"


T = TypeVar("T")


class ClusterUnavailable(RuntimeError):
    pass


# The shared workspace claim of every test namespace (DevCluster.create_workspace_claim).
WORKSPACE_CLAIM = "workspace"


def wait_for(
    check: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Poll `check` until it returns something truthy; AssertionError naming `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {text}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env_lines(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export ") :].partition("=")
            env[key] = value
    return env


@dataclass
class DevCluster:
    kubeconfig: Path
    bin_dir: Path
    started_here: bool = False

    # --- finding or starting one ----------------------------------------------------------------

    @classmethod
    def from_kubeconfig_env(cls) -> DevCluster | None:
        path = os.environ.get("KUBECONFIG")
        if not path or not Path(path).is_file():
            return None
        config = yaml.safe_load(Path(path).read_text())
        if (config or {}).get("current-context") != DEV_CONTEXT:
            return None  # not the dev cluster: never run these tests against a real one
        bin_dir = os.environ.get("CODEBASE_MCP_K8S_BIN") or str(
            Path(shutil.which("kubectl") or "kubectl").parent
        )
        cluster = cls(Path(path), Path(bin_dir))
        return cluster if cluster.ready() else None

    @classmethod
    def from_state_dir(cls) -> DevCluster | None:
        status = subprocess.run([str(CLUSTER_SH), "status"], capture_output=True, text=True, check=False)
        if status.returncode != 0:
            return None
        env = _env_lines(
            subprocess.run([str(CLUSTER_SH), "env"], capture_output=True, text=True, check=True).stdout
        )
        return cls(Path(env["KUBECONFIG"]), Path(env["CODEBASE_MCP_K8S_BIN"]))

    @classmethod
    def start(cls, *, timeout: float, real_node: bool = False) -> DevCluster:
        command = [str(CLUSTER_SH), "up", *(["--real-node"] if real_node else [])]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ClusterUnavailable(f"deploy/dev/cluster.sh up did not finish in {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise ClusterUnavailable(f"deploy/dev/cluster.sh up failed:\n{proc.stderr[-3000:]}")
        env = _env_lines(proc.stdout)
        return cls(Path(env["KUBECONFIG"]), Path(env["CODEBASE_MCP_K8S_BIN"]), started_here=True)

    @classmethod
    def find_or_start(cls, *, timeout: float = 3600, real_node: bool = False) -> DevCluster:
        """A running dev cluster, else a new one (with a real node when asked and possible)."""
        return (
            cls.from_kubeconfig_env()
            or cls.from_state_dir()
            or cls.start(timeout=timeout, real_node=real_node)
        )

    def stop(self) -> None:
        if self.started_here:
            subprocess.run([str(CLUSTER_SH), "down"], capture_output=True, check=False, timeout=120)

    # --- using it -------------------------------------------------------------------------------

    def real_node(self) -> str | None:
        """The name of the cluster's real node (deploy/dev/cluster.sh up --real-node), if it has one."""
        proc = self.kubectl(
            "get", "nodes", "-l", f"{REAL_NODE_LABEL}=true", "-o", "jsonpath={.items[*].metadata.name}"
        )
        names = proc.stdout.split()
        return names[0] if names else None

    def ready(self) -> bool:
        try:
            return self.kubectl("get", "--raw", "/readyz", check=False, timeout=5).stdout.strip() == "ok"
        except (OSError, subprocess.TimeoutExpired):
            return False

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc

    def client(self, kubeconfig: Path | None = None) -> Any:
        from mcp_server.runners.kube_api import KubeClient, load_configuration

        return KubeClient(load_configuration(str(kubeconfig or self.kubeconfig)))

    def apply_crd(self) -> None:
        self.kubectl("apply", "-f", str(ROOT / "deploy" / "crds" / "indexingrequests.yaml"))
        self.kubectl(
            "wait", "--for=condition=Established", "--timeout=30s", "crd/indexingrequests.codebase-mcp.dev"
        )

    def create_namespace(self, prefix: str = "cbm") -> str:
        """A fresh namespace enforcing the restricted Pod Security profile, with deploy/rbac applied."""
        namespace = f"{prefix}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", namespace)
        self.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
        for name in RBAC_FILES:
            text = (ROOT / "deploy" / "rbac" / name).read_text()
            docs = [d for d in yaml.safe_load_all(text) if d]
            for doc in docs:
                doc["metadata"]["namespace"] = namespace
                for subject in doc.get("subjects") or []:
                    subject["namespace"] = namespace
            self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        wait_for(
            lambda: (
                self.kubectl("get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0
            ),
            timeout=30,
            message=f"the default service account in {namespace}",
        )
        return namespace

    def delete_namespace(self, namespace: str) -> None:
        self.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        self.kubectl(
            "delete", "persistentvolume", f"{WORKSPACE_CLAIM}-{namespace}", "--wait=false", check=False
        )

    def create_workspace_claim(self, namespace: str) -> None:
        """The shared workspace an operator needs for `source.path` requests: a claim bound to a
        volume of its own (kwok runs no kubelet, so nothing mounts it; the scheduler only needs the
        claim bound to place the pods that name it)."""
        volume = f"{WORKSPACE_CLAIM}-{namespace}"
        klass = "codebase-mcp-test-workspace"
        docs = [
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": volume},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": klass,
                    "hostPath": {"path": "/workspace"},
                    "claimRef": {"namespace": namespace, "name": WORKSPACE_CLAIM},
                },
            },
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": WORKSPACE_CLAIM, "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": klass,
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        ]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        wait_for(
            lambda: (
                self.kubectl(
                    "get", "pvc", WORKSPACE_CLAIM, "-n", namespace, "-o", "jsonpath={.status.phase}"
                ).stdout
                == "Bound"
            ),
            timeout=30,
            message=f"the workspace claim in {namespace} to be bound",
        )

    def service_account_kubeconfig(self, namespace: str, account: str, path: Path) -> Path:
        """A kubeconfig that authenticates as the ServiceAccount (so RBAC is the real one)."""
        token = self.kubectl("create", "token", account, "-n", namespace, "--duration=2h").stdout.strip()
        config = yaml.safe_load(self.kubeconfig.read_text())
        config["users"] = [{"name": account, "user": {"token": token}}]
        for context in config["contexts"]:
            context["context"]["user"] = account
            context["context"]["namespace"] = namespace
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


class OperatorProcess:
    """`codebase-mcp operator` as a subprocess, as it runs in its pod (minus the container)."""

    def __init__(self, cluster: DevCluster, namespace: str, workdir: Path, env: Mapping[str, str]) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.kubeconfig = cluster.service_account_kubeconfig(
            namespace, "codebase-mcp-operator", workdir / "operator.kubeconfig"
        )
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.log_path = workdir / "operator.log"
        self.env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "CODEBASE_K8S_NAMESPACE": namespace,
            "MAX_CONCURRENT_INDEXING_JOBS": "2",
            "POD_PENDING_TIMEOUT_SECONDS": "4",
            "OPERATOR_RESYNC_SECONDS": "1",
            "OPERATOR_METRICS_PORT": str(self.metrics_port),
            "OPERATOR_HEALTH_PORT": str(self.health_port),
            "INDEXER_IMAGE": "codebase-mcp:test",
            "JOB_TTL_SECONDS_AFTER_FINISHED": "600",
            # A restarted operator waits for the killed one's Lease to expire: keep that short.
            "OPERATOR_LEASE_SECONDS": "4",
            # The claim create_workspace_claim made: path requests need a workspace volume.
            "WORKSPACE_PVC_NAME": WORKSPACE_CLAIM,
            "WORKSPACE_MOUNT_PATH": "/workspace",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 120) -> OperatorProcess:
        # 120 s: on a loaded shared machine importing kopf, the client and SQLAlchemy takes a while.
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [str(CODEBASE_MCP), "operator", "--namespace", self.namespace, "--test-hooks"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        wait_for(
            self.healthy,
            timeout=timeout,
            interval=0.2,
            message=lambda: f"the operator's /healthz\n{self.log_tail()}",
        )
        return self

    def healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the operator exited\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as rsp:
                return bool(rsp.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as rsp:
            return str(rsp.read().decode())

    def kill(self) -> None:
        """SIGKILL: no cleanup, like a node failure or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def leads(self) -> bool:
        """Whether its log says it holds the Lease now (the last election line wins)."""
        lines = [ln for ln in self.log_text().splitlines() if "leader election:" in ln]
        return bool(lines) and "now leads" in lines[-1]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no operator log)"
        return "--- operator log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


def indexing_request(
    name: str,
    spec: Mapping[str, Any],
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": API_VERSION,
        "kind": "IndexingRequest",
        "metadata": metadata,
        "spec": dict(spec),
    }


# --- waiting for a request's row and status ---------------------------------------------------------


def row_of(store: JobStore, namespace: str, name: str) -> Job | None:
    return store.find_by_k8s_name(namespace=namespace, name=name)


def status_of(kube: Any, namespace: str, name: str) -> dict[str, Any]:
    body = kube.get_indexing_request(namespace, name) or {}
    return dict(body.get("status") or {})


def jobs_for(kube: Any, namespace: str, job_id: uuid.UUID) -> list[dict[str, Any]]:
    return list(kube.list_jobs(namespace, label_selector=f"{JOB_ID_LABEL}={job_id}"))


def wait_row(
    store: JobStore, namespace: str, name: str, status: JobStatus, operator: Any, timeout: float = 30
) -> Job:
    def check() -> Job | None:
        row = row_of(store, namespace, name)
        return row if row is not None and row.status is status else None

    return wait_for(
        check,
        timeout=timeout,
        message=lambda: (
            f"row of {name} to be {status.value}, it is {row_of(store, namespace, name)}\n"
            + operator.log_tail()
        ),
    )


def wait_phase(kube: Any, namespace: str, name: str, phase: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(
        lambda: (s := status_of(kube, namespace, name)).get("phase") == phase and s,
        timeout=timeout,
        message=lambda: f"{name} phase {phase}: {status_of(kube, namespace, name)}",
    )
