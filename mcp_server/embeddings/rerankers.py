"""Second-stage rerankers: a stronger model re-scores a search's best candidates (opt-in).

The first stage (full text and the fast static vectors, fused) sees every chunk of a project; a
reranker sees only its best few (CODEBASE_RERANK_CANDIDATES), so it may be far slower per text: on
two cores the `transformer` one costs hundreds of milliseconds to seconds per search (measured in
bench/quality/NOTES.md), a rerank server on a GPU far less. Three backends, chosen by
CODEBASE_RERANKER:

- `transformer`: all-MiniLM-L6-v2 (or another BERT encoder) run in numpy by `TransformerEmbedder`,
  scoring each candidate by the cosine of its vector with the query's. A bi-encoder, not a
  cross-encoder: no cross-encoder weights are published on a registry this project may download
  from, and the bi-encoder is the model bench/quality measured to understand paraphrases
  (NOTES.md). Candidate vectors are kept in memory by text hash, so a candidate met again costs
  nothing.
- `tei`: a Hugging Face text-embeddings-inference server's `/rerank` (a real cross-encoder such as
  BAAI/bge-reranker-base, on whatever hardware that server has).
- `cohere`: the `/v1/rerank` request shape that Cohere, Jina, Voyage, vLLM and llama.cpp's server
  share (`model`, `query`, `documents`; answers `results[].relevance_score`).

A reranker that fails (server down, timeout, bad answer) raises `RerankError`; the searcher then
keeps the first stage's order and says so in the response. No retries: a search is interactive
and the first stage's answer is a good one.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from typing import Any, Literal, Protocol

import httpx
import numpy as np

from mcp_server.core.errors import CodebaseMCPError, ConfigurationError
from mcp_server.embeddings.base import Embedder
from mcp_server.embeddings.http import describe_error, display_url, json_client, scrub, status_problem
from mcp_server.embeddings.transformer import TransformerEmbedder, model_directory

RERANKERS = ("none", "transformer", "tei", "cohere")
# Tokens of each candidate the transformer reranker reads, as many as the model was trained on.
# 128 costs a quarter as much on the CPU but lost half the gain on paraphrases (bench/quality/NOTES.md).
TRANSFORMER_RERANK_TOKENS = 256
HttpFlavour = Literal["tei", "cohere"]


class RerankError(CodebaseMCPError):
    """The reranker could not score the candidates; the first stage's order stands."""


class Reranker(Protocol):
    """Scores candidate texts against a query: higher is more relevant.

    One score per text, or per text of a prefix of them (the first stage's best) when a local model
    ran out of its time: the texts it did not reach keep their first-stage places.
    """

    @property
    def name(self) -> str: ...

    # How much the reranker's order counts against the first stage's in the fusion
    # (ranking.rerank): a cross-encoder is trusted more than a bi-encoder.
    weight: float

    def scores(self, query: str, texts: list[str]) -> list[float]: ...


class EmbeddingReranker:
    """Cosine similarity under a second, stronger embedder; document vectors cached by text hash.

    A local model has no request to abandon, so its time bound is kept between small batches: the
    candidates are embedded best first, and those not reached when `timeout_seconds` has passed
    are left out (the first stage's order stands for them). A search therefore costs at most about
    the bound plus one batch, on a loaded machine too.
    """

    # Tuned on the dev half of bench/quality with all-MiniLM-L6-v2 over the static first stage.
    weight = 1.5
    batch = 4  # candidates embedded between two looks at the clock

    def __init__(
        self, embedder: Embedder, *, cache_entries: int = 8192, timeout_seconds: float | None = None
    ) -> None:
        self._embedder = embedder
        self._timeout = timeout_seconds
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_entries = max(0, cache_entries)
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._embedder.model_id

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def scores(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        keys = [hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=16).digest() for t in texts]
        with self._lock:
            known = {k: self._cache[k] for k in keys if k in self._cache}
            for k in known:
                self._cache.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in known))
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        embedded: list[bytes] = []
        try:
            q = self._embedder.embed_query(query)
            for start in range(0, len(missing), self.batch):
                if deadline is not None and start > 0 and time.monotonic() >= deadline:
                    break
                part = missing[start : start + self.batch]
                vectors = self._embedder.embed_documents([texts[first[k]] for k in part])
                known.update(zip(part, vectors, strict=True))
                embedded += part
        except CodebaseMCPError as exc:
            raise RerankError(f"the {self.name} reranker failed: {exc}") from exc
        with self._lock:
            for k in embedded:
                self._cache[k] = known[k]
            while len(self._cache) > self._cache_entries:
                self._cache.popitem(last=False)
        # The scored prefix: the first-stage order up to the first candidate not reached.
        reached = next((i for i, k in enumerate(keys) if k not in known), len(keys))
        if reached == 0:
            return []
        matrix = np.stack([known[k] for k in keys[:reached]])
        return [float(s) for s in matrix @ q]


class HttpReranker:
    """A rerank endpoint: text-embeddings-inference (`tei`) or the Cohere-style `/v1/rerank`."""

    # A cross-encoder reads query and candidate together: its order leads the fusion. Not tuned
    # here (no cross-encoder can run on this project's CI); see bench/quality/NOTES.md.
    weight = 3.0

    def __init__(
        self,
        *,
        flavour: HttpFlavour,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 3.0,
        max_chars: int = 4000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._flavour: HttpFlavour = flavour
        base = url.rstrip("/")
        if flavour == "tei":
            self._endpoint = base + "/rerank"
        else:
            self._endpoint = base + ("/rerank" if base.endswith("/v1") else "/v1/rerank")
        self._display_url = display_url(self._endpoint)
        self._model = model
        self._api_key = api_key or None
        self._max_chars = max_chars
        self._client = json_client(self._api_key, timeout_seconds, transport)

    @property
    def name(self) -> str:
        return f"{self._flavour}:{self._model or 'default'}"

    def scores(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        documents = [t[: self._max_chars] for t in texts]
        payload: dict[str, Any]
        if self._flavour == "tei":
            payload = {"query": query, "texts": documents, "truncate": True}
        else:
            payload = {"query": query, "documents": documents, "top_n": len(documents)}
            if self._model:
                payload["model"] = self._model
        where = f"the reranker at {self._display_url}"
        try:
            response = self._client.post(self._endpoint, json=payload)
        except httpx.HTTPError as exc:
            raise RerankError(f"cannot reach {where}: {describe_error(exc, self._api_key)}") from None
        if not response.is_success:
            raise RerankError(status_problem(response, where, self._api_key, "CODEBASE_RERANK_API_KEY"))
        try:
            data = response.json()
            items = data if self._flavour == "tei" else data["results"]
            key = "score" if self._flavour == "tei" else "relevance_score"
            scored = {int(item["index"]): float(item[key]) for item in items}
        except (ValueError, KeyError, TypeError) as exc:
            raise RerankError(
                f"{where} sent an unexpected response: {scrub(str(exc), self._api_key)}"
            ) from None
        if sorted(scored) != list(range(len(texts))) or not all(math.isfinite(s) for s in scored.values()):
            raise RerankError(f"{where} did not score each of the {len(texts)} candidates exactly once")
        return [scored[i] for i in range(len(texts))]

    def close(self) -> None:
        self._client.close()


def create_reranker(
    *,
    backend: str,
    url: str | None,
    model: str | None,
    api_key: str | None,
    model_path: str | None,
    timeout_ms: int,
) -> Reranker | None:
    """The configured reranker, or None for `none`; mistakes raise ConfigurationError naming the variable.

    Nothing is loaded or requested here: the transformer's weights load on the first search that
    reranks.
    """
    name = (backend or "none").strip().lower()
    if name not in RERANKERS:
        raise ConfigurationError(f"CODEBASE_RERANKER must be one of {', '.join(RERANKERS)}, not {backend!r}")
    if name == "none":
        return None
    if name == "transformer":
        directory = model_directory(
            model_path, variable="CODEBASE_RERANK_MODEL_PATH", choice="CODEBASE_RERANKER=transformer"
        )
        return EmbeddingReranker(
            TransformerEmbedder(model_path=directory, max_tokens=TRANSFORMER_RERANK_TOKENS),
            timeout_seconds=timeout_ms / 1000,
        )
    if not url:
        raise ConfigurationError(f"CODEBASE_RERANK_URL is required for CODEBASE_RERANKER={name}")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("CODEBASE_RERANK_URL must start with http:// or https://")
    flavour: HttpFlavour = "tei" if name == "tei" else "cohere"
    return HttpReranker(
        flavour=flavour, url=url, model=model, api_key=api_key, timeout_seconds=timeout_ms / 1000
    )
