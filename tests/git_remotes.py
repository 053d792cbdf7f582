"""Git remotes for tests, made on the spot: a bare repository with branches and tags (file://), a
dumb-HTTP server that wants a token, and a server that hangs up. Loopback only."""

from __future__ import annotations

import base64
import http.server
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TOKEN = "ghp_s3cr3t-t0ken"


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@dataclass
class Remote:
    """A bare repository (`bare`) pushed from a work tree (`work`) that tests add commits to."""

    work: Path
    bare: Path

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def commit(self, files: dict[str, str], message: str, *, branch: str = "main") -> str:
        if git("symbolic-ref", "--short", "HEAD", cwd=self.work) != branch:
            git("checkout", "--quiet", branch, cwd=self.work)
        for name, text in files.items():
            (self.work / name).parent.mkdir(parents=True, exist_ok=True)
            (self.work / name).write_text(text)
        git("add", ".", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", "--tags", str(self.bare), branch, cwd=self.work)
        git("update-server-info", cwd=self.bare)  # for the dumb HTTP server
        return git("rev-parse", "HEAD", cwd=self.work)

    def rev(self, name: str) -> str:
        return git("rev-parse", f"{name}^{{commit}}", cwd=self.bare)


def make_remote(where: Path) -> Remote:
    """main: first (a.py), second (b.py), tagged v1 (annotated) and light; feature/x: c.py."""
    work, bare = where / "work", where / "remote.git"
    work.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=work)
    git("config", "user.email", "t@example.invalid", cwd=work)
    git("config", "user.name", "t", cwd=work)
    git("init", "--quiet", "--bare", "--initial-branch=main", str(bare), cwd=where)
    remote = Remote(work=work, bare=bare)
    remote.commit({"a.py": "def first():\n    return 1\n"}, "first")
    git("tag", "-a", "v1", "-m", "version 1", cwd=work)
    remote.commit({"b.py": "def second():\n    return 2\n"}, "second")
    git("tag", "light", cwd=work)
    git("checkout", "--quiet", "-b", "feature/x", cwd=work)
    remote.commit({"c.py": "def feature():\n    return 3\n"}, "feature", branch="feature/x")
    git("checkout", "--quiet", "main", cwd=work)
    git("push", "--quiet", "--tags", str(bare), "main", cwd=work)
    git("update-server-info", cwd=bare)
    return remote


class _TokenGitServer(http.server.SimpleHTTPRequestHandler):
    """git's dumb HTTP protocol (plain files) behind Basic authentication with TOKEN."""

    def do_GET(self) -> None:
        expected = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def token_server(bare: Path) -> Iterator[str]:
    """The URL of `bare` served over http://127.0.0.1 to clients that send TOKEN."""

    def handler(*args: object, **kwargs: object) -> _TokenGitServer:
        return _TokenGitServer(*args, directory=str(bare.parent), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{bare.name}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hanging_up_server() -> Iterator[str]:
    """An http:// URL whose server accepts each connection and closes it at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/repo.git"
    finally:
        stop.set()
        listener.close()
