"""The console's HTML, stylesheet and script: plain functions of the service's dictionaries.

Every value from the index or the jobs table is escaped (`html.escape`); indexed code is untrusted
input. Code is highlighted by Pygments (already installed with rich) on the server, so the
browser runs no highlighter and loads nothing from elsewhere.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

SEARCH_FIELDS = ("q", "project", "language", "path", "mode")
_LEXER_NAMES = {"csharp": "csharp", "tsx": "tsx", "dockerfile": "docker", "makefile": "make", "text": "text"}


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _layout(title: str, active: str, body: str) -> str:
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if key == active else ""}>{label}</a>'
        for key, href, label in (
            ("search", "/", "Search"),
            ("jobs", "/jobs", "Jobs"),
            ("repos", "/repos", "Repositories"),
        )
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} · codebase-mcp</title>
<link rel="stylesheet" href="/console.css">
<script src="/console.js" defer></script>
</head><body data-page="{active}">
<header><strong>codebase-mcp</strong><nav>{nav}</nav></header>
<main>{body}</main>
</body></html>"""


# --- search ---------------------------------------------------------------------------------------


# Pygments is imported on first use: a stdio server builds the console's routes but never serves them.


def _lexer(language: str | None) -> Any:
    from pygments.lexers import TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(_LEXER_NAMES.get(language or "text", language or "text"))
    except ClassNotFound:
        return TextLexer()


def _formatter(start_line: int) -> Any:
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(linenos="inline", linenostart=start_line, cssclass="hl", wrapcode=True)


def _result(rank: int, hit: dict[str, Any]) -> str:
    from pygments import highlight

    symbol = f'<span class="symbol">{_e(hit["symbol"])}</span> ' if hit.get("symbol") else ""
    code = highlight(hit["content"], _lexer(hit.get("language")), _formatter(int(hit["start_line"])))
    return f"""<article class="result">
<h3><span class="rank">{rank}.</span> <span class="path">{_e(hit["file_path"])}:{_e(hit["start_line"])}-{_e(hit["end_line"])}</span>
{symbol}<span class="kind">{_e(hit["kind"])}</span> <span class="lang">{_e(hit.get("language") or "text")}</span></h3>
<p class="meta">{_e(hit["repository"])} · score {float(hit["score"]):.4f}</p>
{code}</article>"""


def search_page(form: dict[str, str], response: dict[str, Any] | None, error: str | None) -> str:
    modes = "".join(
        f'<option value="{m}"{" selected" if (form["mode"] or "hybrid") == m else ""}>{m}</option>'
        for m in ("hybrid", "semantic", "lexical")
    )
    body = f"""<form class="search" method="get" action="/" role="search">
<input type="search" name="q" value="{_e(form["q"])}" placeholder="What are you looking for?" aria-label="query" autofocus>
<div class="filters">
<label>language <input name="language" value="{_e(form["language"])}" placeholder="python, ts, go…" size="10"></label>
<label>path <input name="path" value="{_e(form["path"])}" placeholder="src/**/*.py" size="14"></label>
<label>project <input name="project" value="{_e(form["project"])}" placeholder="default" size="10"></label>
<label>mode <select name="mode">{modes}</select></label>
<button type="submit">Search</button></div></form>"""
    if error:
        body += f'<p class="error" role="alert">{_e(error)}</p>'
    elif response is not None:
        results = response["results"]
        body += (
            f'<p class="summary" id="summary">{len(results)} results in {_e(response["latency_ms"])} ms '
            f"({_e(response['mode'])}, project {_e(response['project_id'])})</p>"
        )
        if response.get("partial"):
            body += f'<p class="partial" role="status">partial: {_e(response["note"])}</p>'
        body += "".join(_result(rank, hit) for rank, hit in enumerate(results, 1)) or "<p>No results.</p>"
    return _layout(form["q"] or "Search", "search", body)


# --- jobs -----------------------------------------------------------------------------------------


def _job_row(job: dict[str, Any]) -> str:
    percent = job["percent"]
    bar = (
        f'<progress max="100" value="{percent}">{percent}%</progress> {percent}%'
        if percent is not None
        else ""
    )
    eta = f"{job['eta_seconds']:.0f} s" if job.get("eta_seconds") is not None else ""
    active = job["status"] in ("pending", "running")
    cancel = f'<button class="cancel" data-job="{_e(job["job_id"])}">Cancel</button>' if active else ""
    total = job["files_total"] if job["files_total"] is not None else "?"
    row = f"""<tr class="job status-{_e(job["status"])}" data-job="{_e(job["job_id"])}">
<td class="id"><code>{_e(job["job_id"])}</code></td><td class="status">{_e(job["status"])}</td>
<td class="phase">{_e(job["phase"] or "")}</td><td class="progress">{bar}</td>
<td class="files">{_e(job["files_seen"])}/{_e(total)}</td><td class="chunks">{_e(job["chunks_created"])}</td>
<td class="eta">{_e(eta)}</td><td class="repo">{_e(job["repo_path"])}</td><td>{cancel}</td></tr>"""
    if job.get("error_message"):
        row += (
            f'<tr class="error-row" data-error-for="{_e(job["job_id"])}"><td colspan="9">'
            f'<pre class="error">{_e(job["error_message"])}</pre></td></tr>'
        )
    return row


def jobs_page(jobs: list[dict[str, Any]]) -> str:
    rows = "".join(_job_row(job) for job in jobs) or '<tr><td colspan="9">No jobs yet.</td></tr>'
    body = f"""<h1>Jobs</h1><p class="hint">Updates every second.</p>
<div class="scroll"><table id="jobs"><thead><tr><th>job</th><th>status</th><th>phase</th><th>progress</th>
<th>files</th><th>chunks</th><th>ETA</th><th>repository</th><th></th></tr></thead>
<tbody>{rows}</tbody></table></div>"""
    return _layout("Jobs", "jobs", body)


# --- repositories ---------------------------------------------------------------------------------


def _ago(iso: str | None) -> str:
    if not iso:
        return "never"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def repos_page(repos: list[dict[str, Any]]) -> str:
    rows = (
        "".join(
            f"""<tr><td>{_e(r["project_id"])}</td><td class="repo">{_e(r["repository"])}</td><td>{_e(r["files"])}</td>
<td>{_e(r["chunks"])}</td><td>{_e(_size(r["size_bytes"]))}</td>
<td>{_e(", ".join(f"{name} {count}" for name, count in r["languages"].items()))}</td>
<td title="{_e(r["last_synced_at"])}">{_e(_ago(r["last_synced_at"]))}</td><td>{_e(r["embedding_model"])}</td></tr>"""
            for r in repos
        )
        or '<tr><td colspan="8">Nothing indexed yet: <code>codebase-mcp index PATH</code>.</td></tr>'
    )
    body = f"""<h1>Repositories</h1><div class="scroll"><table id="repos"><thead><tr><th>project</th>
<th>repository</th><th>files</th><th>chunks</th><th>size</th><th>languages</th><th>indexed</th><th>model</th>
</tr></thead><tbody>{rows}</tbody></table></div>"""
    return _layout("Repositories", "repos", body)


def login_page(target: str, *, failed: bool) -> str:
    note = '<p class="error" role="alert">That token is not right.</p>' if failed else ""
    body = f"""<h1>Sign in</h1>{note}<form method="post" action="/login?next={_e(target)}" class="login">
<label>token <input type="password" name="token" autocomplete="current-password" required></label>
<button type="submit">Sign in</button></form>
<p class="hint">The server's CODEBASE_MCP_AUTH_TOKEN; kept in an HttpOnly cookie for this site only.</p>"""
    return _layout("Sign in", "login", body)


# --- assets ---------------------------------------------------------------------------------------


@cache
def stylesheet() -> str:
    from pygments.formatters import HtmlFormatter

    css = (resources.files(__package__) / "static" / "console.css").read_text(encoding="utf-8")
    return css + str(HtmlFormatter(style="default").get_style_defs(".hl"))


# Live job progress and cancel; builds the DOM with textContent only (job fields are untrusted).
SCRIPT = (resources.files(__package__) / "static" / "console.js").read_text(encoding="utf-8")
