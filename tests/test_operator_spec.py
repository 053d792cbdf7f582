"""The operator's own validation of IndexingRequest specs (its second line of defence, behind the
CRD schema): everything the schema refuses is refused here too, with a message naming the field."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from codebase_operator.spec import parse_spec

from mcp_server.core.errors import InvalidInput

JOB_ID = "3f2a9c1e-7b4d-4e8a-9c0f-123456789abc"


def test_a_path_request_with_defaults() -> None:
    spec = parse_spec({"source": {"path": "/workspace/myapp/"}}, workspace_root="/workspace")
    assert spec.project_id == "default"
    assert spec.path == "/workspace/myapp"
    assert spec.git_url is None and spec.job_id is None
    assert spec.force_reindex is False and spec.timeout_seconds is None
    assert spec.repo_key == "/workspace/myapp"


def test_a_git_request_with_every_field() -> None:
    spec = parse_spec(
        {
            "projectId": "oss",
            "source": {"git": {"url": "https://github.com/pallets/flask.git", "ref": "main"}},
            "jobId": JOB_ID.upper(),
            "forceReindex": True,
            "timeoutSeconds": 600,
        },
        workspace_root=None,  # git sources are cloned in the pod: no workspace needed
    )
    assert spec.git_url == "https://github.com/pallets/flask.git" and spec.git_ref == "main"
    assert spec.job_id == uuid.UUID(JOB_ID)
    assert spec.force_reindex is True and spec.timeout_seconds == 600
    assert spec.repo_key == "https://github.com/pallets/flask.git#main"


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (None, "spec must be an object"),
        ({}, "spec.source"),
        ({"source": {}}, "exactly one of path or git"),
        ({"source": {"path": "/a", "git": {"url": "file:///r"}}}, "exactly one of path or git"),
        ({"source": {"path": "relative/dir"}}, "relative"),
        ({"source": {"path": "/workspace/../etc"}}, "'..'"),
        ({"source": {"path": "~/code"}}, "'~'"),
        ({"source": {"path": "/a\nb"}}, "line break"),
        ({"source": {"path": 42}}, "spec.source.path must be a string"),
        ({"projectId": "Bad_Project", "source": {"path": "/a"}}, "spec.projectId"),
        ({"projectId": 7, "source": {"path": "/a"}}, "spec.projectId"),
        ({"jobId": "not-a-uuid", "source": {"path": "/a"}}, "spec.jobId"),
        ({"forceReindex": "yes", "source": {"path": "/a"}}, "spec.forceReindex"),
        ({"timeoutSeconds": 59, "source": {"path": "/a"}}, "spec.timeoutSeconds"),
        ({"timeoutSeconds": 7 * 24 * 3600 + 1, "source": {"path": "/a"}}, "spec.timeoutSeconds"),
        ({"timeoutSeconds": True, "source": {"path": "/a"}}, "spec.timeoutSeconds"),
        ({"source": {"git": "https://x"}}, "spec.source.git must be an object"),
        ({"source": {"git": {"url": "ftp://host/repo"}}}, "source.git.url"),
        ({"source": {"git": {"url": "file:///r", "ref": "a..b"}}}, "source.git.ref"),
        ({"source": {"git": {"url": "file:///r", "ref": "--upload-pack=evil"}}}, "source.git.ref"),
    ],
)
def test_invalid_specs_are_refused_with_the_field_named(spec: Any, fragment: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        parse_spec(spec, workspace_root="/")
    assert fragment in str(excinfo.value)


def test_spec_status_may_only_say_cancelled() -> None:
    spec = {"source": {"path": "/workspace/a"}}
    assert parse_spec(spec, workspace_root="/workspace").cancelled is False
    assert parse_spec({**spec, "status": "Cancelled"}, workspace_root="/workspace").cancelled is True
    for other in ("cancelled", "Running", True):
        with pytest.raises(InvalidInput, match=r"spec\.status may only be 'Cancelled'"):
            parse_spec({**spec, "status": other}, workspace_root="/workspace")


def test_a_path_request_is_refused_when_the_operator_has_no_workspace_volume() -> None:
    """Before: accepted, and its pod failed with exit code 2 (nothing at the path) a minute later."""
    with pytest.raises(InvalidInput, match=r"needs the shared workspace volume.*workspace\.existingClaim"):
        parse_spec({"source": {"path": "/workspace/a"}}, workspace_root=None)


def test_paths_must_lie_on_the_workspace_volume_when_it_is_mounted() -> None:
    assert (
        parse_spec({"source": {"path": "/workspace/a"}}, workspace_root="/workspace").path == "/workspace/a"
    )
    assert parse_spec({"source": {"path": "/workspace"}}, workspace_root="/workspace/").path == "/workspace"
    for outside in ("/etc", "/workspace-other/a", "/"):
        with pytest.raises(InvalidInput, match="outside the workspace volume"):
            parse_spec({"source": {"path": outside}}, workspace_root="/workspace")
    # git sources are cloned inside the pod: the workspace does not matter
    assert (
        parse_spec({"source": {"git": {"url": "file:///srv/r.git"}}}, workspace_root="/workspace").path
        is None
    )
