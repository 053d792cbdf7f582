"""Issue 12, item 6: a file that crashes a grammar costs that file, not the job.

Before: a YAML document nested 255 levels deep segfaulted the indexer inside tree-sitter's YAML
scanner, so the repository could never be indexed although the rest of it was fine. Both parsing
modes are covered: in the indexer process (few changed files) and in the worker pool (many).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from reliability.support import TERMINAL, lexical_hits, many_functions, service, wait_for_status, write_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _deep_yaml(levels: int) -> str:
    return "".join("  " * i + f"level{i}:\n" for i in range(levels)) + "  " * levels + "deepyamlmarker\n"


@pytest.mark.parametrize("files", [3, 80], ids=["parsed-inline", "parsed-in-workers"])
def test_a_yaml_file_nested_255_levels_is_chunked_by_lines_and_named(
    settings: Any, tmp_path: Path, files: int
) -> None:
    repo = write_repo(
        tmp_path / "repo",
        {**many_functions("restmarker", files=files, functions=3), "config/deep.yaml": _deep_yaml(255)},
    )
    svc = service()
    final = wait_for_status(svc, svc.start_indexing(str(repo), project_id="deep")["job_id"], TERMINAL, 90)
    assert final["status"] == "completed", final["error_message"]
    assert final["files_indexed"] == files + 1
    assert "config/deep.yaml chunked by lines" in final["progress_message"], final["progress_message"]
    assert lexical_hits(svc, "deepyamlmarker", "deep")
    assert lexical_hits(svc, "restmarker", "deep")
