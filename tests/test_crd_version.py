"""The IndexingRequest API version lives in one place, mcp_server/runners/kube_api.py: the CRD
serves and stores exactly that version, and nothing else in the code or the chart spells it out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mcp_server.runners.kube_api import API_VERSION, GROUP, KIND, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[1]
CRD_COPIES = [
    ROOT / "deploy/crds/indexingrequests.yaml",
    ROOT / "charts/codebase-mcp/files/indexingrequests.yaml",
    ROOT / "deploy/base/crd.yaml",
]
# "codebase-mcp.dev/v1alpha1" and the like: the group followed by a version.
SPELLED_OUT = re.compile(re.escape(GROUP) + r"/v\d+(?:(?:alpha|beta)\d+)?\b")


@pytest.mark.parametrize("path", CRD_COPIES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_crd_serves_and_stores_the_version_the_code_uses(path: Path) -> None:
    crd = yaml.safe_load(path.read_text())
    assert (crd["spec"]["group"], crd["spec"]["names"]["plural"], crd["spec"]["names"]["kind"]) == (
        GROUP,
        PLURAL,
        KIND,
    )
    versions = crd["spec"]["versions"]
    (storage,) = [v for v in versions if v["storage"]]
    assert storage["name"] == VERSION and storage["served"]
    # While v1alpha1 is the only version; the v1 plan (docs/kubernetes.md) serves both for a release.
    assert [v["name"] for v in versions if v["served"]] == [VERSION]


def test_no_module_or_template_spells_out_the_api_version() -> None:
    sources = [
        *(ROOT / "mcp_server").rglob("*.py"),
        *(ROOT / "operator").rglob("*.py"),
        *(ROOT / "charts/codebase-mcp/templates").iterdir(),
        *(ROOT / "tests").rglob("*.py"),
    ]
    allowed = {ROOT / "mcp_server/runners/kube_api.py", Path(__file__).resolve()}
    offenders = [
        str(path.relative_to(ROOT))
        for path in sources
        if path.is_file() and path not in allowed and SPELLED_OUT.search(path.read_text())
    ]
    assert offenders == [], 'use kube_api.API_VERSION (templates: include "codebase-mcp.apiVersion")'
    assert f"{GROUP}/{VERSION}" == API_VERSION


def test_the_examples_use_the_served_version() -> None:
    for path in sorted((ROOT / "deploy/examples").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == KIND:
                assert doc["apiVersion"] == API_VERSION, path
