"""Issue 12, item 2: indexing the machine's secrets.

Before: an assistant could index `/`, `/etc` or `$HOME` and read `/etc/shadow`, `.env`,
`.ssh/id_ed25519` or `credentials.json` back through search; tokens in source files were served
verbatim.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.support import TERMINAL, lexical_hits, service, wait_for_status, write_repo

from mcp_server.core.errors import InvalidRepositoryPath

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

AWS_KEY = "AKIA" + "Q3EXAMPLEKEY7890"
GITHUB_TOKEN = "ghp_" + "x1Y2z3" * 6
PRIVATE_KEY = "\n".join(
    [
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXktdjEAAAAA keymarker",
        "-----END OPENSSH PRIVATE KEY-----",
        "",
    ]
)


@pytest.fixture
def project_in_home() -> Iterator[Path]:
    home = Path(os.environ["HOME"]).resolve()
    project = Path(tempfile.mkdtemp(prefix="codebase-mcp-project-", dir=home))
    yield project
    shutil.rmtree(project, ignore_errors=True)


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/ssh", "/proc", "/sys", "/dev", "/boot", "/var", "/usr"])
def test_system_directories_are_refused_without_allowed_roots(settings: Any, path: str) -> None:
    if not os.path.isdir(path):
        pytest.skip(f"{path} does not exist here")
    with pytest.raises(InvalidRepositoryPath, match="CODEBASE_ALLOWED_ROOTS") as refused:
        service().start_indexing(path)
    assert path in str(refused.value)


def test_the_home_directory_itself_is_refused_but_a_project_inside_it_is_not(
    settings: Any, project_in_home: Path
) -> None:
    svc = service()
    with pytest.raises(InvalidRepositoryPath, match=r"home directory.*CODEBASE_ALLOWED_ROOTS"):
        svc.start_indexing(os.environ["HOME"])
    write_repo(project_in_home, {"main.py": "def main():\n    return 'homeprojectmarker'\n"})
    final = wait_for_status(
        svc, svc.start_indexing(str(project_in_home), project_id="home")["job_id"], TERMINAL
    )
    assert final["status"] == "completed", final["error_message"]


def test_allowed_roots_replace_the_default_rule(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setenv("CODEBASE_ALLOWED_ROOTS", "/etc")
    started = service().start_indexing("/etc/ssh" if os.path.isdir("/etc/ssh") else "/etc", project_id="etc")
    assert started["status"] == "pending"
    service().cancel_job(started["job_id"])


def test_the_server_warns_at_start_when_no_roots_are_set(settings: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CODEBASE_ALLOWED_ROOTS"}
    proc = subprocess.run(
        [sys.executable, "-m", "mcp_server.frontends.cli", "serve"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "CODEBASE_ALLOWED_ROOTS is not set" in proc.stderr.decode(), proc.stderr.decode()[-2000:]


def test_secret_files_are_skipped_and_tokens_redacted_and_a_repository_can_opt_in(
    monkeypatch: pytest.MonkeyPatch, settings: Any, tmp_path: Path
) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {
            "main.py": "def main():\n    return 'publicmarker'\n",
            "config.py": (
                f"AWS_KEY = '{AWS_KEY}'\nGH = '{GITHUB_TOKEN}'\n"
                "def configured():\n    return 'configmarker'\n"
            ),
            ".env": "DATABASE_PASSWORD=envmarker\n",
            ".env.production": "API=envprodmarker\n",
            ".env.example": "DATABASE_PASSWORD=changeme examplemarker\n",
            ".ssh/id_ed25519": PRIVATE_KEY,
            "deploy/server.pem": PRIVATE_KEY,
            "notes/key.txt": "the key, pasted:\n" + PRIVATE_KEY,
            "credentials.json": '{"secret": "credsmarker"}\n',
            ".aws/credentials": "[default]\naws_secret_access_key = awscredsmarker\n",
            ".npmrc": "//registry.npmjs.org/:_authToken=npmrcmarker\n",
            ".netrc": "machine example.com login me password netrcmarker\n",
        },
    )
    svc = service()
    final = wait_for_status(svc, svc.start_indexing(str(repo), project_id="secrets")["job_id"], TERMINAL)
    assert final["status"] == "completed", final["error_message"]
    for marker in ("envmarker", "envprodmarker", "keymarker", "credsmarker", "awscredsmarker", "npmrcmarker"):
        assert not lexical_hits(svc, marker, "secrets"), f"{marker} was indexed"
    assert not lexical_hits(svc, "netrcmarker", "secrets")
    assert lexical_hits(svc, "publicmarker", "secrets") and lexical_hits(svc, "examplemarker", "secrets")
    config = lexical_hits(svc, "configmarker", "secrets")
    assert config and AWS_KEY not in config[0]["content"] and GITHUB_TOKEN not in config[0]["content"]
    assert "[REDACTED:aws-access-key]" in config[0]["content"]
    message = final["progress_message"]
    assert "secret_file" in message and "secret_content" in message and "2 secret tokens redacted" in message
    print(f"\nissue 12 item 2: {message}")

    # The opt-in is the user's setting for that repository, not a file the repository could ship.
    monkeypatch.setenv("CODEBASE_INDEX_SECRETS_ROOTS", str(repo))
    svc = service()
    final = wait_for_status(
        svc, svc.start_indexing(str(repo), project_id="secrets", force_reindex=True)["job_id"], TERMINAL
    )
    assert final["status"] == "completed", final["error_message"]
    assert lexical_hits(svc, "envmarker", "secrets")
    assert AWS_KEY in lexical_hits(svc, "configmarker", "secrets")[0]["content"]
