#!/usr/bin/env python3
"""Fine-tune the shipped static embedding table on code: doc comments paired with their code.

The distilled table (scripts/build_static_model.py) knows English words the way all-MiniLM-L6-v2
does, but not that "reads exactly n bytes" is about `ReadFull`'s body: a paraphrase's answer was
found only when its rarer words happened to occur in the code (bench/quality/NOTES.md, semantic
MRR@10 0.25 to 0.56). This script teaches the table that mapping, with the embedder's own forward
pass and nothing but numpy:

1. **Pairs.** Pinned third-party packages in the five benchmark languages, fetched from their
   registries (none of them is a corpus of bench/search_quality.py), plus the running
   interpreter's standard library, are cut by the indexer's own chunker. Each named definition
   with a doc comment or docstring gives one pair: the doc's first paragraph (markup and the
   definition's own name removed, so the pair cannot be matched by that name alone) and the
   chunk's embedding text (`embedding_text`: path, symbol, code) with its comments removed.
2. **Loss.** Symmetric InfoNCE over the batch (every other pair's code is a negative), cosine
   similarity at temperature `--temperature`, plus `--anchor` x the squared distance to the
   distilled table, so words the pairs never mention keep their meaning.
3. **Forward and backward.** A text's vector is `normalize(sum sqrt(count) x table[token])`, the
   tokens and weights coming from `StaticEmbedder` itself, so training and indexing cannot
   disagree on pooling. Per batch, the touched rows form a dense (texts x rows) weight matrix;
   Adam updates only those rows (lazy Adam).
4. **Held out.** 4% of the pairs (chosen by a hash of their text) are never trained on; their
   MRR@10 against each other is printed before and after, and the best epoch by it is kept.

The result is a model directory like the shipped one (same tokenizer, pooling and dimension,
float16 table), with the training recorded in its config.json. The pairs depend only on the
pinned archives, the interpreter's version and the chunker; training is seeded.

Usage:
    python scripts/train_static_model.py --output DIR [--epochs 4] [--max-pairs N]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
import sysconfig
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from quality_corpora import fetch_pinned  # noqa: E402

from mcp_server.embeddings.static import SHIPPED_MODEL_DIRS, StaticEmbedder, _load  # noqa: E402
from mcp_server.index.embedding_text import embedding_text  # noqa: E402
from mcp_server.indexer.chunker import analyse_source  # noqa: E402
from mcp_server.indexer.languages import language_for_path  # noqa: E402

CACHE = Path("~/.cache/codebase-mcp/training-corpora").expanduser()
MODEL_ID = "minilm-l6-static-code-v1"
# What is fine-tuned: the distilled table (scripts/build_static_model.py), never a trained one.
BASE_MODEL_DIR = SHIPPED_MODEL_DIRS["minilm-l6-static-v1"]
DEFAULT_OUTPUT = REPO_ROOT / "mcp_server" / "embeddings" / "models" / "minilm-l6-static-code"


@dataclass(frozen=True)
class Archive:
    name: str
    url: str
    sha256: str
    licence: str


# None of these is a corpus of bench/search_quality.py (boltons, markdown, sqlparse, humanize,
# itsdangerous, chi, anyhow, gson, rxjs), so the benchmark stays held out.
ARCHIVES = (
    Archive(
        "golang.org/x/tools v0.26.0",
        "https://proxy.golang.org/golang.org/x/tools/@v/v0.26.0.zip",
        "2e7f4eff4d5d5834c92f8aa59e44a889af5795c3fa8d1e146fc8224c778aefb5",
        "BSD-3-Clause",
    ),
    Archive(
        "golang.org/x/net v0.30.0",
        "https://proxy.golang.org/golang.org/x/net/@v/v0.30.0.zip",
        "c357b779cdc08d0952f7bad4c45ce84223b7c6005d775822a17901ae8f65bbba",
        "BSD-3-Clause",
    ),
    Archive(
        "com.google.guava:guava 33.3.1-jre (sources)",
        "https://repo1.maven.org/maven2/com/google/guava/guava/33.3.1-jre/guava-33.3.1-jre-sources.jar",
        "b7cbdad958b791f2a036abff7724570bf9836531c460966f8a3d0df8eaa1c21d",
        "Apache-2.0",
    ),
    Archive(
        "org.apache.commons:commons-lang3 3.17.0 (sources)",
        "https://repo1.maven.org/maven2/org/apache/commons/commons-lang3/3.17.0/commons-lang3-3.17.0-sources.jar",
        "5fdcac21ad329766054a95367d7583dfcdca737d221d5e01a5f2a198c04c6b18",
        "Apache-2.0",
    ),
    Archive(
        "tokio 1.40.0",
        "https://static.crates.io/crates/tokio/tokio-1.40.0.crate",
        "e2b070231665d27ad9ec9b8df639893f46727666c6767db40317fbe920a5d998",
        "MIT",
    ),
    Archive(
        "itertools 0.13.0",
        "https://static.crates.io/crates/itertools/itertools-0.13.0.crate",
        "413ee7dfc52ee1a4949ceeb7dbc8a33f2d6c088194d9f922fb8318faf1f01186",
        "MIT OR Apache-2.0",
    ),
    Archive(
        "serde 1.0.210",
        "https://static.crates.io/crates/serde/serde-1.0.210.crate",
        "c8e3592472072e6e22e0a54d5904d9febf8508f65fb8552499a1abc7d1078c3a",
        "MIT OR Apache-2.0",
    ),
    Archive(
        "@types/node 22.7.5",
        "https://registry.npmjs.org/@types/node/-/node-22.7.5.tgz",
        "c68fe2ee2020eb678132e27a80b01285bc757890d5c35830193471866bf016f1",
        "MIT",
    ),
    Archive(
        "@types/vscode 1.94.0",
        "https://registry.npmjs.org/@types/vscode/-/vscode-1.94.0.tgz",
        "a072d8d3eff289f1ef067ae380d9e9bdbbd914ab728af23fc25bda6b3bad3a77",
        "MIT",
    ),
    Archive(
        "golang.org/x/text v0.19.0",
        "https://proxy.golang.org/golang.org/x/text/@v/v0.19.0.zip",
        "37f9f40b6c3c56e079684d612439b61ce4e891c3cea32298fbab53a1cac47c35",
        "BSD-3-Clause",
    ),
    Archive(
        "k8s.io/apimachinery v0.31.1",
        "https://proxy.golang.org/k8s.io/apimachinery/@v/v0.31.1.zip",
        "14d8f570bc448f3616c048b14ad5cb6aee0ddd4474af8003a291577fc25630c6",
        "Apache-2.0",
    ),
    Archive(
        "github.com/spf13/cobra v1.8.1",
        "https://proxy.golang.org/github.com/spf13/cobra/@v/v1.8.1.zip",
        "bf27a276f87257c93bc057309df30265a19beefc3d5fc887cbd8fc99ad35466a",
        "Apache-2.0",
    ),
    Archive(
        "org.apache.commons:commons-collections4 4.4 (sources)",
        "https://repo1.maven.org/maven2/org/apache/commons/commons-collections4/4.4/commons-collections4-4.4-sources.jar",
        "93b4ff13ee810830a247dfa83bf5b73c401a591af4c11f3efb9b9da581e70452",
        "Apache-2.0",
    ),
    Archive(
        "com.fasterxml.jackson.core:jackson-databind 2.18.0 (sources)",
        "https://repo1.maven.org/maven2/com/fasterxml/jackson/core/jackson-databind/2.18.0/jackson-databind-2.18.0-sources.jar",
        "0531788c8193e81e40e16ff7c16401d7c5cb629ed493bb13d091d980bc425123",
        "Apache-2.0",
    ),
    Archive(
        "bytes 1.7.2",
        "https://static.crates.io/crates/bytes/bytes-1.7.2.crate",
        "428d9aa8fbc0670b7b8d6030a7fadd0f86151cae55e4dbbece15f3780a3dfaf3",
        "MIT",
    ),
    Archive(
        "rayon 1.10.0",
        "https://static.crates.io/crates/rayon/rayon-1.10.0.crate",
        "b418a60154510ca1a002a752ca9714984e21e4241e804d32555251faf8b78ffa",
        "MIT OR Apache-2.0",
    ),
    Archive(
        "hashbrown 0.15.0",
        "https://static.crates.io/crates/hashbrown/hashbrown-0.15.0.crate",
        "1e087f84d4f86bf4b218b927129862374b72199ae7d8657835f1e89000eea4fb",
        "MIT OR Apache-2.0",
    ),
    Archive(
        "clap_builder 4.5.20",
        "https://static.crates.io/crates/clap_builder/clap_builder-4.5.20.crate",
        "19bc80abd44e4bed93ca373a0704ccbd1b710dc5749406201bb018272808dc54",
        "MIT OR Apache-2.0",
    ),
    Archive(
        "typescript 5.6.3 (its .d.ts files)",
        "https://registry.npmjs.org/typescript/-/typescript-5.6.3.tgz",
        "ef67f8d8ad895858024b7339d3e34bf112cae3c5db1f538c3079038b17ae30fa",
        "Apache-2.0",
    ),
    Archive(
        "@types/lodash 4.17.10",
        "https://registry.npmjs.org/@types/lodash/-/lodash-4.17.10.tgz",
        "6422bcd19bded87eb21fb42369c50ec2058489d88473243c50124d1db20bc43f",
        "MIT",
    ),
    Archive(
        "date-fns 4.1.0 (its .d.ts files)",
        "https://registry.npmjs.org/date-fns/-/date-fns-4.1.0.tgz",
        "90718290bbf34bf3d0c80bb70456e0069e0cc547caccaf1464fe42f1f602c460",
        "MIT",
    ),
    Archive(
        "@types/react 18.3.11",
        "https://registry.npmjs.org/@types/react/-/react-18.3.11.tgz",
        "53e5b3c5b5bae1e5b63385239156a01db04140fa01b2186960fb2078f3ec7209",
        "MIT",
    ),
    Archive(
        "requests 2.32.3",
        "https://files.pythonhosted.org/packages/63/70/2bf7780ad2d390a8d301ad0b550f1581eadbd9a20f896afe06353c2a2913/requests-2.32.3.tar.gz",
        "55365417734eb18255590a9ff9eb97e9e1da868d4ccd6402399eaf68af20a760",
        "Apache-2.0",
    ),
    Archive(
        "click 8.1.7",
        "https://files.pythonhosted.org/packages/96/d3/f04c7bfcf5c1862a2a5b845c6b2b360488cf47af55dfa79c98f6a6bf98b5/click-8.1.7.tar.gz",
        "ca9853ad459e787e2192211578cc907e7594e294c7ccc834310722b41b9ca6de",
        "BSD-3-Clause",
    ),
    Archive(
        "attrs 24.2.0",
        "https://files.pythonhosted.org/packages/fc/0f/aafca9af9315aee06a89ffde799a10a582fe8de76c563ee80bbcdc08b3fb/attrs-24.2.0.tar.gz",
        "5cfb1b9148b5b086569baec03f20d7b6bf3bcacc9a42bebf87ffaaca362f6346",
        "MIT",
    ),
    Archive(
        "rich 13.9.2",
        "https://files.pythonhosted.org/packages/aa/9e/1784d15b057b0075e5136445aaea92d23955aad2c93eaede673718a40d95/rich-13.9.2.tar.gz",
        "51a2c62057461aaf7152b4d611168f93a9fc73068f8ded2790f29fe2b5366d0c",
        "MIT",
    ),
    Archive(
        "jinja2 3.1.4",
        "https://files.pythonhosted.org/packages/ed/55/39036716d19cab0747a5020fc7e907f362fbf48c984b14e62127f7e68e5d/jinja2-3.1.4.tar.gz",
        "4a3aee7acbbe7303aede8e9648d13b8bf88a429282aa6122a993f0ac800cb369",
        "BSD-3-Clause",
    ),
    Archive(
        "werkzeug 3.0.4",
        "https://files.pythonhosted.org/packages/0f/e2/6dbcaab07560909ff8f654d3a2e5a60552d937c909455211b1b36d7101dc/werkzeug-3.0.4.tar.gz",
        "34f2371506b250df4d4f84bfe7b0921e4762525762bbd936614909fe25cd7306",
        "BSD-3-Clause",
    ),
)
LANGUAGES = {"python", "go", "java", "rust", "typescript"}
# Tests and examples document little and repeat the library's names; vendored copies repeat it.
SKIPPED_PARTS = {"test", "tests", "testdata", "testing", "examples", "idle_test", "site-packages", "vendor"}
MIN_DOC_WORDS, MAX_DOC_WORDS = 4, 48
MIN_CODE_LINES = 2
HELD_OUT_PER_MILLE = 40


@dataclass(frozen=True)
class Pair:
    doc: str
    code: str
    language: str


def fetch(archive: Archive) -> bytes:
    data: bytes = fetch_pinned(archive.url, archive.sha256, CACHE)
    return data


def archive_files(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) of every regular member of a zip/jar or a gzipped tar."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, zf.read(info)
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        for member in tf:
            if member.isfile():
                handle = tf.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()


def stdlib_files() -> Iterator[tuple[str, bytes]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        yield f"python{sys.version_info.major}.{sys.version_info.minor}/{relative}", path.read_bytes()


_PY_DOCSTRING = re.compile(r'^[ \t]*[rRuU]?("""|\'\'\')(.*?)\1[ \t]*\n?', re.S | re.M)
_PY_COMMENT = re.compile(r"^[ \t]*#.*\n?", re.M)
_C_BLOCK = re.compile(r"/\*.*?\*/", re.S)
_C_LINE = re.compile(r"^[ \t]*//.*\n?", re.M)
_MARKUP = (
    (re.compile(r"\{@(?:link|linkplain|code|literal)\s+([^}]*)\}"), r"\1"),
    (re.compile(r"<[^>]{1,40}>"), " "),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"[`*_\[\]#>|]"), " "),
    (re.compile(r"&[a-z]+;"), " "),
)


def clean_doc(raw: str, name: str) -> str | None:
    """The doc's first paragraph as plain words, without the definition's own name."""
    lines = []
    for line in raw.splitlines():
        line = re.sub(r"^\s*(?:/\*\*?|\*/|\*|///?!?|//)\s?", "", line).rstrip(" */")
        if line.lstrip().startswith("@") or line.lstrip().startswith(":param"):
            break
        lines.append(line)
    paragraph: list[str] = []
    for line in lines:
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    text = " ".join(paragraph)
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    # The name is dropped only when it is an identifier no prose would use (`ReadBuf`, `make_token`):
    # "Returns the version" must keep `version`.
    own = name if re.search(r"[a-z][A-Z]|_|\d", name) else None
    words = [w for w in text.split() if w.strip(".,;:()") != own]
    if len(words) < MIN_DOC_WORDS:
        return None
    return " ".join(words[:MAX_DOC_WORDS])


def split_doc(content: str, language: str, start: int) -> tuple[str, str] | None:
    """(doc, code without comments) of a chunk whose definition starts at line `start` of it."""
    if language == "python":
        body = "\n".join(content.splitlines()[start:])
        match = _PY_DOCSTRING.search(body)
        if match is None or body[: match.start()].count("\n") > 3:
            return None
        code = _PY_DOCSTRING.sub("", content, count=1)
        return match.group(2), _PY_COMMENT.sub("", code)
    # The comment block right above the definition, attributes and annotations skipped.
    lines = content.splitlines()
    doc: list[str] = []
    for line in reversed(lines[:start]):
        stripped = line.strip()
        if stripped.startswith(("//", "/*", "*")):
            doc.insert(0, line)
        elif stripped.startswith(("#[", "@")) and not doc:
            continue
        else:
            break
    if not doc:
        return None
    code = _C_LINE.sub("", _C_BLOCK.sub("", content))
    return "\n".join(doc), code


def file_pairs(path: str, data: bytes) -> list[Pair]:
    parts = set(path.lower().split("/"))
    if parts & SKIPPED_PARTS or path.endswith(("_test.go", "Test.java", ".test.ts")):
        return []
    language = language_for_path(path)
    if language not in LANGUAGES:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return []
    try:
        analysis = analyse_source(text, language, pack_lines=0)
    except Exception:
        return []
    starts = {d.qualified_name: d.start_line for d in analysis.definitions}
    pairs = []
    for chunk in analysis.chunks:
        if not chunk.symbol or chunk.symbol not in starts:
            continue
        split = split_doc(chunk.content, language, max(0, starts[chunk.symbol] - chunk.start_line))
        if split is None:
            continue
        doc = clean_doc(split[0], chunk.symbol.rsplit(".", 1)[-1])
        code = split[1].strip()
        if doc is None or code.count("\n") + 1 < MIN_CODE_LINES:
            continue
        pairs.append(Pair(doc, embedding_text(path, chunk.symbol, code), language))
    return pairs


def collect_pairs() -> tuple[list[Pair], list[dict[str, Any]]]:
    sources: list[tuple[str, Iterator[tuple[str, bytes]], dict[str, Any]]] = []
    for archive in ARCHIVES:
        record: dict[str, Any] = {
            "name": archive.name,
            "url": archive.url,
            "sha256": archive.sha256,
            "licence": archive.licence,
        }
        sources.append((archive.name, archive_files(fetch(archive)), record))
    python = f"CPython {sys.version.split()[0]} standard library"
    sources.append((python, stdlib_files(), {"name": python, "licence": "PSF-2.0"}))
    pairs: list[Pair] = []
    seen: set[str] = set()
    records = []
    for name, files, record in sources:
        before = len(pairs)
        for path, data in files:
            for pair in file_pairs(path, data):
                if pair.doc not in seen:  # overloads share a doc: two positives for one query
                    seen.add(pair.doc)
                    pairs.append(pair)
        record["pairs"] = len(pairs) - before
        records.append(record)
        print(f"  {name}: {record['pairs']} pairs", flush=True)
    return pairs, records


def held_out(pair: Pair) -> bool:
    return int(hashlib.sha256(pair.doc.encode()).hexdigest()[:8], 16) % 1000 < HELD_OUT_PER_MILLE


@dataclass
class Encoded:
    """Texts as the embedder pools them: flat token ids and weights, and each text's slice."""

    tokens: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float32]
    offsets: npt.NDArray[np.int64]  # text i is [offsets[i], offsets[i + 1])

    def batch(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        spans = [np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows]
        owner = np.repeat(np.arange(len(rows)), [len(s) for s in spans])
        index = np.concatenate(spans) if spans else np.zeros(0, dtype=np.int64)
        return self.tokens[index], self.weights[index], owner


def encode(embedder: StaticEmbedder, texts: list[str]) -> Encoded:
    model = _load(BASE_MODEL_DIR)
    tokens, weights, counts = [], [], []
    for start in range(0, len(texts), 512):
        t, w, per_text = embedder._expand(
            model.words, texts[start : start + 512]
        )  # the embedder's own pooling
        tokens.append(t)
        weights.append(w)
        counts.append(per_text)
    per = np.concatenate(counts)
    return Encoded(
        np.concatenate(tokens),
        np.concatenate(weights).astype(np.float32),
        np.concatenate([[0], np.cumsum(per)]),
    )


def pooled(
    table: npt.NDArray[np.float32],
    tokens: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    n: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Raw (unnormalised) vectors of n texts, with the rows touched and the (texts x rows) weights."""
    rows, inverse = np.unique(tokens, return_inverse=True)
    dense = np.zeros((n, len(rows)), dtype=np.float32)
    np.add.at(dense, (owner, inverse), weights)
    return dense @ table[rows], rows, dense


def normalised(raw: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    norms = np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-6).astype(np.float32)
    return raw / norms, norms


def mrr_at_10(table: npt.NDArray[np.float32], docs: Encoded, codes: Encoded, n: int) -> float:
    """Each held-out doc against all held-out codes."""
    ids = np.arange(n)
    q, _ = normalised(pooled(table, *docs.batch(ids), n)[0])
    k, _ = normalised(pooled(table, *codes.batch(ids), n)[0])
    scores = q @ k.T
    rank = (scores > scores[ids, ids][:, None]).sum(axis=1)
    return float(np.where(rank < 10, 1.0 / (rank + 1), 0.0).mean())


def train(
    table0: npt.NDArray[np.float32],
    docs: Encoded,
    codes: Encoded,
    n: int,
    held: tuple[Encoded, Encoded, int],
    args: argparse.Namespace,
) -> tuple[npt.NDArray[np.float32], list[dict[str, float]]]:
    rng = np.random.default_rng(args.seed)
    table = table0.copy()
    m = np.zeros_like(table)
    v = np.zeros_like(table)
    steps_done = np.zeros(len(table), dtype=np.int64)
    beta1, beta2 = 0.9, 0.999
    history = [{"epoch": 0, "held_out_mrr10": mrr_at_10(table, *held)}]
    print(f"  epoch 0: held-out MRR@10 {history[0]['held_out_mrr10']:.4f}", flush=True)
    best, best_table = history[0]["held_out_mrr10"], table.copy()
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        losses = []
        began = time.monotonic()
        for start in range(0, n - args.batch + 1, args.batch):
            ids = order[start : start + args.batch]
            b = len(ids)
            q_raw, q_rows, q_dense = pooled(table, *docs.batch(ids), b)
            k_raw, k_rows, k_dense = pooled(table, *codes.batch(ids), b)
            q, q_norm = normalised(q_raw)
            k, k_norm = normalised(k_raw)
            logits = (q @ k.T) / args.temperature
            # Symmetric InfoNCE: doc -> code and code -> doc, the diagonal is the right answer.
            p_rows = np.exp(logits - logits.max(axis=1, keepdims=True))
            p_rows /= p_rows.sum(axis=1, keepdims=True)
            p_cols = np.exp(logits - logits.max(axis=0, keepdims=True))
            p_cols /= p_cols.sum(axis=0, keepdims=True)
            diag = np.arange(b)
            losses.append(float(-(np.log(p_rows[diag, diag]) + np.log(p_cols[diag, diag])).mean() / 2))
            d_logits = (p_rows + p_cols) / (2 * b)
            d_logits[diag, diag] -= 1.0 / b
            d_logits /= args.temperature
            dq = d_logits @ k
            dk = d_logits.T @ q
            # Through the normalisation: d raw = (d unit - unit (unit . d unit)) / norm.
            dq_raw = (dq - q * (dq * q).sum(axis=1, keepdims=True)) / q_norm
            dk_raw = (dk - k * (dk * k).sum(axis=1, keepdims=True)) / k_norm
            rows = np.union1d(q_rows, k_rows)
            grad = np.zeros((len(rows), table.shape[1]), dtype=np.float32)
            grad[np.searchsorted(rows, q_rows)] += q_dense.T @ dq_raw
            grad[np.searchsorted(rows, k_rows)] += k_dense.T @ dk_raw
            grad += 2 * args.anchor * (table[rows] - table0[rows])
            # Lazy Adam: moments and bias correction per row, only for the rows this batch used.
            steps_done[rows] += 1
            m[rows] = beta1 * m[rows] + (1 - beta1) * grad
            v[rows] = beta2 * v[rows] + (1 - beta2) * grad * grad
            t = steps_done[rows][:, None]
            m_hat = m[rows] / (1 - beta1**t)
            v_hat = v[rows] / (1 - beta2**t)
            table[rows] -= args.lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        score = mrr_at_10(table, *held)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "held_out_mrr10": score})
        print(
            f"  epoch {epoch}: loss {np.mean(losses):.4f}, held-out MRR@10 {score:.4f} "
            f"({time.monotonic() - began:.0f} s)",
            flush=True,
        )
        if score > best:
            best, best_table = score, table.copy()
    return best_table, history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--temperature", type=float, default=0.02)
    parser.add_argument("--anchor", type=float, default=0.001)
    parser.add_argument("--max-pairs", type=int, default=0, help="train on at most this many pairs (0: all)")
    parser.add_argument("--held-out-max", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print("pairs:", flush=True)
    pairs, records = collect_pairs()
    held = [p for p in pairs if held_out(p)][: args.held_out_max]
    trained = [p for p in pairs if not held_out(p)]
    if args.max_pairs:
        trained = [
            trained[i] for i in np.random.default_rng(args.seed).permutation(len(trained))[: args.max_pairs]
        ]
    print(f"  {len(trained)} to train on, {len(held)} held out", flush=True)

    embedder = StaticEmbedder(model_dir=BASE_MODEL_DIR)
    table0 = load_file(str(BASE_MODEL_DIR / "embeddings.safetensors"))["embeddings"].astype(np.float32)
    began = time.monotonic()
    docs, codes = encode(embedder, [p.doc for p in trained]), encode(embedder, [p.code for p in trained])
    held_docs, held_codes = encode(embedder, [p.doc for p in held]), encode(embedder, [p.code for p in held])
    print(f"  encoded in {time.monotonic() - began:.0f} s", flush=True)
    table, history = train(table0, docs, codes, len(trained), (held_docs, held_codes, len(held)), args)

    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    stored = table.astype(np.float16)
    save_file({"embeddings": stored}, str(out / "embeddings.safetensors"))
    (out / "embeddings.safetensors").chmod(0o644)  # safetensors writes 0600; package data is read by all
    for name in ("tokenizer.json", "LICENSE"):
        shutil.copyfile(BASE_MODEL_DIR / name, out / name)
    base = json.loads((BASE_MODEL_DIR / "config.json").read_text())
    config = dict(base)
    config["model_id"] = MODEL_ID
    config["embeddings_sha256"] = hashlib.sha256((out / "embeddings.safetensors").read_bytes()).hexdigest()
    config["training"] = {
        "script": "scripts/train_static_model.py",
        "base_model_id": base["model_id"],
        "base_embeddings_sha256": base["embeddings_sha256"],
        "corpora": records,
        "pairs_trained": len(trained),
        "pairs_held_out": len(held),
        "loss": "symmetric InfoNCE in the batch (cosine / temperature) + anchor x squared distance to base",
        "hyperparameters": {
            k: getattr(args, k)
            for k in ("epochs", "batch", "lr", "temperature", "anchor", "seed", "max_pairs")
        },
        "history": history,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(f"wrote {out} ({MODEL_ID})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
