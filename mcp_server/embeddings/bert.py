"""A BERT encoder forward pass in numpy (inference only).

Why numpy and not torch: torch is a multi-gigabyte dependency that the runtime and CI must not
carry, and a 6-layer, 384-wide encoder is small enough that a few matrix products per layer in
numpy are the whole cost. The same code serves the opt-in `TransformerEmbedder` and the build
script that distills the shipped static model, so both see identical numbers.

Weights are read from a Hugging Face `model.safetensors` of a `BertModel` (key names such as
`encoder.layer.0.attention.self.query.weight`; an optional `bert.` prefix is accepted).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file

FloatArray = npt.NDArray[np.floating[Any]]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BertConfig:
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    layer_norm_eps: float = 1e-12


@dataclass(frozen=True)
class _Layer:
    qkv_w: FloatArray  # (hidden, 3 * hidden): query, key and value fused into one product
    qkv_b: FloatArray
    attn_out_w: FloatArray
    attn_out_b: FloatArray
    attn_ln_w: FloatArray
    attn_ln_b: FloatArray
    inter_w: FloatArray
    inter_b: FloatArray
    out_w: FloatArray
    out_b: FloatArray
    out_ln_w: FloatArray
    out_ln_b: FloatArray


def _gelu(x: FloatArray) -> FloatArray:
    """Exact (erf) GELU, as BERT uses, computed in place in `x` and returned.

    numpy has no erf; Abramowitz & Stegun 7.1.26 gives it with absolute error below 1.5e-7, under
    float32 resolution. Written with `out=` so that the (tokens x 1536) activations are not copied
    a dozen times, which was a third of the layer's time.
    """
    one = x.dtype.type(1.0)
    z = x * x.dtype.type(0.7071067811865476)
    a = np.abs(z)
    t = np.multiply(a, x.dtype.type(0.3275911))
    t += one
    np.reciprocal(t, out=t)
    poly = t * x.dtype.type(1.061405429)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += x.dtype.type(coefficient)
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a
    np.subtract(one, poly, out=poly)  # erf(|z|)
    np.copysign(poly, z, out=poly)  # erf(z)
    poly += one
    poly *= x.dtype.type(0.5)
    x *= poly
    return x


def _layer_norm(x: FloatArray, weight: FloatArray, bias: FloatArray, eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = np.mean(centered * centered, axis=-1, keepdims=True)
    result: FloatArray = (centered / np.sqrt(var + x.dtype.type(eps)) * weight + bias).astype(x.dtype)
    return result


class BertEncoder:
    """`forward(input_ids, attention_mask)` -> last hidden state, shape (batch, seq, hidden).

    `dtype` is float32 for serving; the build script uses float64 so that the distilled table does
    not depend on the BLAS kernel or thread count of the machine that builds it.
    """

    def __init__(
        self,
        tensors: dict[str, npt.NDArray[Any]],
        config: BertConfig | None = None,
        *,
        dtype: type[np.floating[Any]] = np.float32,
    ) -> None:
        self.config = config or BertConfig()
        self.dtype = dtype
        prefix = "bert." if "bert.embeddings.word_embeddings.weight" in tensors else ""

        def get(name: str) -> FloatArray:
            key = prefix + name
            if key not in tensors:
                raise KeyError(f"weight {key!r} missing from the safetensors file")
            return np.ascontiguousarray(tensors[key], dtype=dtype)

        def linear_t(name: str) -> FloatArray:
            # torch Linear stores (out, in); keep (in, out) so that forward is a plain x @ w.
            return np.ascontiguousarray(get(name + ".weight").T)

        self.word_embeddings = get("embeddings.word_embeddings.weight")
        self.position_embeddings = get("embeddings.position_embeddings.weight")
        self.token_type_embedding = get("embeddings.token_type_embeddings.weight")[0]
        self.embeddings_ln_w = get("embeddings.LayerNorm.weight")
        self.embeddings_ln_b = get("embeddings.LayerNorm.bias")
        if self.word_embeddings.shape[1] != self.config.hidden_size:
            raise ValueError(
                f"hidden size {self.word_embeddings.shape[1]} differs from the configured "
                f"{self.config.hidden_size}"
            )
        self.layers: list[_Layer] = []
        for i in range(self.config.num_layers):
            p = f"encoder.layer.{i}."
            self.layers.append(
                _Layer(
                    qkv_w=np.ascontiguousarray(
                        np.concatenate(
                            [linear_t(p + f"attention.self.{n}") for n in ("query", "key", "value")], axis=1
                        )
                    ),
                    qkv_b=np.concatenate(
                        [get(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")]
                    ),
                    attn_out_w=linear_t(p + "attention.output.dense"),
                    attn_out_b=get(p + "attention.output.dense.bias"),
                    attn_ln_w=get(p + "attention.output.LayerNorm.weight"),
                    attn_ln_b=get(p + "attention.output.LayerNorm.bias"),
                    inter_w=linear_t(p + "intermediate.dense"),
                    inter_b=get(p + "intermediate.dense.bias"),
                    out_w=linear_t(p + "output.dense"),
                    out_b=get(p + "output.dense.bias"),
                    out_ln_w=get(p + "output.LayerNorm.weight"),
                    out_ln_b=get(p + "output.LayerNorm.bias"),
                )
            )

    @classmethod
    def from_safetensors(
        cls, path: Path, config: BertConfig | None = None, *, dtype: type[np.floating[Any]] = np.float32
    ) -> BertEncoder:
        return cls(load_file(str(path)), config, dtype=dtype)

    @property
    def max_positions(self) -> int:
        return int(self.position_embeddings.shape[0])

    def forward(self, input_ids: IntArray, attention_mask: IntArray) -> FloatArray:
        batch, seq = input_ids.shape
        if seq > self.max_positions:
            raise ValueError(f"sequence length {seq} exceeds the model's {self.max_positions} positions")
        cfg = self.config
        heads, width = cfg.num_heads, cfg.hidden_size // cfg.num_heads
        eps = cfg.layer_norm_eps

        x = self.word_embeddings[input_ids] + self.position_embeddings[:seq] + self.token_type_embedding
        # Keep activations 2-D and contiguous: numpy hands 2-D products to BLAS, while a 3-D stack of
        # small or strided matrices can fall back to a loop that is orders of magnitude slower.
        x = x.reshape(batch * seq, cfg.hidden_size)
        x = _layer_norm(x, self.embeddings_ln_w, self.embeddings_ln_b, eps)
        # Padded keys get a large negative score so softmax gives them (numerically) zero weight.
        key_bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9).astype(self.dtype)
        scale = self.dtype(1.0 / np.sqrt(width))

        for layer in self.layers:
            qkv = x @ layer.qkv_w  # (batch * seq, 3 * hidden)
            qkv += layer.qkv_b
            qkv = qkv.reshape(batch, seq, 3, heads, width).transpose(2, 0, 3, 1, 4)
            q = np.ascontiguousarray(qkv[0])  # (batch, heads, seq, width)
            q *= scale
            k_t = np.ascontiguousarray(qkv[1].transpose(0, 1, 3, 2))
            v = np.ascontiguousarray(qkv[2])
            scores = q @ k_t
            scores += key_bias
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context = np.ascontiguousarray((scores @ v).transpose(0, 2, 1, 3)).reshape(batch * seq, -1)
            attn = context @ layer.attn_out_w
            attn += layer.attn_out_b
            attn += x
            x = _layer_norm(attn, layer.attn_ln_w, layer.attn_ln_b, eps)
            inter = x @ layer.inter_w
            inter += layer.inter_b
            out = _gelu(inter) @ layer.out_w
            out += layer.out_b
            out += x
            x = _layer_norm(out, layer.out_ln_w, layer.out_ln_b, eps)
        return x.reshape(batch, seq, cfg.hidden_size)


def mean_pool(hidden: FloatArray, attention_mask: IntArray) -> FloatArray:
    """Average of the hidden states of the unmasked positions (sentence-transformers' mean pooling)."""
    mask = attention_mask.astype(hidden.dtype)[:, :, None]
    summed = (hidden * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    pooled: FloatArray = summed / counts
    return pooled
