"""The shipped static embedder, identifier splitting and the embedder factory."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from mcp_server.core.errors import ConfigurationError
from mcp_server.embeddings import (
    DEFAULT_MODEL_DIR,
    Embedder,
    StaticEmbedder,
    create_embedder,
    embedder_for_project,
)
from mcp_server.embeddings.identifiers import split_identifier, split_identifiers
from mcp_server.embeddings.static import SHIPPED_MODEL_DIRS

pytestmark = pytest.mark.timeout(60)

SNIPPETS = {
    "load_config": '''
def load_config(path):
    """Read the settings file."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)
''',
    "fetch_with_retry": """
async function fetchWithRetry(url, attempts = 3) {
  for (let i = 0; i < attempts; i++) {
    const response = await fetch(url);
    if (response.ok) return response;
    await sleep(2 ** i * 100);
  }
  throw new Error(`request to ${url} failed`);
}
""",
    "file_sha256": """
func fileSHA256(path string) (string, error) {
\tf, err := os.Open(path)
\tif err != nil {
\t\treturn "", err
\t}
\tdefer f.Close()
\th := sha256.New()
\tif _, err := io.Copy(h, f); err != nil {
\t\treturn "", err
\t}
\treturn hex.EncodeToString(h.Sum(nil)), nil
}
""",
    "connect_db": """
def connect_database(dsn: str) -> psycopg.Connection:
    connection = psycopg.connect(dsn, autocommit=True)
    connection.execute("SET statement_timeout = '5s'")
    return connection
""",
    "sort_users": """
def oldest_first(users):
    return sorted(users, key=lambda user: user.age, reverse=True)
""",
    "parse_args": """
def parse_arguments(argv):
    parser = argparse.ArgumentParser(description="Index a repository")
    parser.add_argument("--path", required=True)
    parser.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)
""",
    "resize_image": """
public BufferedImage resizeImage(BufferedImage original, int width, int height) {
    Image scaled = original.getScaledInstance(width, height, Image.SCALE_SMOOTH);
    BufferedImage result = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
    result.getGraphics().drawImage(scaled, 0, 0, null);
    return result;
}
""",
}

QUERIES = {
    "read the json configuration file": "load_config",
    "retry a failed http request": "fetch_with_retry",
    "compute the sha256 hash of a file": "file_sha256",
    "connect to the postgres database": "connect_db",
    "sort users by age": "sort_users",
    "parse command line arguments": "parse_args",
    "scale a picture to a new size": "resize_image",
}


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder()


class TestShippedStaticModel:
    def test_it_loads_from_the_package_with_its_recorded_id_and_dimension(
        self, static: StaticEmbedder
    ) -> None:
        config = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
        assert static.model_id == config["model_id"] == "minilm-l6-static-code-v1"
        assert static.dimension == config["dimension"] == 256
        assert isinstance(static, Embedder)

    @pytest.mark.parametrize("model_id", sorted(SHIPPED_MODEL_DIRS))
    def test_each_shipped_table_is_the_one_recorded_in_config_and_provenance(self, model_id: str) -> None:
        directory = SHIPPED_MODEL_DIRS[model_id]
        config = json.loads((directory / "config.json").read_text())
        assert config["model_id"] == model_id
        table = (directory / "embeddings.safetensors").read_bytes()
        assert hashlib.sha256(table).hexdigest() == config["embeddings_sha256"]
        provenance = (directory / "PROVENANCE.md").read_text()
        assert provenance.startswith(f"# Provenance of `{model_id}`")
        assert config["source"]["wheel_sha256"] in provenance or "training" in config
        assert "Apache" in (directory / "LICENSE").read_text()

    def test_the_trained_table_names_its_base_and_every_corpus_by_hash(self) -> None:
        trained = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["training"]
        base = json.loads((SHIPPED_MODEL_DIRS[trained["base_model_id"]] / "config.json").read_text())
        assert trained["base_embeddings_sha256"] == base["embeddings_sha256"]
        fetched = [c for c in trained["corpora"] if "url" in c]
        assert fetched and all(c["url"].startswith("https://") and len(c["sha256"]) == 64 for c in fetched)

    def test_documents_become_unit_float32_rows_of_the_model_dimension(self, static: StaticEmbedder) -> None:
        vectors = static.embed_documents(list(SNIPPETS.values()))
        assert vectors.shape == (len(SNIPPETS), 256)
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)

    def test_a_query_becomes_one_unit_vector(self, static: StaticEmbedder) -> None:
        vector = static.embed_query("where is the database connection opened")
        assert vector.shape == (256,)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, rel=1e-5)

    def test_embedding_is_deterministic_and_independent_of_the_batch(self, static: StaticEmbedder) -> None:
        texts = list(SNIPPETS.values())
        together = static.embed_documents(texts)
        alone = np.stack([static.embed_documents([t])[0] for t in texts])
        again = StaticEmbedder().embed_documents(texts)
        np.testing.assert_allclose(together, alone, atol=1e-6)
        np.testing.assert_array_equal(together, again)

    def test_empty_and_whitespace_texts_get_zero_vectors(self, static: StaticEmbedder) -> None:
        vectors = static.embed_documents(["", "   \n\t", "def f(): pass"])
        assert not vectors[0].any() and not vectors[1].any()
        assert np.linalg.norm(vectors[2]) == pytest.approx(1.0, rel=1e-5)
        assert static.embed_documents([]).shape == (0, 256)

    @pytest.mark.parametrize("query", sorted(QUERIES))
    def test_the_relevant_snippet_ranks_first_for_an_everyday_query(
        self, static: StaticEmbedder, query: str
    ) -> None:
        names = list(SNIPPETS)
        documents = static.embed_documents([SNIPPETS[n] for n in names])
        scores = documents @ static.embed_query(query)
        ranking = [names[i] for i in np.argsort(-scores)]
        assert ranking[0] == QUERIES[query], f"{query!r} ranked {ranking}"

    def test_camel_case_identifiers_are_found_by_their_words(self, static: StaticEmbedder) -> None:
        documents = static.embed_documents(
            [
                "class HTTPResponseParser:\n    def parseStatusLine(self, rawBytes): ...",
                "def f(x, y): return x + y",
            ]
        )
        scores = documents @ static.embed_query("parse the status line of an http response")
        assert scores[0] > scores[1] + 0.2

    def test_many_distinct_words_do_not_change_results_when_the_word_cache_is_cleared(self) -> None:
        from mcp_server.embeddings import static as static_module

        text = "def compute_checksum(path): return hashlib.sha256(open(path, 'rb').read()).hexdigest()"
        fresh = StaticEmbedder()
        before = fresh.embed_query(text)
        words = static_module._load(DEFAULT_MODEL_DIR).words
        limit = words._limit
        words._limit = len(words.index) + 5  # the next unseen words overflow it
        try:
            fresh.embed_documents([" ".join(f"word{i}x" for i in range(50))])
            after = fresh.embed_query(text)
        finally:
            words._limit = limit
        np.testing.assert_allclose(before, after, atol=1e-6)


class TestIdentifierSplitting:
    @pytest.mark.parametrize(
        ("identifier", "words"),
        [
            ("parseHTTPResponse", "parse HTTP Response"),
            ("HTMLParser", "HTML Parser"),
            ("getUserID", "get User ID"),
            ("snake_case_name", "snake case name"),
            ("utf8Decode", "utf 8 Decode"),
            ("sha256sum", "sha 256 sum"),
            ("plain", "plain"),
            ("ALLCAPS", "ALLCAPS"),
        ],
    )
    def test_an_identifier_splits_at_case_digit_and_underscore_boundaries(
        self, identifier: str, words: str
    ) -> None:
        assert split_identifier(identifier) == words

    def test_text_keeps_its_punctuation_and_spacing(self) -> None:
        assert split_identifiers("x = getValue(my_dict)\n") == "x = get Value(my_dict)\n"


class TestFactory:
    @staticmethod
    def make(**overrides: object) -> Embedder:
        arguments: dict[str, object] = {
            "backend": "static",
            "model": None,
            "url": None,
            "api_key": None,
            "dimension": None,
            "batch_size": 32,
            "timeout_seconds": 10.0,
            "model_path": None,
        }
        arguments.update(overrides)
        return create_embedder(**arguments)  # type: ignore[arg-type]

    def test_the_default_backend_is_the_shipped_static_model(self) -> None:
        embedder = self.make()
        assert isinstance(embedder, StaticEmbedder)
        assert embedder.model_id == "minilm-l6-static-code-v1"

    def test_a_matching_dimension_is_accepted_and_a_wrong_one_names_the_variable(self) -> None:
        assert self.make(dimension=256).dimension == 256
        with pytest.raises(ConfigurationError, match="EMBEDDING_DIMENSION"):
            self.make(dimension=768)

    def test_an_unknown_backend_names_the_variable(self) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_BACKEND"):
            self.make(backend="word2vec")

    @pytest.mark.parametrize("backend", ["ollama", "openai"])
    def test_an_http_backend_without_url_names_embedding_url(self, backend: str) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_URL"):
            self.make(backend=backend, model="m")

    @pytest.mark.parametrize("backend", ["ollama", "openai"])
    def test_an_http_backend_without_model_names_embedding_model(self, backend: str) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_MODEL"):
            self.make(backend=backend, url="http://127.0.0.1:1")

    def test_a_url_without_scheme_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_URL"):
            self.make(backend="ollama", model="m", url="localhost:11434")

    def test_the_transformer_without_a_model_path_names_embedding_model_path(self, tmp_path: object) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_MODEL_PATH"):
            self.make(backend="transformer")
        with pytest.raises(ConfigurationError, match="EMBEDDING_MODEL_PATH"):
            self.make(backend="transformer", model_path=str(tmp_path))

    def test_http_model_ids_name_the_flavour_and_the_model(self) -> None:
        ollama = self.make(
            backend="ollama", model="nomic-embed-text", url="http://127.0.0.1:1", dimension=768
        )
        openai = self.make(backend="OpenAI", model="text-embedding-3-small", url="http://127.0.0.1:1")
        assert ollama.model_id == "ollama:nomic-embed-text"
        assert ollama.dimension == 768  # configured: no request is made
        assert openai.model_id == "openai:text-embedding-3-small"

    def test_a_nonpositive_batch_size_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="EMBEDDING_BATCH_SIZE"):
            self.make(batch_size=0)


class TestAProjectKeepsTheShippedModelItWasIndexedWith:
    """The default table changed (minilm-l6-static-v1 -> -code-v1): projects indexed before go on
    with theirs rather than failing with a model mismatch after an upgrade."""

    def test_the_default_embedder_reads_an_older_shipped_project_with_that_model(
        self, static: StaticEmbedder
    ) -> None:
        old = static.for_project("minilm-l6-static-v1")
        assert old.model_id == "minilm-l6-static-v1" and old.dimension == static.dimension
        explicit = StaticEmbedder(model_dir=SHIPPED_MODEL_DIRS["minilm-l6-static-v1"])
        text = "def parse_status_line(raw): return raw.split()"
        np.testing.assert_array_equal(old.embed_query(text), explicit.embed_query(text))
        assert not np.allclose(old.embed_query(text), static.embed_query(text))

    def test_its_own_model_a_new_project_and_an_unknown_model_keep_the_default(
        self, static: StaticEmbedder
    ) -> None:
        assert static.for_project(static.model_id) is static
        assert static.for_project("someone-elses-model") is static
        assert embedder_for_project(static, None) is static

    def test_a_chosen_model_directory_is_never_swapped(self) -> None:
        chosen = StaticEmbedder(model_dir=SHIPPED_MODEL_DIRS["minilm-l6-static-v1"])
        assert chosen.for_project("minilm-l6-static-code-v1") is chosen
        assert embedder_for_project(chosen, "minilm-l6-static-code-v1") is chosen
        # Naming the default's own directory is a choice too: how a project moves to it.
        named_default = StaticEmbedder(model_dir=DEFAULT_MODEL_DIR)
        assert named_default.for_project("minilm-l6-static-v1") is named_default

    def test_the_factory_follows_the_project_only_without_a_model_path(self) -> None:
        unset = TestFactory.make()
        named = TestFactory.make(model_path=str(DEFAULT_MODEL_DIR))
        assert isinstance(unset, StaticEmbedder) and isinstance(named, StaticEmbedder)
        assert unset.for_project("minilm-l6-static-v1").model_id == "minilm-l6-static-v1"
        assert named.for_project("minilm-l6-static-v1") is named

    def test_other_backends_are_what_was_configured(self) -> None:
        class Remote:
            model_id, dimension = "openai:text-embedding-3-small", 1536

        remote = Remote()
        assert embedder_for_project(remote, "minilm-l6-static-v1") is remote  # type: ignore[arg-type]
