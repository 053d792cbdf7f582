"""Embeddings from a server: Ollama (`/api/embed`) or any OpenAI-compatible `/v1/embeddings`.

This module is the I/O edge for remote embedding: every httpx failure is translated here into
`EmbeddingError`, and no message built here contains the API key (it is also scrubbed from any
server text that is quoted) or URL credentials.

Retries: connection failures, timeouts, HTTP 429 and 5xx are retried with exponential backoff
(a numeric `Retry-After` up to 30 s is honoured); other 4xx answers are the caller's mistake and
fail at once. Vectors are L2-normalised here, so servers that return raw vectors are fine.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt

from mcp_server.core.errors import EmbeddingError
from mcp_server.embeddings.vectors import normalize_rows

Flavour = Literal["ollama", "openai"]

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_SECONDS = 30.0
_PROBE_TEXT = "dimension probe"


class HttpEmbedder:
    """Embeds through an HTTP embedding API in batches of `batch_size` texts.

    `dimension` is taken from configuration when given (and every response is checked against it),
    otherwise discovered by one probe request on first use. Empty or whitespace-only texts are not
    sent (several servers reject them) and get zero vectors. Texts are cut to `max_chars` characters,
    because OpenAI's API refuses inputs over its context length instead of truncating them.
    """

    def __init__(
        self,
        *,
        flavour: Flavour,
        url: str,
        model: str,
        api_key: str | None = None,
        dimension: int | None = None,
        batch_size: int = 32,
        timeout_seconds: float = 30.0,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        max_chars: int = 16_000,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._flavour: Flavour = flavour
        self._endpoint = _endpoint(flavour, url)
        self._display_url = display_url(self._endpoint)
        self._model = model
        self._api_key = api_key or None
        self._dimension = dimension
        self._batch_size = max(1, batch_size)
        self._max_retries = max(0, max_retries)
        self._backoff = backoff_seconds
        self._max_chars = max_chars
        self._sleep = sleep
        self._client = json_client(self._api_key, timeout_seconds, transport)
        self._probe_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"{self._flavour}:{self._model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            with self._probe_lock:
                if self._dimension is None:
                    probe = self._request([_PROBE_TEXT])
                    self._dimension = len(probe[0])
        return self._dimension

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.embed_documents([text])[0]
        return row

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        dimension = self.dimension
        out = np.zeros((len(texts), dimension), dtype=np.float32)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        for start in range(0, len(todo), self._batch_size):
            rows = todo[start : start + self._batch_size]
            vectors = self._request([texts[i][: self._max_chars] for i in rows])
            if any(len(v) != dimension for v in vectors):
                got = sorted({len(v) for v in vectors})
                raise EmbeddingError(
                    f"{self.model_id} at {self._display_url} returned vectors of dimension {got}, "
                    f"expected {dimension} (check EMBEDDING_DIMENSION and EMBEDDING_MODEL)"
                )
            out[rows] = np.asarray(vectors, dtype=np.float32)
        return normalize_rows(out)

    def close(self) -> None:
        self._client.close()

    def _request(self, inputs: list[str]) -> list[list[float]]:
        """POST one batch, with retries; the vectors in input order, each checked to be finite."""
        payload: dict[str, Any] = {"model": self._model, "input": inputs}
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                response = self._client.post(self._endpoint, json=payload)
            except httpx.TransportError as exc:  # connect/read/write errors and timeouts
                problem = f"cannot reach {self._display_url}: {describe_error(exc, self._api_key)}"
            except httpx.HTTPError as exc:  # redirect loops, undecodable bodies: retrying will not help
                raise EmbeddingError(
                    f"request to {self._display_url} failed: {describe_error(exc, self._api_key)}"
                ) from exc
            else:
                if response.is_success:
                    return self._parse(response, len(inputs))
                problem = self._status_problem(response)
                if response.status_code not in _RETRY_STATUSES:
                    raise EmbeddingError(problem)
                retry_after = _retry_after(response)
            if attempt >= self._max_retries:
                raise EmbeddingError(f"{problem} (gave up after {attempt + 1} attempts)")
            delay = retry_after if retry_after is not None else self._backoff * (2**attempt)
            self._sleep(delay)
            attempt += 1

    def _status_problem(self, response: httpx.Response) -> str:
        where = f"{self.model_id} at {self._display_url}"
        return status_problem(response, where, self._api_key, "EMBEDDING_API_KEY")

    def _parse(self, response: httpx.Response, expected: int) -> list[list[float]]:
        where = f"{self.model_id} at {self._display_url}"
        try:
            data = response.json()
            if self._flavour == "ollama":
                vectors = data["embeddings"]
            else:
                items = sorted(data["data"], key=lambda item: int(item["index"]))
                vectors = [item["embedding"] for item in items]
            if not isinstance(vectors, list):
                raise TypeError("embeddings is not a list")
            checked = [[float(x) for x in vector] for vector in vectors]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise EmbeddingError(
                f"{where} sent an unexpected response: {scrub(str(exc), self._api_key)}"
            ) from exc
        if len(checked) != expected:
            raise EmbeddingError(f"{where} returned {len(checked)} vectors for {expected} inputs")
        if any(not math.isfinite(x) for vector in checked for x in vector):
            raise EmbeddingError(f"{where} returned a vector with NaN or infinite values")
        if any(not vector for vector in checked):
            raise EmbeddingError(f"{where} returned an empty vector")
        return checked


def _endpoint(flavour: Flavour, url: str) -> str:
    """`http://host:11434` -> `.../api/embed`; `https://api.openai.com` or `.../v1` -> `.../v1/embeddings`."""
    base = url.rstrip("/")
    if flavour == "ollama":
        return base + ("/embed" if base.endswith("/api") else "/api/embed")
    return base + ("/embeddings" if base.endswith("/v1") else "/v1/embeddings")


def json_client(
    api_key: str | None, timeout_seconds: float, transport: httpx.BaseTransport | None
) -> httpx.Client:
    """The client of a JSON API, sending `api_key` as a bearer token when there is one."""
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return httpx.Client(timeout=timeout_seconds, headers=headers, transport=transport)


def status_problem(response: httpx.Response, where: str, secret: str | None, key_variable: str) -> str:
    """What an unsuccessful answer of the server `where` says, for an error message."""
    status = response.status_code
    if status in (401, 403):
        # The body of an authentication failure may echo (part of) the key; do not quote it.
        return f"{where} refused the request with HTTP {status}; check {key_variable}"
    body = scrub(response.text, secret)[:300].strip()
    return f"{where} answered HTTP {status}" + (f": {body}" if body else "")


def display_url(url: str) -> str:
    """The URL without user info or query string, for messages."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def describe_error(exc: Exception, secret: str | None) -> str:
    """`ConnectError ([Errno 111] Connection refused)`, with the key scrubbed from the detail."""
    text = scrub(str(exc), secret).strip()
    return type(exc).__name__ + (f" ({text})" if text else "")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= _MAX_RETRY_AFTER_SECONDS else None
