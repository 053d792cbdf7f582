"""Security 10: projects are isolated at the SQL level.

Two projects hold the same code (each copy marked with its own word); for every search mode and
every filter combination, a search in one project never returns a row of the other, even for
the other project's marker word; and a job is "not found" under another project's id.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
from reliability.support import TERMINAL, service, wait_for_status, write_repo

from mcp_server.core.errors import JobNotFound

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

SHARED = {
    "src/billing/invoice.py": '''# {marker}
def compute_invoice_total(lines, tax_rate):
    """Sum the line amounts and apply the tax rate."""
    subtotal = sum(line.amount for line in lines)
    return subtotal * (1 + tax_rate)
''',
    "src/net/retry.go": """// {marker}
package net

// RetryWithBackoff calls fn until it succeeds, doubling the wait each time.
func RetryWithBackoff(fn func() error, attempts int) error {{
	return fn()
}}
""",
    "docs/README.md": "# Billing\n\n{marker}: how invoices are computed and retried.\n",
}
MARKERS = {"iso-a": "alphaonly", "iso-b": "bravoonly"}
QUERIES = ["compute invoice total with tax", "retry with backoff", "alphaonly", "bravoonly", "invoice"]
MODES = ["hybrid", "semantic", "lexical"]
FILTERS: list[dict[str, Any]] = [
    {"language": language, "path": path, "file_type": file_type, "concise": concise}
    for language, path, file_type, concise in itertools.product(
        [None, "python", "go", "markdown"],
        [None, "src/**", "src/billing/*.py", "docs/"],
        [None, "py", "go,md"],
        [False, True],
    )
]


def test_no_search_in_one_project_ever_returns_a_row_of_the_other(settings: Any, tmp_path: Path) -> None:
    svc = service()
    roots = {}
    for project, marker in MARKERS.items():
        root = write_repo(tmp_path / project, {p: c.format(marker=marker) for p, c in SHARED.items()})
        roots[project] = str(root.resolve())
        job = svc.start_indexing(str(root), project_id=project)["job_id"]
        assert wait_for_status(svc, job, TERMINAL)["status"] == "completed"

    leaks, searches, results = [], 0, 0
    for project, other in itertools.permutations(MARKERS):
        for query, mode, filters in itertools.product(QUERIES, MODES, FILTERS):
            found = svc.search(query, project_id=project, mode=mode, limit=20, **filters)
            searches += 1
            assert found["project_id"] == project
            for hit in found["results"]:
                results += 1
                if hit["repository"] != roots[project] or MARKERS[other] in hit["content"]:
                    leaks.append((project, query, mode, filters, hit["repository"], hit["file_path"]))
    print(f"\nsecurity 10: {searches} searches, {results} results, {len(leaks)} from the other project")
    assert leaks == []
    assert results > 0
    # The other project's marker is simply absent.
    assert svc.search("bravoonly", project_id="iso-a", mode="lexical")["results"] == []
    assert svc.search("alphaonly", project_id="iso-a", mode="lexical")["results"]
    # A project that does not exist has nothing.
    assert svc.search("invoice", project_id="iso-c")["results"] == []


def test_a_job_is_not_found_under_another_project(settings: Any, tmp_path: Path) -> None:
    svc = service()
    root = write_repo(tmp_path / "repo", {"a.py": "def a():\n    return 1\n"})
    job = svc.start_indexing(str(root), project_id="iso-a")["job_id"]
    assert svc.get_status(job, project_id="iso-a")["job_id"] == job
    with pytest.raises(JobNotFound, match="no indexing job"):
        svc.get_status(job, project_id="iso-b")
    assert svc.list_jobs(project_id="iso-b")["jobs"] == []
    assert [j["job_id"] for j in svc.list_jobs(project_id="iso-a")["jobs"]] == [job]
    with pytest.raises(JobNotFound):
        svc.get_status(str(uuid.uuid4()), project_id="iso-a")
    wait_for_status(svc, job, TERMINAL)
