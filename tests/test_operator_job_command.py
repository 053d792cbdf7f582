"""The Job's container command, run for real on this machine against the embedded database.

Under kwok no container runs, so this is where the pod's side of the contract is proved: the exact
command (and the literal environment) from the manifest the operator builds indexes a repository
and exits 0, leaving chunks in the database and the terminal state to the operator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from codebase_operator.jobs_builder import build_job
from codebase_operator.spec import parse_spec
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from mcp_server.core.jobs import JobStatus, JobStore
from mcp_server.core.settings import Settings
from mcp_server.db.schema import chunks
from mcp_server.runners.kube_api import API_VERSION, ObjectRef

REQUEST = ObjectRef(API_VERSION, "IndexingRequest", "default", "myapp", "uid-1")
POD_ONLY_ENV = {"DATABASE_URL", "HOME", "CODEBASE_MCP_HOME"}  # a Secret and the pod's /tmp


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_jobs_command_indexes_a_repository(settings: Settings, engine: Engine, make_repo: Any) -> None:
    repo = make_repo(
        {
            "app/server.py": "def handle_request(path):\n    return route_table[path]()\n",
            "app/routes.py": "route_table = {'/': lambda: 'home', '/health': lambda: 'ok'}\n",
            "README.md": "# demo\n\nA tiny web app used by the operator tests.\n",
        }
    )
    store = JobStore(engine)
    row = store.create(repo_path=str(repo), project_id="op-cmd", timeout_seconds=120)
    spec = parse_spec(
        {"projectId": "op-cmd", "source": {"path": str(repo)}, "jobId": str(row.id)}, workspace_root="/"
    )
    job = build_job(request=REQUEST, spec=spec, job_id=row.id, settings=settings)
    container = job["spec"]["template"]["spec"]["containers"][0]

    command = list(container["command"])
    assert command[:3] == ["codebase-mcp", "indexer", "run"]
    command[0] = str(Path(sys.executable).with_name("codebase-mcp"))  # the venv's entry point
    env = dict(os.environ)  # CODEBASE_MCP_HOME: the tests' embedded database
    env.update(
        {e["name"]: e["value"] for e in container["env"] if "value" in e and e["name"] not in POD_ONLY_ENV}
    )
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=150, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    indexed = store.get(row.id)
    # On Kubernetes the indexer never decides the terminal state: the operator does, from the pod.
    assert indexed.status is JobStatus.RUNNING
    assert indexed.files_indexed == 3 and indexed.chunks_created > 0
    with engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).select_from(chunks).where(chunks.c.project_id == "op-cmd")
        ).scalar()
    assert stored is not None and stored >= indexed.chunks_created > 0
    assert store.complete(row.id)  # what the operator does when the Job reports Complete


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_git_jobs_clone_step_then_its_indexer_index_a_commit_with_a_credentials_secret(
    settings: Settings, engine: Engine, make_repo: Any, tmp_path: Path
) -> None:
    import subprocess as sp

    repo = make_repo({"lib/util.py": "def helper():\n    return 42\n"})
    who = ["-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    for args in (["init", "--quiet"], [*who, "add", "."], [*who, "commit", "--quiet", "-m", "one"]):
        sp.run(["git", *args], cwd=repo, check=True, capture_output=True)
    sha = sp.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    store = JobStore(engine)
    url = f"file://{repo}"
    row = store.create(
        repo_path=f"{url}#{sha}",
        project_id="op-git",
        source_git_url=url,
        source_git_ref=sha,
        timeout_seconds=120,
    )
    spec = parse_spec(
        {
            "projectId": "op-git",
            "source": {"git": {"url": url, "ref": sha, "secretRef": {"name": "repo-token"}}},
            "jobId": str(row.id),
        },
        workspace_root=None,
    )
    job = build_job(request=REQUEST, spec=spec, job_id=row.id, settings=settings)
    pod = job["spec"]["template"]["spec"]
    (clone,) = pod["initContainers"]
    (indexer,) = pod["containers"]
    assert {m["name"] for m in clone["volumeMounts"]} == {"tmp", "git-credentials"}
    assert all(m["name"] != "git-credentials" for m in indexer["volumeMounts"])  # the indexer never sees it
    assert all(e["name"] != "DATABASE_URL" for e in clone["env"])
    secret = next(v for v in pod["volumes"] if v["name"] == "git-credentials")
    assert secret["secret"]["secretName"] == "repo-token"

    # The pod's paths, mapped onto this machine: /tmp -> tmp_path, the Secret -> a directory.
    credentials = tmp_path / "secret"
    credentials.mkdir()
    (credentials / "token").write_text("unused-for-file-urls\n")
    mapping = {"/tmp/source": str(tmp_path / "source"), "/var/run/secrets/codebase-mcp/git": str(credentials)}
    exe = str(Path(sys.executable).with_name("codebase-mcp"))

    def local(command: list[str]) -> list[str]:
        out = [mapping.get(arg, arg) for arg in command]
        out[0] = exe
        if "--termination-log" in out:
            out[out.index("--termination-log") + 1] = str(tmp_path / "termination-log")
        return out

    env = dict(os.environ)
    env.update(
        {e["name"]: e["value"] for e in indexer["env"] if "value" in e and e["name"] not in POD_ONLY_ENV}
    )
    cloned = subprocess.run(
        local(clone["command"]), env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert cloned.returncode == 0, cloned.stderr[-3000:] + (tmp_path / "termination-log").read_text()
    ran = subprocess.run(
        local(indexer["command"]), env=env, capture_output=True, text=True, timeout=150, check=False
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    indexed = store.get(row.id)
    assert indexed.files_indexed == 1 and indexed.chunks_created > 0
