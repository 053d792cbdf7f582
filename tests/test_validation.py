"""Every refusal at the boundary: repository paths, project ids, job ids, configuration."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import unprivileged

from mcp_server.core.errors import ConfigurationError, InvalidInput, InvalidProjectId, InvalidRepositoryPath
from mcp_server.core.settings import load_settings
from mcp_server.core.validation import validate_job_id, validate_project_id, validate_repo_path


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("relative/path", "relative"),
        ("./x", "relative"),
        ("", "non-empty"),
        ("~/code", "starts with '~'"),
        ("/var/data/../../etc/passwd", "'..'"),
        ("/tmp/..", "'..'"),
        ("/tmp/a\nb", "line break"),
        ("/tmp/a\x00b", "NUL"),
        ("/does/not/exist/anywhere", "does not exist"),
        ("/" + "a" * 5000, "longer than"),
    ],
)
def test_bad_repository_paths_are_refused_with_a_reason(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidRepositoryPath) as info:
        validate_repo_path(raw)
    assert fragment in str(info.value)


def test_a_file_is_not_a_repository(tmp_path: Path) -> None:
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(InvalidRepositoryPath, match="not a directory"):
        validate_repo_path(str(f))


def test_paths_outside_the_allowed_roots_are_refused(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    other = tmp_path / "other"
    allowed.mkdir()
    other.mkdir()
    assert validate_repo_path(str(allowed), allowed_roots=[allowed]) == allowed.resolve()
    with pytest.raises(InvalidRepositoryPath, match="outside the allowed roots"):
        validate_repo_path(str(other), allowed_roots=[allowed])


def test_a_symlink_inside_an_allowed_root_cannot_lead_out_of_it(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "link").symlink_to(outside)
    with pytest.raises(InvalidRepositoryPath, match="outside the allowed roots"):
        validate_repo_path(str(allowed / "link"), allowed_roots=[allowed])


def test_an_unreadable_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o000)
    readable = tmp_path / "readable"
    readable.mkdir()
    code = f"""
from mcp_server.core.errors import InvalidRepositoryPath
from mcp_server.core.validation import validate_repo_path
for path in ({str(locked)!r}, {str(readable)!r}):
    try:
        validate_repo_path(path)
    except InvalidRepositoryPath as error:
        print("refused", error)
    else:
        print("accepted", path)
"""
    try:
        result = unprivileged.run_python(code)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    refused, accepted = result.stdout.splitlines()
    assert refused.startswith("refused") and "not readable" in refused, refused
    assert accepted == f"accepted {readable}"


@pytest.mark.parametrize(
    "project_id",
    ["../etc", "UPPER", "a" * 300, "x'; DROP TABLE chunks; --", "-lead", "trail-", "", "a_b", "a.b", "a/b"],
)
def test_malformed_project_ids_are_refused(project_id: str) -> None:
    with pytest.raises(InvalidProjectId):
        validate_project_id(project_id)


@pytest.mark.parametrize("project_id", ["default", "a", "my-app-2", "x" * 63])
def test_dns_label_project_ids_are_accepted(project_id: str) -> None:
    assert validate_project_id(project_id) == project_id


def test_project_id_defaults_to_default() -> None:
    assert validate_project_id(None) == "default"


@pytest.mark.parametrize("job_id", ["not-a-uuid", "1234", "", "x" * 10_000])
def test_invalid_job_ids_are_refused(job_id: str) -> None:
    with pytest.raises(InvalidInput):
        validate_job_id(job_id)


def test_a_uuid_string_is_a_job_id() -> None:
    value = uuid.uuid4()
    assert validate_job_id(str(value)) == value


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_CONCURRENT_INDEXING_JOBS", "0"),
        ("MAX_CONCURRENT_INDEXING_JOBS", "many"),
        ("INDEXING_JOB_TIMEOUT_SECONDS", "-5"),
        ("CODEBASE_LAUNCHER", "docker"),
        ("CODEBASE_ALLOWED_ROOTS", "relative/dir"),
        ("EMBEDDING_BACKEND", "magic"),
        ("CODEBASE_MCP_HOME", "relative/home"),
    ],
)
def test_invalid_configuration_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert variable in str(info.value)


def test_allowed_roots_accept_a_path_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_ALLOWED_ROOTS", "/srv/a:/srv/b,/srv/c")
    assert [str(p) for p in load_settings().jobs.allowed_roots] == ["/srv/a", "/srv/b", "/srv/c"]


def test_a_database_password_never_appears_in_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:s3cr3t-pw@db:5432/x")
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "zero")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "s3cr3t-pw" not in str(info.value)


def test_the_home_variable_of_the_shell_is_not_mistaken_for_codebase_mcp_home(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression: field names were accepted as variable names, so $HOME became the data directory.
    monkeypatch.delenv("CODEBASE_MCP_HOME", raising=False)
    monkeypatch.setenv("HOME", "/srv/someone")
    assert load_settings().database.home == Path("/srv/someone/.local/share/codebase-mcp")
