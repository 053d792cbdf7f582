"""Connecting to PostgreSQL: an external DATABASE_URL, or the embedded server started on demand.

Why the embedded server is safe to share: `mcp_server.db.embedded` takes an inter-process lock and
records every holder's pid in the data directory, so the MCP server, the CLI, the local launcher's
supervisors and the indexers started at the same moment all end up on one postmaster; it stops
when the last holder exits. An indexer that outlives the MCP server keeps it up.

Migrations: on the embedded database they are applied automatically (under an advisory lock, so
two processes starting together never run them twice). An external database is migrated by
`codebase-mcp db upgrade` (the Helm chart's hook); a process that finds it behind refuses to start
with a message that says so.
"""

from __future__ import annotations

import logging
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from mcp_server.core.errors import ConfigurationError, DatabaseUnavailable
from mcp_server.core.settings import Settings
from mcp_server.db import embedded, lifetime, revisions
from mcp_server.db.errors import first_line

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "codebase_mcp"
_MIGRATION_LOCK_KEY = 0x636F6465  # arbitrary constant: "code"

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()
_embedded_servers: dict[Path, Any] = {}


def redact_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _start_embedded(pgdata: Path) -> str:
    """Start (or join) the embedded server in `pgdata` and return a psycopg URL to our database.

    The server's start, stop, restart, pid file, socket and authentication rules live in
    `mcp_server.db.embedded`."""
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded.server_for(pgdata)
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(f"could not start the embedded PostgreSQL in {pgdata}: {exc}") from exc
    _embedded_servers[pgdata] = server
    admin_url = make_url(server.url("postgres"))
    # CREATE DATABASE cannot run in a transaction and two processes may race to do it.
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=_null_pool())
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": EMBEDDED_DATABASE}
            ).scalar()
            if not exists:
                try:
                    conn.execute(text(f'CREATE DATABASE "{EMBEDDED_DATABASE}"'))
                except Exception as exc:  # another process created it first
                    if "already exists" not in str(exc):
                        raise
    finally:
        admin.dispose()
    return server.url(EMBEDDED_DATABASE)


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool


def database_url(settings: Settings) -> str:
    """The SQLAlchemy URL to use: DATABASE_URL, or the embedded server (started if needed)."""
    if settings.database.url is not None:
        raw = settings.database.url.get_secret_value()
        try:
            url = make_url(raw)
        except Exception:
            raise ConfigurationError("DATABASE_URL: not a valid database URL") from None
        if not url.drivername.startswith("postgresql"):
            raise ConfigurationError(f"DATABASE_URL: only PostgreSQL is supported, got {url.drivername!r}")
        return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    embedded_url = _start_embedded(settings.database.pgdata_dir)
    lifetime.keep_alive(settings.database.pgdata_dir, settings.database.linger_seconds)
    return embedded_url


def is_embedded(settings: Settings) -> bool:
    return settings.database.url is None


def get_engine(settings: Settings, *, migrate: bool = True) -> Engine:
    """One engine per URL per process; on first use, check (or, embedded, apply) migrations."""
    url = database_url(settings)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        engine = create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 10, "application_name": "codebase-mcp"},
        )
        _register_vector_types(engine)
        if is_embedded(settings):
            # A server that died (kill -9, a crash) is started again by the first process that
            # fails to connect; the others find it running.
            embedded.attach_restart(engine, embedded.server_for(settings.database.pgdata_dir))
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            engine.dispose()
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {redact_url(url)}: {first_line(exc)}"
            ) from None
        if migrate:
            if is_embedded(settings):
                upgrade(engine)
            else:
                _require_current_schema(engine)
        # Connections opened before the migration created the `vector` type lack its adapter.
        engine.dispose()
        _engines[url] = engine
        return engine


def _register_vector_types(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        from pgvector.psycopg import register_vector

        try:
            register_vector(dbapi_connection)
        except Exception:
            # Before the first migration the extension may not exist yet; the migration creates it
            # and connections opened afterwards register the type.
            dbapi_connection.rollback()


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


# --- migrations ---------------------------------------------------------------------------------


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    script_location = str(resources.files("mcp_server.migrations"))
    config = Config()
    config.set_main_option("script_location", script_location)
    # configparser interpolates '%': the socket path in the URL is percent-encoded.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def head_revision(engine: Engine) -> str:
    cheap = revisions.head_from_files()
    if cheap is not None:
        return cheap
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config(engine))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        exists = conn.execute(text("SELECT to_regclass('public.alembic_version')")).scalar()
        if exists is None:
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run_alembic(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run_alembic(engine, "downgrade", revision)


def _run_alembic(engine: Engine, verb: str, revision: str) -> None:
    from alembic import command

    if verb == "upgrade" and revision == "head" and current_revision(engine) == head_revision(engine):
        return
    config = _alembic_config(engine)
    with engine.connect() as conn:
        # Serialise concurrent migrators; the lock is released when the session ends.
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        try:
            config.attributes["connection"] = conn
            if verb == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
            conn.commit()
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            conn.commit()


def _require_current_schema(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise DatabaseUnavailable(
            f"the database schema is at revision {current or 'none'} but this version needs {head}: "
            "run `codebase-mcp db upgrade`"
        )
