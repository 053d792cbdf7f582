"""Write `.env.example`, the README's configuration table and the chart ConfigMap from the settings.

    .venv/bin/python scripts/generate_settings_docs.py          rewrite the three files
    .venv/bin/python scripts/generate_settings_docs.py --check  exit 1 and name the files that drift

`mcp_server/core/settings.py` is the one place a variable is declared: its group, default, bounds
and one-line docstring. A field whose `json_schema_extra` has a `chart` expression is set by the
chart's ConfigMap from that Helm expression; the others are not the chart's business (secrets,
local-only paths). tests/test_settings_docs.py runs `--check`.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import NoDecode

from mcp_server.core.settings import GROUPS

ROOT = Path(__file__).resolve().parents[1]
ENV_EXAMPLE = ROOT / ".env.example"
README = ROOT / "README.md"
CONFIGMAP = ROOT / "charts" / "codebase-mcp" / "templates" / "configmap.yaml"
README_BEGIN, README_END = "<!-- settings:begin -->", "<!-- settings:end -->"
CHART_BEGIN, CHART_END = "  # settings:begin (scripts/generate_settings_docs.py)", "  # settings:end"


def _variables() -> list[tuple[str, str, FieldInfo]]:
    """(group, variable, field) in declaration order."""
    out = []
    for group_name, group in GROUPS.items():
        for field in group.model_fields.values():
            assert isinstance(field.validation_alias, str), f"{group_name}: every field names its variable"
            out.append((group_name, field.validation_alias, field))
    return out


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
    else:
        value = field.default
    if value is None:
        return ""
    if isinstance(value, Path):
        return str(value).replace(str(Path.home()), "~", 1)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        if NoDecode in field.metadata:  # a separated list, not JSON
            return ",".join(str(item) for item in value)
        return json.dumps(value)
    return str(value)


def _doc(field: FieldInfo) -> str:
    return " ".join((field.description or "").split())


def env_example() -> str:
    lines = [
        "# codebase-mcp configuration, generated from mcp_server/core/settings.py by",
        "# scripts/generate_settings_docs.py (do not edit by hand). Every variable is optional; the",
        "# defaults run everything on one machine with an embedded PostgreSQL. Values are read from the",
        "# environment: export what you need, or load this file with your process manager.",
    ]
    current = None
    for group_name, variable, field in _variables():
        if group_name != current:
            current = group_name
            title = " ".join((GROUPS[group_name].__doc__ or "").split())
            lines += ["", f"# --- {group_name}: {title}"]
        lines += ["# " + line for line in textwrap.wrap(_doc(field), width=98)]
        lines.append(f"{variable}={_default(field)}")
    return "\n".join(lines) + "\n"


def readme_table() -> str:
    rows = ["| variable | component | default | meaning |", "| --- | --- | --- | --- |"]
    for group_name, variable, field in _variables():
        default = _default(field)
        shown = f"`{default}`" if default else "unset"
        meaning = _doc(field).replace("|", "\\|")
        rows.append(f"| `{variable}` | {group_name} | {shown} | {meaning} |")
    return "\n".join(rows)


def configmap_entries() -> str:
    lines = []
    current = None
    for group_name, variable, field in _variables():
        extra = field.json_schema_extra
        if not isinstance(extra, dict) or "chart" not in extra:
            continue
        if group_name != current:
            current = group_name
            lines.append(f"  # {group_name}")
        expression = str(extra["chart"])
        value = expression if " " not in expression and "." not in expression else "{{ " + expression + " }}"
        lines.append(f"  {variable}: {value}")
    return "\n".join(lines)


def _between(text: str, begin: str, end: str, body: str, path: Path) -> str:
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{path}: the markers {begin!r} and {end!r} are missing")
    return text[: start + len(begin)] + "\n" + body + "\n" + text[stop:]


def rendered() -> dict[Path, str]:
    return {
        ENV_EXAMPLE: env_example(),
        README: _between(README.read_text(), README_BEGIN, README_END, readme_table(), README),
        CONFIGMAP: _between(CONFIGMAP.read_text(), CHART_BEGIN, CHART_END, configmap_entries(), CONFIGMAP),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    args = parser.parse_args()
    drifted = []
    for path, text in rendered().items():
        if path.read_text() != text:
            drifted.append(path)
            if not args.check:
                path.write_text(text)
    if args.check and drifted:
        names = ", ".join(str(p.relative_to(ROOT)) for p in drifted)
        print(f"out of date: {names}; run scripts/generate_settings_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
