"""Settings: grouped by component, documented in one place, generated docs that cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.core.errors import ConfigurationError
from mcp_server.core.settings import (
    GROUPS,
    DatabaseSettings,
    HttpSettings,
    IndexingSettings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_generated_env_example_readme_table_and_configmap_match_the_settings() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_settings_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("group", list(GROUPS.values()), ids=list(GROUPS))
def test_every_field_has_a_variable_and_a_one_line_docstring(group: type) -> None:
    for name, field in group.model_fields.items():  # type: ignore[attr-defined]
        assert isinstance(field.validation_alias, str) and field.validation_alias.isupper(), name
        assert field.description and field.description.strip(), f"{group.__name__}.{name} has no docstring"


def test_no_variable_is_declared_twice() -> None:
    names = [f.validation_alias for g in GROUPS.values() for f in g.model_fields.values()]
    assert len(names) == len(set(names))


def test_every_variable_is_in_env_example() -> None:
    text = (ROOT / ".env.example").read_text()
    for group in GROUPS.values():
        for field in group.model_fields.values():
            assert f"\n{field.validation_alias}=" in text


def test_a_process_reads_only_its_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_MCP_HTTP_PORT", "not-a-port")
    monkeypatch.setenv("CODEBASE_MAX_FILE_BYTES", "5000")
    indexer = load_settings(DatabaseSettings, IndexingSettings)
    assert indexer.indexing.max_file_bytes == 5000
    assert indexer.http.port == 8000  # not read: the default
    with pytest.raises(ConfigurationError, match="CODEBASE_MCP_HTTP_PORT"):
        load_settings(HttpSettings)


def test_every_bad_variable_is_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEBASE_MCP_HTTP_PORT", "0")
    monkeypatch.setenv("MAX_CONCURRENT_INDEXING_JOBS", "-1")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "CODEBASE_MCP_HTTP_PORT" in str(caught.value)
    assert "MAX_CONCURRENT_INDEXING_JOBS" in str(caught.value)


def test_replace_changes_only_the_named_fields() -> None:
    base = load_settings()
    changed = base.replace(jobs={"max_concurrent": 7})
    assert changed.jobs.max_concurrent == 7
    assert base.jobs.max_concurrent == 2  # the original is left as it was
    assert changed.database == base.database
