"""The web console's and /metrics' rules over real HTTP (no browser): authentication by bearer
token or login cookie, same-origin state changes, escaping of indexed content, and Prometheus
figures for tool calls, searches, jobs and index sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from console_server import TOKEN, http_server
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport
from reliability.support import service, wait_for_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
BEARER = {"Authorization": f"Bearer {TOKEN}"}
# Generous: the first search loads the embedding model, and CI machines are shared.
_http = httpx.Client(timeout=120)


def _index(repo: Path) -> str:
    svc = service()
    job_id: str = svc.start_indexing(str(repo))["job_id"]
    assert wait_for_status(svc, job_id, {"completed", "failed"}, timeout=120)["status"] == "completed"
    return job_id


def test_console_pages_need_the_token_or_the_login_cookie(settings: Any) -> None:
    with http_server() as base:
        page = _http.get(f"{base}/jobs", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=/jobs")
        assert _http.get(f"{base}/api/jobs").status_code == 401
        assert _http.get(f"{base}/metrics").status_code == 401
        assert _http.get(f"{base}/jobs", headers=BEARER).status_code == 200

        with httpx.Client(base_url=base, headers={"Origin": base}, timeout=120) as browser:
            wrong = browser.post("/login?next=/repos", data={"token": "nope"})
            assert wrong.status_code == 401 and "not right" in wrong.text
            ok = browser.post("/login?next=/repos", data={"token": TOKEN}, follow_redirects=False)
            assert ok.status_code == 303 and ok.headers["location"] == "/repos"
            cookie = ok.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
            assert browser.get("/repos").status_code == 200
        off_site = _http.post(
            f"{base}/login?next=//evil.example/",
            data={"token": TOKEN},
            headers={"Origin": base},
            follow_redirects=False,
        )
        assert off_site.headers["location"] == "/"


def test_cancel_from_another_origin_is_refused(settings: Any) -> None:
    with http_server() as base:
        job = service().jobs.create(repo_path="/nowhere", project_id="default")
        url = f"{base}/api/jobs/{job.id}/cancel"
        assert _http.post(url, headers={**BEARER, "Origin": "http://evil.example"}).status_code == 403
        assert _http.post(url, headers=BEARER).status_code == 403  # no Origin at all
        done = _http.post(url, headers={**BEARER, "Origin": base})
        assert done.status_code == 200 and done.json()["status"] == "cancelled"


def test_search_results_escape_indexed_content_and_show_line_numbers(settings: Any, make_repo: Any) -> None:
    repo: Path = make_repo(
        {"web/render.py": 'def render_banner(name):\n    return "<script>alert(1)</script>" + name\n'}
    )
    _index(repo)
    with http_server() as base:
        page = _http.get(f"{base}/", params={"q": "render banner", "language": "Python"}, headers=BEARER)
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "render_banner" in page.text and 'class="linenos"' in page.text
    assert "web/render.py:1-2" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")


def test_metrics_count_tool_calls_searches_jobs_and_index_sizes(settings: Any, make_repo: Any) -> None:
    repo: Path = make_repo({"a.py": "def alpha():\n    return 1\n", "b.go": "package b\n\nfunc Beta() {}\n"})
    _index(repo)

    async def use_tools(base: str) -> None:
        transport = StreamableHttpTransport(f"{base}/mcp", headers=BEARER)
        async with Client(transport) as client:
            await client.call_tool("search_code", {"query": "alpha", "mode": "lexical"})
            await client.call_tool("list_indexing_jobs", {})
            await client.call_tool("get_indexing_status", {"job_id": "not-a-uuid"}, raise_on_error=False)

    with http_server() as base:
        anyio.run(use_tools, base)
        _http.get(f"{base}/", params={"q": "beta"}, headers=BEARER)
        body = _http.get(f"{base}/metrics", headers=BEARER).text
    assert 'codebase_mcp_tool_calls_total{outcome="ok",tool="search_code"} 1.0' in body
    assert 'codebase_mcp_tool_calls_total{outcome="error",tool="get_indexing_status"} 1.0' in body
    assert 'codebase_mcp_search_seconds_count{mode="lexical",source="mcp"} 1.0' in body
    assert 'codebase_mcp_search_seconds_count{mode="hybrid",source="console"} 1.0' in body
    assert 'codebase_mcp_jobs{state="completed"} 1.0' in body
    assert 'codebase_mcp_index_files{project="default"} 2.0' in body
    assert "codebase_mcp_database_up 1.0" in body
