"""The web console: `/` on `codebase-mcp serve --transport http`, for a person with a browser.

Pages (server-rendered, a little JavaScript for live job progress; no CDN, no build step):

    /            search, with filters; results as highlighted code with line numbers and symbols
    /jobs        jobs with live progress (polling /api/jobs), cancel, a failed job's error in full
    /repos       repositories: files, chunks, size, languages, when last indexed
    /login       when CODEBASE_MCP_AUTH_TOKEN is set: a form that sets an HttpOnly cookie

Authentication is the MCP endpoint's: with a token configured, every console route wants
`Authorization: Bearer <token>` or the cookie the login form sets (an HMAC of the token, never
the token itself). State-changing requests (cancel, login) must come from the console's own
origin. Without a token the server binds to loopback only (see mcp_tools.run_server).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
from fastmcp import FastMCP
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mcp_server.core.errors import CodebaseMCPError
from mcp_server.frontends.console import pages
from mcp_server.frontends.metrics import CONTENT_TYPE, ServerMetrics
from mcp_server.frontends.operations import CodebaseService

COOKIE = "codebase_mcp_console"
# Every route below; each checks the bearer token or the login cookie itself (the login form and
# the static files need neither), so the HTTP guard leaves authentication to them but still
# applies its Host and Origin rules. A path ending in "/" covers everything under it.
CONSOLE_PATHS = (
    "/",
    "/jobs",
    "/repos",
    "/login",
    "/metrics",
    "/console.js",
    "/console.css",
    "/api/jobs",
    "/api/jobs/",
)
Handler = Callable[[Request], Awaitable[Response]]
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleAuth:
    def __init__(self, token: str | None) -> None:
        self.token = token

    def cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.token.encode(), b"codebase-mcp console v1", hashlib.sha256).hexdigest()

    def allows(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), self.token.encode()
        ):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.cookie_value().encode())


def same_origin(request: Request) -> bool:
    """A state-changing request must come from a page of this console (CSRF)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


def register_console(
    mcp: FastMCP, service: CodebaseService, metrics: ServerMetrics, *, auth_token: str | None
) -> None:
    auth = ConsoleAuth(auth_token)

    def guarded(*, api: bool = False) -> Callable[[Handler], Handler]:
        def wrap(handler: Handler) -> Handler:
            async def endpoint(request: Request) -> Response:
                if not auth.allows(request):
                    if api:
                        return JSONResponse({"error": "authentication required"}, status_code=401)
                    target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
                    return RedirectResponse(f"/login?next={target}", status_code=303)
                response = await handler(request)
                response.headers.update(SECURITY_HEADERS)
                return response

            return endpoint

        return wrap

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))

    @mcp.custom_route("/", methods=["GET"], include_in_schema=False)
    @guarded()
    async def search_page(request: Request) -> Response:
        form = {key: request.query_params.get(key, "") for key in pages.SEARCH_FIELDS}
        response: dict[str, Any] | None = None
        error = None
        if form["q"].strip():
            try:
                response = await run(
                    service.search,
                    form["q"],
                    form["project"] or None,
                    20,
                    form["language"] or None,
                    form["path"] or None,
                    form["mode"] or "hybrid",
                )
                metrics.search_seconds.labels(mode=form["mode"] or "hybrid", source="console").observe(
                    response["latency_ms"] / 1000
                )
            except CodebaseMCPError as exc:
                error = str(exc)
        return HTMLResponse(pages.search_page(form, response, error))

    @mcp.custom_route("/jobs", methods=["GET"], include_in_schema=False)
    @guarded()
    async def jobs_page(request: Request) -> Response:
        listing = await run(service.list_jobs, None, None, 50)
        return HTMLResponse(pages.jobs_page(listing["jobs"]))

    @mcp.custom_route("/repos", methods=["GET"], include_in_schema=False)
    @guarded()
    async def repos_page(request: Request) -> Response:
        listing = await run(service.list_repositories)
        return HTMLResponse(pages.repos_page(listing["repositories"]))

    @mcp.custom_route("/api/jobs", methods=["GET"], include_in_schema=False)
    @guarded(api=True)
    async def jobs_api(request: Request) -> Response:
        return JSONResponse(await run(service.list_jobs, None, None, 50))

    @mcp.custom_route("/api/jobs/{job_id}/cancel", methods=["POST"], include_in_schema=False)
    @guarded(api=True)
    async def cancel_api(request: Request) -> Response:
        if not same_origin(request):
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        try:
            return JSONResponse(await run(service.cancel_job, request.path_params["job_id"]))
        except CodebaseMCPError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    @mcp.custom_route("/console.js", methods=["GET"], include_in_schema=False)
    async def script(request: Request) -> Response:
        return Response(pages.SCRIPT, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @mcp.custom_route("/console.css", methods=["GET"], include_in_schema=False)
    async def stylesheet(request: Request) -> Response:
        return Response(pages.stylesheet(), media_type="text/css", headers={"Cache-Control": "no-cache"})

    @mcp.custom_route("/login", methods=["GET", "POST"], include_in_schema=False)
    async def login(request: Request) -> Response:
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"  # never redirect off this site
        if auth.token is None:
            return RedirectResponse(target, status_code=303)
        if request.method == "POST":
            form = await request.form()
            given = str(form.get("token", ""))
            if same_origin(request) and hmac.compare_digest(given.encode(), auth.token.encode()):
                response = RedirectResponse(target, status_code=303)
                response.set_cookie(
                    COOKIE,
                    auth.cookie_value(),
                    httponly=True,
                    samesite="strict",
                    secure=request.url.scheme == "https",
                    path="/",
                )
                return response
            return HTMLResponse(
                pages.login_page(target, failed=True), status_code=401, headers=SECURITY_HEADERS
            )
        return HTMLResponse(pages.login_page(target, failed=False), headers=SECURITY_HEADERS)

    @mcp.custom_route("/metrics", methods=["GET"], include_in_schema=False)
    async def prometheus(request: Request) -> Response:
        if not auth.allows(request):
            return Response("authentication required\n", status_code=401, media_type="text/plain")
        body = await anyio.to_thread.run_sync(metrics.render)
        return Response(body, media_type=CONTENT_TYPE)
