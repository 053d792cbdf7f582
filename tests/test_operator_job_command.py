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
from mcp_server.runners.kube_api import ObjectRef

REQUEST = ObjectRef("codebase-mcp.dev/v1alpha1", "IndexingRequest", "default", "myapp", "uid-1")
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
    spec = parse_spec({"projectId": "op-cmd", "source": {"path": str(repo)}, "jobId": str(row.id)})
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
