"""The HTTP embedder against a real HTTP server on 127.0.0.1 speaking Ollama's or OpenAI's API."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from json_http_server import serve_json

from mcp_server.core.errors import EmbeddingError
from mcp_server.embeddings.http import HttpEmbedder

pytestmark = pytest.mark.timeout(20)

SECRET = "sk-test-7f3c9a1bSECRETd00d"


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeEmbeddingServer:
    """Answers /api/embed (Ollama) and /v1/embeddings (OpenAI) with deterministic vectors.

    The vector of a text is `[len(text), 1, 0, ...]` of `dimension` values, so a test can tell which
    text a row came from. `failures` is a list of (status, body) answers given before real ones.
    """

    dimension: int = 4
    failures: list[tuple[int, str]] = field(default_factory=list)
    drop_one_vector: bool = False
    delay_seconds: float = 0.0
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def vector(self, text: str) -> list[float]:
        return [float(len(text)), 1.0] + [0.0] * (self.dimension - 2)

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, str]:
        if self.failures:
            return self.failures.pop(0)
        texts = body["input"]
        vectors = [self.vector(t) for t in texts]
        if self.drop_one_vector:
            vectors = vectors[:-1]
        if path == "/api/embed":
            return 200, json.dumps({"model": body["model"], "embeddings": vectors})
        if path == "/v1/embeddings":
            # Deliberately out of order: clients must use `index`.
            data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
            return 200, json.dumps({"object": "list", "data": data[::-1], "model": body["model"]})
        return 404, json.dumps({"error": "not found"})


@pytest.fixture
def server() -> Iterator[FakeEmbeddingServer]:
    state = FakeEmbeddingServer()

    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, str]:
        state.requests.append(Recorded(path, headers, body))
        return state.answer(path, body)

    with serve_json(answer, lambda: state.delay_seconds) as url:
        state.url = url
        yield state


def make(server_url: str, flavour: str = "ollama", **overrides: Any) -> HttpEmbedder:
    arguments: dict[str, Any] = {
        "flavour": flavour,
        "url": server_url,
        "model": "test-model",
        "dimension": 4,
        "batch_size": 2,
        "timeout_seconds": 5.0,
        "backoff_seconds": 0.01,
    }
    arguments.update(overrides)
    return HttpEmbedder(**arguments)


TEXTS = ["a", "bb", "ccc", "dddd", "eeeee"]


@pytest.mark.parametrize(("flavour", "path"), [("ollama", "/api/embed"), ("openai", "/v1/embeddings")])
def test_texts_are_sent_in_batches_and_come_back_normalised_in_order(
    server: FakeEmbeddingServer, flavour: str, path: str
) -> None:
    embedder = make(server.url, flavour)
    vectors = embedder.embed_documents(TEXTS)
    assert [r.path for r in server.requests] == [path] * 3
    assert [r.body["input"] for r in server.requests] == [["a", "bb"], ["ccc", "dddd"], ["eeeee"]]
    assert all(r.body["model"] == "test-model" for r in server.requests)
    assert vectors.shape == (5, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    expected = np.array([server.vector(t) for t in TEXTS], dtype=np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=1e-6)


def test_a_base_url_that_already_ends_in_the_api_prefix_is_not_doubled(server: FakeEmbeddingServer) -> None:
    make(server.url + "/v1/", "openai").embed_query("x")
    make(server.url + "/api", "ollama").embed_query("x")
    assert [r.path for r in server.requests] == ["/v1/embeddings", "/api/embed"]


def test_the_dimension_is_discovered_by_one_probe_request(server: FakeEmbeddingServer) -> None:
    server.dimension = 6
    embedder = make(server.url, dimension=None)
    assert embedder.dimension == 6
    assert embedder.dimension == 6
    assert len(server.requests) == 1
    assert embedder.embed_documents(["x"]).shape == (1, 6)


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_a_server_error_is_retried_and_then_succeeds(server: FakeEmbeddingServer, status: int) -> None:
    server.failures = [(status, '{"error": "busy"}')]
    vectors = make(server.url).embed_documents(["hello"])
    assert len(server.requests) == 2
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0)


def test_retries_give_up_with_an_embedding_error(server: FakeEmbeddingServer) -> None:
    server.failures = [(500, "boom")] * 10
    with pytest.raises(EmbeddingError, match=r"HTTP 500.*3 attempts"):
        make(server.url, max_retries=2).embed_documents(["hello"])
    assert len(server.requests) == 3


def test_a_client_error_is_not_retried(server: FakeEmbeddingServer) -> None:
    server.failures = [(400, '{"error": "model \\"test-model\\" not found"}')]
    with pytest.raises(EmbeddingError, match=r"HTTP 400.*not found"):
        make(server.url).embed_documents(["hello"])
    assert len(server.requests) == 1


@pytest.mark.parametrize("flavour", ["ollama", "openai"])
def test_a_vector_of_the_wrong_dimension_is_an_embedding_error(
    server: FakeEmbeddingServer, flavour: str
) -> None:
    server.dimension = 8
    with pytest.raises(EmbeddingError, match=r"dimension \[8\], expected 4"):
        make(server.url, flavour).embed_documents(["hello"])


def test_a_response_with_too_few_vectors_is_an_embedding_error(server: FakeEmbeddingServer) -> None:
    server.drop_one_vector = True
    with pytest.raises(EmbeddingError, match="1 vectors for 2 inputs"):
        make(server.url).embed_documents(["a", "b"])


def test_a_malformed_response_is_an_embedding_error(server: FakeEmbeddingServer) -> None:
    server.failures = [(200, '{"unexpected": true}')]
    with pytest.raises(EmbeddingError, match="unexpected response"):
        make(server.url).embed_documents(["a"])


def test_an_unreachable_server_is_an_embedding_error() -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = make(f"http://127.0.0.1:{port}", max_retries=1)
    with pytest.raises(EmbeddingError, match=r"cannot reach http://127\.0\.0\.1:\d+/api/embed.*2 attempts"):
        embedder.embed_documents(["hello"])


def test_a_slow_server_times_out_into_an_embedding_error(server: FakeEmbeddingServer) -> None:
    server.delay_seconds = 1.0
    with pytest.raises(EmbeddingError, match="Timeout"):
        make(server.url, timeout_seconds=0.2, max_retries=0).embed_documents(["hello"])


def test_the_api_key_is_sent_as_a_bearer_token_and_never_appears_in_errors(
    server: FakeEmbeddingServer,
) -> None:
    embedder = make(server.url, "openai", api_key=SECRET, max_retries=0)
    embedder.embed_documents(["hello"])
    assert server.requests[0].headers["Authorization"] == f"Bearer {SECRET}"

    messages = []
    for status, body in [
        (401, f'{{"error": "Incorrect API key provided: {SECRET}"}}'),
        (500, f"key={SECRET}"),
    ]:
        server.failures = [(status, body)]
        with pytest.raises(EmbeddingError) as caught:
            embedder.embed_documents(["hello"])
        messages.append(str(caught.value))
    assert "EMBEDDING_API_KEY" in messages[0]
    assert "key=***" in messages[1]
    assert all(SECRET not in m and SECRET[:12] not in m for m in messages), messages


def test_no_authorization_header_is_sent_without_a_key(server: FakeEmbeddingServer) -> None:
    make(server.url, "openai").embed_documents(["hello"])
    assert "Authorization" not in server.requests[0].headers


def test_credentials_in_the_url_stay_out_of_error_messages() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = make(f"http://user:{SECRET}@127.0.0.1:{port}", max_retries=0)
    with pytest.raises(EmbeddingError) as caught:
        embedder.embed_documents(["hello"])
    assert SECRET not in str(caught.value)


def test_empty_texts_are_not_sent_and_get_zero_vectors(server: FakeEmbeddingServer) -> None:
    vectors = make(server.url).embed_documents(["", "hello", "  "])
    assert [r.body["input"] for r in server.requests] == [["hello"]]
    assert not vectors[0].any() and not vectors[2].any()
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0)
