"""The front door of the streamable HTTP transport: Host, Origin, the bearer token, session bounds.

Why a middleware of our own: the MCP SDK checks Host and Origin only when it is handed
transport-security settings, and FastMCP leaves that off unless configured; its refusals are also
terse. A web page the user visits can reach a server on 127.0.0.1 through DNS rebinding (its own
name resolving to 127.0.0.1, so the browser sends `Host: evil.example`) or with a cross-origin
request (an `Origin` header the page cannot forge away). The MCP specification requires servers to
validate `Origin`. So, before any request reaches an MCP session:

1. `Host` must name loopback (`localhost`, `127.0.0.1`, `::1`, any port) or an entry of
   CODEBASE_MCP_ALLOWED_HOSTS; otherwise 421 (Misdirected Request) with a body that says so.
2. `Origin`, when present, must be a loopback origin or in CODEBASE_MCP_ALLOWED_ORIGINS (or name an
   allowed host); otherwise 403.
3. With a token configured, `Authorization: Bearer <token>` (compared in constant time); otherwise
   401 with `WWW-Authenticate: Bearer` and a body that says how to authenticate.
4. Each client (remote address) holds at most CODEBASE_MCP_MAX_SESSIONS_PER_CLIENT sessions: opening
   one more closes that client's least recently used session instead of refusing, so a flood of
   `initialize` calls costs the flooder its own sessions and never locks anyone out. Idle sessions
   expire after CODEBASE_MCP_SESSION_IDLE_SECONDS (the SDK's own timeout, set from the same value).

`/healthz` is exempt from all of it: it reports only "ok" or 503, and Kubernetes probes address the
pod by IP. The web console's routes (`self_authenticating_paths`) skip rule 3 only: they accept the
bearer token or the HttpOnly cookie of their login form and check either themselves.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
SESSION_HEADER = b"mcp-session-id"
EXEMPT_PATHS = frozenset({"/healthz"})
MIN_REMOTE_TOKEN_BYTES = 32


def host_name(host_header: str) -> str:
    """`example.com:8000` -> `example.com`; `[::1]:8000` -> `::1`; lower case."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 else host
    if host.count(":") == 1:
        return host.rsplit(":", 1)[0]
    return host


def is_loopback_name(name: str) -> bool:
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(pattern == "*" or fnmatchcase(name, pattern) for pattern in patterns)


@dataclass
class _Session:
    client: str
    authorization: bytes | None
    host: bytes
    last_used: float


class HttpGuard:
    """ASGI middleware; see the module docstring for the rules and their order."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        token: str | None = None,
        max_sessions_per_client: int = 32,
        session_idle_seconds: float = 900.0,
        mcp_path: str = "/mcp",
        self_authenticating_paths: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.self_authenticating = frozenset(
            p for p in self_authenticating_paths if not p.endswith("/") or p == "/"
        )
        self.self_authenticating_prefixes = tuple(
            p for p in self_authenticating_paths if p.endswith("/") and p != "/"
        )
        self.allowed_hosts = tuple(host_name(h) for h in allowed_hosts if h.strip())
        self.allowed_origins = tuple(o.strip().rstrip("/").lower() for o in allowed_origins if o.strip())
        self._token = token.encode() if token else None
        self.max_sessions_per_client = max_sessions_per_client
        self.session_idle_seconds = session_idle_seconds
        self.mcp_path = mcp_path.rstrip("/")
        # session id -> owner and last use, least recently used first.
        self._sessions: OrderedDict[bytes, _Session] = OrderedDict()

    # --- the checks -----------------------------------------------------------------------------

    def host_allowed(self, host_header: str) -> bool:
        name = host_name(host_header)
        return bool(name) and (is_loopback_name(name) or _matches(name, self.allowed_hosts))

    def origin_allowed(self, origin: str) -> bool:
        normalised = origin.strip().rstrip("/").lower()
        if _matches(normalised, self.allowed_origins):
            return True
        try:
            parts = urlsplit(normalised)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (sandboxed frames, file://) and anything odd
        return is_loopback_name(parts.hostname) or _matches(parts.hostname, self.allowed_hosts)

    def authenticates_itself(self, path: str) -> bool:
        return path in self.self_authenticating or path.startswith(self.self_authenticating_prefixes)

    def _token_ok(self, authorization: str | None) -> bool:
        assert self._token is not None
        if not authorization or not authorization.startswith("Bearer "):
            return False
        return hmac.compare_digest(authorization[len("Bearer ") :].strip().encode(), self._token)

    # --- ASGI -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.host_allowed(host):
            log.warning("refused an HTTP request for Host %r (DNS rebinding?)", host[:200])
            await _plain(
                send,
                421,
                f"Host {host[:200]!r} is not allowed: this server answers only to loopback names "
                "(localhost, 127.0.0.1, [::1]) unless CODEBASE_MCP_ALLOWED_HOSTS lists the name "
                "(for a deployment behind a proxy or a Kubernetes Service)\n",
            )
            return
        origin = headers.get(b"origin")
        if origin is not None and not self.origin_allowed(origin.decode("latin-1")):
            shown = origin.decode("latin-1")[:200]
            log.warning("refused an HTTP request from Origin %r", shown)
            await _plain(
                send,
                403,
                f"Origin {shown!r} is not allowed: browser pages may call this server only from "
                "loopback origins unless CODEBASE_MCP_ALLOWED_ORIGINS lists the origin\n",
            )
            return
        authorization = headers.get(b"authorization")
        path = scope.get("path", "")
        if (
            self._token is not None
            and not self.authenticates_itself(path)
            and not self._token_ok(authorization.decode("latin-1") if authorization is not None else None)
        ):
            await _plain(
                send,
                401,
                "authentication required: send the header 'Authorization: Bearer <token>' with the "
                "token the server was started with (CODEBASE_MCP_AUTH_TOKEN)\n",
                extra=[(b"www-authenticate", b'Bearer realm="codebase-mcp"')],
            )
            return
        if scope.get("path", "").rstrip("/") != self.mcp_path:
            await self.app(scope, receive, send)
            return
        await self._mcp_request(scope, receive, send, headers)

    # --- session accounting ---------------------------------------------------------------------

    async def _mcp_request(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        session_id = headers.get(SESSION_HEADER)
        client = _client_of(scope)
        now = time.monotonic()
        self._expire(now)
        if session_id is not None:
            known = self._sessions.get(session_id)
            if known is not None:
                known.last_used = now
                self._sessions.move_to_end(session_id)
        elif scope.get("method") == "POST":
            await self._make_room(client, scope)

        status: list[int] = []

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
                opened = _header_value(message.get("headers", []), SESSION_HEADER)
                if session_id is None and opened is not None and message["status"] < 400:
                    self._sessions[opened] = _Session(
                        client, headers.get(b"authorization"), headers.get(b"host", b""), time.monotonic()
                    )
            await send(message)

        await self.app(scope, receive, watching_send)
        if (
            session_id is not None
            and status
            and (status[0] == 404 or (scope.get("method") == "DELETE" and status[0] < 400))
        ):
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        # The SDK ends idle sessions itself; this only forgets them here.
        while self._sessions:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_used <= self.session_idle_seconds:
                break
            self._sessions.pop(oldest_id)

    async def _make_room(self, client: str, scope: Scope) -> None:
        owned = [sid for sid, s in self._sessions.items() if s.client == client]
        excess = len(owned) - self.max_sessions_per_client + 1
        for session_id in owned[: max(0, excess)]:
            session = self._sessions.pop(session_id)
            log.info("client %s is at %d HTTP sessions: closing its least recently used", client, len(owned))
            await self._close(session_id, session, scope)

    async def _close(self, session_id: bytes, session: _Session, scope: Scope) -> None:
        """End a session the way a client does: a DELETE with its id and credentials."""
        headers = [(b"host", session.host), (SESSION_HEADER, session_id)]
        if session.authorization is not None:
            headers.append((b"authorization", session.authorization))
        delete_scope = {**scope, "method": "DELETE", "headers": headers, "query_string": b""}

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def discard(message: Message) -> None:
            return None

        try:
            await self.app(delete_scope, receive, discard)
        except Exception:  # the session may have ended meanwhile; it is forgotten either way
            log.debug("closing HTTP session %r failed", session_id[:16], exc_info=True)


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _header_value(headers: Any, name: bytes) -> bytes | None:
    for key, value in headers:
        if key.lower() == name:
            return bytes(value)
    return None


def _client_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def _plain(
    send: Send, status: int, body: str, *, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = body.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(data)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
