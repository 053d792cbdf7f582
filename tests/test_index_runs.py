"""Index runs against the embedded PostgreSQL: what a re-index reads, re-embeds, keeps and drops.

The embedder is the shipped static model behind a wrapper that records every text it is asked to
embed, so "only the changed file was re-embedded" is checked, not inferred from timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from indexing import index_run
from sqlalchemy.engine import Engine

from mcp_server.core.errors import EmbeddingModelMismatch
from mcp_server.embeddings import StaticEmbedder
from mcp_server.index.search import Searcher
from mcp_server.indexer.file_tasks import MINIFIED, is_minified
from mcp_server.indexer.pipeline import RunCounters

pytestmark = pytest.mark.timeout(120)

_STATIC = StaticEmbedder()


class RecordingEmbedder:
    """The static model, recording what it embeds; `model_id` can be changed to play another model."""

    def __init__(self, model_id: str | None = None) -> None:
        self.texts: list[str] = []
        self._model_id = model_id or _STATIC.model_id

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dimension(self) -> int:
        return _STATIC.dimension

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return _STATIC.embed_documents(texts)

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        return _STATIC.embed_query(text)


def run(engine: Engine, root: Path, embedder: Any, *, force: bool = False) -> RunCounters:
    return index_run(engine, root, embedder, force=force).run()


def found(engine: Engine, word: str) -> list[str]:
    results = Searcher(engine, _STATIC).search(word, project_id="default", mode="lexical", limit=20).results
    return sorted({r.file_path for r in results})


@pytest.fixture
def repo(make_repo: Any, clean_db: Engine) -> Path:
    root: Path = make_repo(
        {f"pkg/module_{i}.py": f"def function_{i}():\n    return 'marker{i}'\n" for i in range(6)}
        | {"README.md": "# Title\n\nSome words about readmemarker.\n"}
    )
    first = run(clean_db, root, RecordingEmbedder())
    assert (first.files_indexed, first.files_changed) == (7, 7)
    return root


def test_an_unchanged_repository_is_read_and_hashed_but_nothing_is_embedded(
    clean_db: Engine, repo: Path
) -> None:
    embedder = RecordingEmbedder()
    counters = run(clean_db, repo, embedder)
    assert (counters.files_unchanged, counters.files_changed, counters.chunks_created) == (7, 0, 0)
    assert embedder.texts == []
    assert found(clean_db, "marker3") == ["pkg/module_3.py"]


def test_one_changed_file_is_the_only_one_re_embedded_and_its_old_text_is_gone(
    clean_db: Engine, repo: Path
) -> None:
    (repo / "pkg" / "module_2.py").write_text("def function_2():\n    return 'rewrittenmarker'\n")
    embedder = RecordingEmbedder()
    counters = run(clean_db, repo, embedder)
    assert (counters.files_changed, counters.files_unchanged) == (1, 6)
    assert embedder.texts and all(text.startswith("pkg/module_2.py") for text in embedder.texts)
    assert found(clean_db, "rewrittenmarker") == ["pkg/module_2.py"]
    assert found(clean_db, "marker2") == []


def test_a_deleted_file_leaves_the_index(clean_db: Engine, repo: Path) -> None:
    (repo / "pkg" / "module_4.py").unlink()
    counters = run(clean_db, repo, RecordingEmbedder())
    assert counters.files_removed == 1
    assert found(clean_db, "marker4") == []
    assert found(clean_db, "marker5") == ["pkg/module_5.py"]


def test_force_reindex_embeds_every_file_again(clean_db: Engine, repo: Path) -> None:
    embedder = RecordingEmbedder()
    counters = run(clean_db, repo, embedder, force=True)
    assert (counters.files_changed, counters.files_unchanged) == (7, 0)
    assert {text.split("\n", 1)[0].split()[0] for text in embedder.texts} >= {
        f"pkg/module_{i}.py" for i in range(6)
    }
    assert found(clean_db, "marker0") == ["pkg/module_0.py"]


def test_another_embedding_model_is_refused_until_a_forced_reindex(clean_db: Engine, repo: Path) -> None:
    other = RecordingEmbedder(model_id="another-model-v1")
    with pytest.raises(EmbeddingModelMismatch, match="force_reindex"):
        run(clean_db, repo, other)
    assert other.texts == []
    with pytest.raises(EmbeddingModelMismatch, match="force_reindex"):
        Searcher(clean_db, other).search("marker1", project_id="default", mode="semantic")
    # Lexical search needs no vectors, so it still answers.
    assert Searcher(clean_db, other).search("marker1", project_id="default", mode="lexical").results

    counters = run(clean_db, repo, other, force=True)
    assert counters.files_changed == 7
    assert Searcher(clean_db, other).search("marker1", project_id="default", mode="semantic").results
    with pytest.raises(EmbeddingModelMismatch):
        Searcher(clean_db, _STATIC).search("marker1", project_id="default", mode="semantic")


def test_minified_files_are_skipped_with_their_reason(make_repo: Any, clean_db: Engine) -> None:
    bundle = "".join(f"var a{i}=b{i}(c,{i});" for i in range(2000))  # one line of ~30,000 characters
    root: Path = make_repo({"app.js": "function main() {\n  return 1;\n}\n", "static/bundle.js": bundle})
    counters = run(clean_db, root, RecordingEmbedder())
    assert counters.skipped_reasons == {MINIFIED: 1}
    assert found(clean_db, "main") == ["app.js"]


@pytest.mark.parametrize(
    ("text", "minified"),
    [
        ("x" * 50_000, True),  # one line
        ("short line\n" * 10 + "y" * 5_000, True),  # mostly one long line
        ("def f():\n    return 1\n" * 2_000, False),  # ordinary code
        # An inlined asset in an ordinary module: a long line, but most of the text is code.
        ("def f():\n    return 1\n" * 1_000 + "BLOB = '" + "z" * 9_000 + "'\n", False),
        ("z" * 1_500, False),  # too small to judge: kept
    ],
)
def test_minified_means_most_of_the_text_is_in_very_long_lines(text: str, minified: bool) -> None:
    assert is_minified(text) is minified
