"""Fixtures for the reliability tests: faults injected from outside the product, bad input.

Faults are injected the way they happen in life (signals to real processes, the real database
stopped, a real slow embedding server), never through hooks in the product code. The helpers
these tests share live in `reliability/support.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fake_embedding_server import FakeEmbeddingServer


@pytest.fixture
def slow_embedder(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[FakeEmbeddingServer]:
    """The real Ollama HTTP backend pointed at a local server whose delay a test controls.

    Set in the environment, so every process started from here on (MCP servers, supervisors,
    indexers) uses it too."""
    with FakeEmbeddingServer() as server:
        monkeypatch.setenv("EMBEDDING_BACKEND", "ollama")
        monkeypatch.setenv("EMBEDDING_URL", server.url)
        monkeypatch.setenv("EMBEDDING_MODEL", "fake-embed")
        monkeypatch.setenv("EMBEDDING_DIMENSION", "32")
        yield server
