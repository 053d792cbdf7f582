"""Pinned third-party corpora in four more languages, fetched from their package registries.

Nothing is vendored: each archive is downloaded once into ~/.cache/codebase-mcp/corpora, checked
against its sha256 and unpacked into the benchmark's temporary directory.

    go          github.com/go-chi/chi/v5 v5.1.0   (Go module proxy)
    rust        anyhow 1.0.86                      (crates.io)
    java        com.google.code.gson:gson 2.11.0   (Maven Central, the -sources jar)
    typescript  rxjs 7.8.1, its src/ tree          (npm registry)
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path("~/.cache/codebase-mcp/corpora").expanduser()


@dataclass(frozen=True)
class Corpus:
    language: str
    name: str
    url: str
    sha256: str
    keep: str  # only archive members under this prefix are unpacked (the prefix is stripped)


CORPORA = {
    "go": Corpus(
        "go",
        "go-chi/chi v5.1.0",
        "https://proxy.golang.org/github.com/go-chi/chi/v5/@v/v5.1.0.zip",
        "fa8a5399419187b3b29218067214d5e3fdfe23e2bb4ad1390df51c3e8741d7aa",
        "github.com/go-chi/chi/v5@v5.1.0/",
    ),
    "rust": Corpus(
        "rust",
        "anyhow 1.0.86",
        "https://static.crates.io/crates/anyhow/anyhow-1.0.86.crate",
        "b3d1d046238990b9cf5bcde22a3fb3584ee5cf65fb2765f454ed428c7a0063da",
        "anyhow-1.0.86/",
    ),
    "java": Corpus(
        "java",
        "gson 2.11.0",
        "https://repo1.maven.org/maven2/com/google/code/gson/gson/2.11.0/gson-2.11.0-sources.jar",
        "49a853f71bc874ee1898a4ad5009b57d0c536e5a998b3890253ffbf4b7276ad3",
        "",
    ),
    "typescript": Corpus(
        "typescript",
        "rxjs 7.8.1 (src/)",
        "https://registry.npmjs.org/rxjs/-/rxjs-7.8.1.tgz",
        "c532167725ab7d085123209156c93cef22f2479cb9c8527060f1cd903aa9d149",
        "package/src/",
    ),
}


def fetch(corpus: Corpus) -> bytes:
    return fetch_pinned(corpus.url, corpus.sha256, CACHE)


def fetch_pinned(url: str, sha256: str, cache: Path) -> bytes:
    """The archive at `url`, downloaded once into `cache` and checked against its pinned sha256
    (also used by scripts/train_static_model.py)."""
    cache.mkdir(parents=True, exist_ok=True)
    cached = cache / sha256
    if cached.is_file():
        data = cached.read_bytes()
    else:
        with urllib.request.urlopen(url, timeout=120) as response:  # pinned https URLs
            data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{url}: sha256 {digest}, expected {sha256}")
    cached.write_bytes(data)
    return data


def unpack(corpus: Corpus, into: Path) -> Path:
    """The corpus's files under `into`; members outside `keep` and unsafe names are skipped."""
    data = fetch(corpus)
    members: list[tuple[str, bytes]] = []
    if corpus.url.endswith((".zip", ".jar")):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    else:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    members.append((member.name, extracted.read()))
    for name, content in members:
        if not name.startswith(corpus.keep) or ".." in name.split("/") or name.startswith("/"):
            continue
        target = into / name[len(corpus.keep) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return into
