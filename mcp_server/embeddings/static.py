"""The default embedder: a static token table distilled from all-MiniLM-L6-v2 (model2vec-style).

A text's vector is a weighted sum of per-token vectors looked up in a table shipped with the
package, L2-normalised. The default table (`models/minilm-l6-static-code/`) is the distilled one
(`models/minilm-l6-static/`, `scripts/build_static_model.py`) fine-tuned on doc comments paired
with their code (`scripts/train_static_model.py`).
There is no network and no neural network at run time, which is what lets indexing embed thousands
of chunks per second on two cores (a transformer manages tens; design.md section 4).

Why words first, then tokens: tokenizing every chunk with the BERT tokenizer costs more than all
the rest together. Code repeats its words, so the text is cut into words with `bytes.translate`
and `split`, each distinct word is counted, and only words never seen before go through the
tokenizer (with snake_case, camelCase and digit boundaries split first, see `identifiers.py`);
their token ids are cached for the life of the process. Tokens are therefore those of tokenizing
the text with identifiers split, minus punctuation.

Pooling differs from model2vec's plain mean in one measured way: a word's contribution is scaled
by the square root of its count rather than the count, so `self` forty times does not drown the
rest of a chunk (docstring-to-function retrieval on the Python standard library: MRR@10 0.385 with
counts, 0.420 with square roots). The choices are recorded in the model's `config.json` and
checked at load, so a table built for other pooling is refused instead of silently misused.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from mcp_server.core.errors import EmbeddingError
from mcp_server.embeddings.identifiers import split_identifier
from mcp_server.embeddings.vectors import normalize_rows

_MODELS = Path(__file__).resolve().parent / "models"
# The static models shipped in the package, by model_id; the first is the default for new
# projects. A project indexed with another one goes on with the one it was indexed with
# (`StaticEmbedder.for_project`), so an upgrade that changes the default never forces a re-index.
SHIPPED_MODEL_DIRS = {
    "minilm-l6-static-code-v1": _MODELS / "minilm-l6-static-code",  # scripts/train_static_model.py
    "minilm-l6-static-v1": _MODELS / "minilm-l6-static",  # scripts/build_static_model.py
}
DEFAULT_MODEL_DIR = SHIPPED_MODEL_DIRS["minilm-l6-static-code-v1"]

# What this module implements; a model whose config.json asks for anything else is refused.
_SUPPORTED_POOLING = {
    "words": "runs without ASCII whitespace or punctuation other than _",
    "split_identifiers": True,
    "term_frequency": "sqrt",
    "drop_unknown_tokens": True,
}

# Words are maximal runs of bytes other than ASCII whitespace and ASCII punctuation (except "_") in
# the UTF-8 text: ASCII letters, digits, "_" and any non-ASCII character. `bytes.translate` plus
# `split` finds them twice as fast as a regex. Punctuation is left out: it is most of the tokens of
# code and carries almost no weight after SIF (docstring-to-function retrieval, MRR@10: 0.421 with
# BERT's own word cut, 0.419 without punctuation). snake_case and camelCase are split later, once
# per distinct word, by `split_identifier`; non-ASCII punctuation inside a word is left to the
# tokenizer.
_SEPARATORS = bytes(
    ord(" ") if c < 128 and not (chr(c).isalnum() or chr(c) == "_") else c for c in range(256)
)

# Words tokenized per tokenizer call when new words are added; one long call per group avoids the
# tokenizer's per-sequence overhead, several groups let it use more than one thread.
_WORDS_PER_CALL = 2048

# Texts per gather-and-sum block: bounds the temporary (tokens x dimension) array to a few MB.
_BLOCK_TEXTS = 128


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """The model's config.json (model_id, dimension, pooling, provenance)."""
    path = model_dir / "config.json"
    try:
        config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EmbeddingError(f"cannot read the static model config {path}: {exc}") from exc
    for key in ("model_id", "dimension", "vocab_size", "unk_token_id", "pooling"):
        if key not in config:
            raise EmbeddingError(f"static model config {path} lacks {key!r}")
    if config["pooling"] != _SUPPORTED_POOLING:
        raise EmbeddingError(
            f"static model {config['model_id']} needs pooling {config['pooling']}, "
            f"this version implements {_SUPPORTED_POOLING}"
        )
    return config


class _WordTable:
    """Word -> token ids of that word (with identifiers split), grown as new words appear.

    Stored as one flat id array plus per-word start and length so that a batch's words expand to
    tokens with a few numpy operations. Cleared when it reaches `limit` words: a repository full of
    hashes or generated names must not grow the process without bound.
    """

    def __init__(self, tokenizer: Tokenizer, unk_token_id: int, limit: int = 200_000) -> None:
        self._tokenizer = tokenizer
        self._unk = unk_token_id
        self._limit = limit
        self.clear()

    def clear(self) -> None:
        self.index: dict[bytes, int] = {}
        self.starts = np.zeros(1024, dtype=np.int64)
        self.lengths = np.zeros(1024, dtype=np.int64)
        self.flat = np.zeros(4096, dtype=np.int64)
        self._used = 0

    def ensure(self, needed: set[bytes]) -> None:
        """Make every word of `needed` present (clearing first when the table would overflow)."""
        new = needed.difference(self.index)
        if not new:
            return
        if len(self.index) + len(new) > self._limit:
            self.clear()
            new = needed
        self._add(sorted(new))

    def _add(self, words: list[bytes]) -> None:
        texts = [split_identifier(w.decode("utf-8")) for w in words]
        # Tokenize groups of words joined by spaces and give each token back to its word by its
        # character offset (the tokenizer never merges across a space).
        groups = [texts[i : i + _WORDS_PER_CALL] for i in range(0, len(texts), _WORDS_PER_CALL)]
        encodings = self._tokenizer.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        token_ids: list[npt.NDArray[np.int64]] = []
        owners: list[npt.NDArray[np.int64]] = []
        for number, (group, encoding) in enumerate(zip(groups, encodings, strict=True)):
            word_starts = np.cumsum([0] + [len(t) + 1 for t in group[:-1]])
            ids = np.asarray(encoding.ids, dtype=np.int64)
            char_starts = np.asarray([start for start, _ in encoding.offsets], dtype=np.int64)
            owner = np.searchsorted(word_starts, char_starts, side="right") - 1
            known = ids != self._unk
            token_ids.append(ids[known])
            owners.append(owner[known] + number * _WORDS_PER_CALL)
        ids = np.concatenate(token_ids) if token_ids else np.zeros(0, dtype=np.int64)
        owner = np.concatenate(owners) if owners else np.zeros(0, dtype=np.int64)
        lengths = np.bincount(owner, minlength=len(words)).astype(np.int64)

        first, last = len(self.index), len(self.index) + len(words)
        if last > len(self.starts):
            size = max(last, 2 * len(self.starts))
            self.starts = np.resize(self.starts, size)
            self.lengths = np.resize(self.lengths, size)
        if self._used + len(ids) > len(self.flat):
            self.flat = np.resize(self.flat, max(self._used + len(ids), 2 * len(self.flat)))
        self.lengths[first:last] = lengths
        self.starts[first:last] = self._used + np.cumsum(lengths) - lengths
        self.flat[self._used : self._used + len(ids)] = ids
        self._used += len(ids)
        self.index.update(zip(words, range(first, last), strict=True))


@dataclass
class _LoadedModel:
    model_id: str
    table: npt.NDArray[np.float32]  # (vocab, dimension)
    words: _WordTable
    lock: threading.Lock


_loaded: dict[Path, _LoadedModel] = {}
_loaded_lock = threading.Lock()


def _load(model_dir: Path) -> _LoadedModel:
    """Read a model directory once per process; every StaticEmbedder on it shares the result."""
    with _loaded_lock:
        model = _loaded.get(model_dir)
        if model is None:
            model = _loaded[model_dir] = _read(model_dir)
        return model


def _read(model_dir: Path) -> _LoadedModel:
    config = read_model_config(model_dir)
    try:
        table = load_file(str(model_dir / "embeddings.safetensors"))["embeddings"]
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    except Exception as exc:  # safetensors and tokenizers raise their own (untyped) errors
        raise EmbeddingError(f"cannot load the static embedding model from {model_dir}: {exc}") from exc
    expected = (int(config["vocab_size"]), int(config["dimension"]))
    if table.shape != expected or tokenizer.get_vocab_size() != expected[0]:
        raise EmbeddingError(
            f"static model {model_dir}: table {table.shape} and tokenizer vocabulary "
            f"{tokenizer.get_vocab_size()} do not match config.json {expected}"
        )
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return _LoadedModel(
        model_id=str(config["model_id"]),
        # float32 in memory (31 MB for 30k x 256): gathering float16 and converting costs more.
        table=np.ascontiguousarray(table, dtype=np.float32),
        words=_WordTable(tokenizer, int(config["unk_token_id"])),
        lock=threading.Lock(),
    )


class StaticEmbedder:
    """Static-table embedder; `model_dir` defaults to the model shipped in the package.

    Each text is read up to `max_chars` characters (about 4,000 tokens of code), which bounds the
    work on a pathological chunk such as minified JavaScript.
    """

    # Search fuses keyword-led for bag-of-token vectors (index/search/ranking.py, fusion_for).
    fusion_profile = "keywords"

    def __init__(self, *, model_dir: str | Path | None = None, max_chars: int = 16_384) -> None:
        self._dir = Path(model_dir).resolve() if model_dir is not None else DEFAULT_MODEL_DIR
        # No directory named: the package default, which gives way to the shipped table a project
        # was indexed with (`for_project`). A named directory, even the default's, is a choice.
        self._follows_project = model_dir is None
        config = read_model_config(self._dir)
        self._model_id = str(config["model_id"])
        self._dimension = int(config["dimension"])
        self._max_chars = max_chars

    @property
    def model_id(self) -> str:
        return self._model_id

    def for_project(self, recorded_model_id: str) -> StaticEmbedder:
        """The embedder for a project indexed with `recorded_model_id`: the shipped model of that
        id when this one is the package default (no EMBEDDING_MODEL_PATH set), else this one.

        Forced runs too: a forced run with another model empties the project's other repositories,
        so moving to a new table is asked for by naming it (EMBEDDING_MODEL_PATH, `codebase-mcp
        models list`). A model someone chose is never swapped: a mismatch stays the error it is.
        """
        if recorded_model_id == self._model_id or not self._follows_project:
            return self
        shipped = SHIPPED_MODEL_DIRS.get(recorded_model_id)
        if shipped is None:
            return self
        return StaticEmbedder(model_dir=shipped, max_chars=self._max_chars)

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.embed_documents([text])[0]
        return row

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        model = _load(self._dir)
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for start in range(0, len(texts), _BLOCK_TEXTS):
            block = texts[start : start + _BLOCK_TEXTS]
            with model.lock:  # the word table is shared and grows
                tokens, weights, per_text = self._expand(model.words, block)
            _weighted_sums(model.table, tokens, weights, per_text, out[start : start + len(block)])
        return normalize_rows(out)

    def _expand(
        self, words: _WordTable, texts: list[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Token ids, their weights (sqrt of the word's count) and the token count of each text."""
        counters = [
            Counter(text[: self._max_chars].encode("utf-8", "replace").translate(_SEPARATORS).split())
            for text in texts
        ]
        words.ensure(set().union(*counters))
        all_words = list(chain.from_iterable(counters))
        word_ids = np.fromiter(map(words.index.__getitem__, all_words), dtype=np.int64, count=len(all_words))
        counts = np.fromiter(
            chain.from_iterable(c.values() for c in counters), dtype=np.float32, count=len(all_words)
        )
        words_per_text = np.fromiter(map(len, counters), dtype=np.int64, count=len(counters))
        lengths = words.lengths[word_ids]
        total = int(lengths.sum())
        # Position of every token in the flat id array: each word's start, then consecutive.
        first_of_word = np.cumsum(lengths) - lengths
        positions = np.repeat(words.starts[word_ids] - first_of_word, lengths) + np.arange(total)
        tokens = words.flat[positions]
        weights = np.repeat(np.sqrt(counts), lengths)
        word_end = np.cumsum(words_per_text)
        token_end = np.concatenate([[0], np.cumsum(lengths)])[word_end]
        per_text = np.diff(np.concatenate([[0], token_end]))
        return tokens, weights, per_text


def _weighted_sums(
    table: npt.NDArray[np.float32],
    tokens: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float32],
    per_text: npt.NDArray[np.int64],
    out: npt.NDArray[np.float32],
) -> None:
    """out[i] = sum of weight * table[token] over text i's tokens (texts with none stay zero).

    One small gather and vector-matrix product per text: `np.add.reduceat` over the whole block
    does the same sums but walks the (tokens x dimension) array row by row and was 10x slower.
    """
    ends = np.cumsum(per_text)
    for i, (start, end) in enumerate(zip((ends - per_text).tolist(), ends.tolist(), strict=True)):
        if end > start:
            np.dot(weights[start:end], table[tokens[start:end]], out=out[i])
