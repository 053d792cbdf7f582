"""The opt-in second stage: rerank fusion (pure), the rerank endpoints over real HTTP, the cached
bi-encoder reranker, and the searcher's use of them against the embedded database."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from indexing import index_run
from json_http_server import serve_json
from pydantic import SecretStr
from sqlalchemy.engine import Engine

from mcp_server.core.errors import ConfigurationError, InvalidInput
from mcp_server.core.settings import Settings
from mcp_server.embeddings import StaticEmbedder
from mcp_server.embeddings.rerankers import (
    EmbeddingReranker,
    HttpReranker,
    RerankError,
    create_reranker,
)
from mcp_server.frontends.operations import CodebaseService
from mcp_server.index.search import Searcher
from mcp_server.index.search.ranking import rerank

pytestmark = pytest.mark.timeout(60)

SECRET = "rk-test-SECRET-4b1d"


# --- fusion, no database ---------------------------------------------------------------------------


FUSED = [(10, 0.9), (11, 0.8), (12, 0.7), (13, 0.6), (14, 0.5)]


def test_the_reranker_reorders_only_its_candidates_and_they_stay_above_the_rest() -> None:
    # The reranker read 10, 11 and 12 and likes 12 best, then 11.
    out = rerank(FUSED, {10: 0.1, 11: 0.5, 12: 0.9}, weight=3.0)
    assert [chunk_id for chunk_id, _ in out] == [12, 11, 10, 13, 14]
    scores = [score for _, score in out]
    assert scores == sorted(scores, reverse=True)
    assert out[3:] == FUSED[3:]


def test_the_first_stage_still_counts_in_the_fusion() -> None:
    # A reranker of equal weight that prefers the fourth candidate moves it up, not to the top.
    scores = {10: 0.4, 11: 0.3, 12: 0.2, 13: 0.9}
    weak = [chunk_id for chunk_id, _ in rerank(FUSED, scores, weight=1.0)]
    assert weak[0] == 10 and weak.index(13) < 3
    strong = [chunk_id for chunk_id, _ in rerank(FUSED, scores, weight=10.0)]
    assert strong[0] == 13
    assert [chunk_id for chunk_id, _ in rerank(FUSED, scores, weight=0.0)] == [10, 11, 12, 13, 14]


def test_no_scores_leave_the_order_alone() -> None:
    assert rerank(FUSED, {}, weight=1.5) == FUSED


# --- the rerank endpoints over real HTTP -------------------------------------------------------------


@dataclass
class RerankServer:
    """Answers TEI's /rerank and the Cohere-style /v1/rerank; a text's score is how often it holds
    the query's first word. `answer` may be replaced to misbehave."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    delay_seconds: float = 0.0
    status: int = 200
    body: str | None = None

    def answer(self, path: str, payload: dict[str, Any]) -> tuple[int, str]:
        if self.body is not None:
            return self.status, self.body
        word = payload["query"].split()[0]
        texts = payload["texts"] if path == "/rerank" else payload["documents"]
        scored = [{"index": i, "score": float(t.count(word))} for i, t in enumerate(texts)]
        scored.sort(key=lambda item: -item["score"])  # servers answer best first: order by index
        if path == "/rerank":
            return 200, json.dumps(scored)
        results = [{"index": s["index"], "relevance_score": s["score"]} for s in scored]
        return 200, json.dumps({"id": "x", "results": results})


@pytest.fixture
def rerank_server() -> Iterator[RerankServer]:
    state = RerankServer()

    def answer(path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, str]:
        state.requests.append((path, headers, body))
        return state.answer(path, body)

    with serve_json(answer, lambda: state.delay_seconds) as url:
        state.url = url
        yield state


TEXTS = ["no match here", "parse parse parse", "parse once"]


@pytest.mark.parametrize(("flavour", "path"), [("tei", "/rerank"), ("cohere", "/v1/rerank")])
def test_an_endpoint_scores_every_text_in_input_order(
    rerank_server: RerankServer, flavour: Any, path: str
) -> None:
    reranker = HttpReranker(flavour=flavour, url=rerank_server.url, model="bge-reranker-base", api_key=SECRET)
    assert reranker.scores("parse the config", TEXTS) == [0.0, 3.0, 1.0]
    ((sent_path, headers, payload),) = rerank_server.requests
    assert sent_path == path
    assert headers["Authorization"] == f"Bearer {SECRET}"
    if flavour == "tei":
        assert payload == {"query": "parse the config", "texts": TEXTS, "truncate": True}
    else:
        assert payload == {
            "query": "parse the config",
            "documents": TEXTS,
            "top_n": 3,
            "model": "bge-reranker-base",
        }


def test_a_base_url_ending_in_v1_is_not_doubled(rerank_server: RerankServer) -> None:
    HttpReranker(flavour="cohere", url=rerank_server.url + "/v1/").scores("parse", TEXTS)
    assert rerank_server.requests[0][0] == "/v1/rerank"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, "model crashed", "answered HTTP 500: model crashed"),
        (401, f"bad key {SECRET}", "refused the request with HTTP 401; check CODEBASE_RERANK_API_KEY"),
        (200, "not json", "unexpected response"),
        (200, json.dumps([{"index": 0, "score": 1.0}]), "did not score each of the 3 candidates"),
        (200, json.dumps([{"index": i, "score": "NaN"} for i in range(3)]), "did not score each"),
    ],
)
def test_a_failing_endpoint_is_a_rerank_error_that_never_quotes_the_key(
    rerank_server: RerankServer, status: int, body: str, expected: str
) -> None:
    rerank_server.status, rerank_server.body = status, body
    reranker = HttpReranker(flavour="tei", url=rerank_server.url, api_key=SECRET)
    with pytest.raises(RerankError, match=expected) as raised:
        reranker.scores("parse", TEXTS)
    assert SECRET not in str(raised.value)


def test_an_endpoint_slower_than_the_timeout_is_a_rerank_error(rerank_server: RerankServer) -> None:
    rerank_server.delay_seconds = 1.0
    reranker = HttpReranker(flavour="tei", url=rerank_server.url, timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(RerankError, match="cannot reach"):
        reranker.scores("parse", TEXTS)
    assert time.monotonic() - started < 1.0


def test_configuration_mistakes_name_the_variable(tmp_path: Path) -> None:
    assert (
        create_reranker(backend="none", url=None, model=None, api_key=None, model_path=None, timeout_ms=100)
        is None
    )
    cases = [
        ({"backend": "crossencoder"}, "CODEBASE_RERANKER must be one of"),
        ({"backend": "tei"}, "CODEBASE_RERANK_URL is required"),
        ({"backend": "cohere", "url": "ftp://x"}, "must start with http"),
        ({"backend": "transformer"}, "CODEBASE_RERANK_MODEL_PATH must name a directory"),
        ({"backend": "transformer", "model_path": str(tmp_path)}, "lacks model.safetensors, tokenizer.json"),
    ]
    for overrides, message in cases:
        arguments: dict[str, Any] = {"url": None, "model": None, "api_key": None, "model_path": None}
        arguments |= {"timeout_ms": 1000, **overrides}
        with pytest.raises(ConfigurationError, match=message):
            create_reranker(**arguments)


# --- the bi-encoder reranker ---------------------------------------------------------------------------


class CountingEmbedder:
    """The static model, counting the texts it embeds."""

    def __init__(self) -> None:
        self._inner = StaticEmbedder()
        self.embedded: list[str] = []

    @property
    def model_id(self) -> str:
        return "counting"

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed_documents(self, texts: list[str]) -> Any:
        self.embedded.extend(texts)
        return self._inner.embed_documents(texts)

    def embed_query(self, text: str) -> Any:
        return self._inner.embed_query(text)


def test_the_bi_encoder_scores_by_cosine_and_embeds_a_text_once() -> None:
    embedder = CountingEmbedder()
    reranker = EmbeddingReranker(embedder, cache_entries=3)
    texts = ["def parse_config(path): read the configuration file", "def draw_circle(radius): pixels"]
    scores = reranker.scores("read a configuration file", texts)
    expected = embedder._inner.embed_documents(texts) @ embedder._inner.embed_query(
        "read a configuration file"
    )
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert scores[0] > scores[1]
    reranker.scores("another query", [texts[1], texts[0], texts[0]])
    assert embedder.embedded == texts  # both came from the cache, the duplicate too
    reranker.scores("q", ["a", "b", "c"])  # three new texts push the two old ones out
    reranker.scores("q", [texts[0]])
    assert embedder.embedded[-1] == texts[0]


class SlowEmbedder(CountingEmbedder):
    """Each batch of documents takes `seconds`: a model far slower than the reranker's time bound."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.batches = 0

    def embed_documents(self, texts: list[str]) -> Any:
        self.batches += 1
        time.sleep(self.seconds)  # the cost of the model, not a wait for a condition
        return super().embed_documents(texts)


def test_the_bi_encoder_stops_at_its_time_bound_and_scores_the_best_candidates_it_reached() -> None:
    embedder = SlowEmbedder(0.2)
    reranker = EmbeddingReranker(embedder, timeout_seconds=0.05)
    texts = [f"def handler_{i}(request): answer request {i}" for i in range(20)]
    scores = reranker.scores("answer a request", texts)
    # One batch ran (the bound had passed when it ended); its texts are the first stage's best.
    assert embedder.batches == 1 and len(scores) == EmbeddingReranker.batch
    assert embedder.embedded == texts[: EmbeddingReranker.batch]
    # What it reached is cached: the next search of the same candidates gets further.
    again = reranker.scores("answer a request", texts)
    assert len(again) == 2 * EmbeddingReranker.batch and again[:4] == pytest.approx(scores)
    unbounded = EmbeddingReranker(CountingEmbedder())
    assert len(unbounded.scores("answer a request", texts)) == len(texts)


# --- the searcher ------------------------------------------------------------------------------------------


class MarkerReranker:
    """Scores a text by whether it holds `marker`; fails when told to."""

    name = "marker"
    weight = 10.0  # trusted far above the first stage: these tests are about where it applies

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.fail = False
        self.calls: list[int] = []

    def scores(self, query: str, texts: list[str]) -> list[float]:
        self.calls.append(len(texts))
        if self.fail:
            raise RerankError("the marker reranker is down")
        return [1.0 if self.marker in t else 0.0 for t in texts]


@pytest.fixture
def indexed(make_repo: Any, clean_db: Engine) -> Engine:
    files = {
        f"loader_{i}.py": f"def load_settings_{i}(path):\n"
        "    '''Load the settings file.'''\n    return open(path).read()\n"
        for i in range(8)
    }
    files["wanted.py"] = (
        "def read_options(source):\n    '''Settings come from here: parse lines of key=value.'''\n"
        "    return dict(line.split('=') for line in source)\n"
    )
    index_run(clean_db, make_repo(files)).run()
    return clean_db


def test_the_reranker_orders_the_best_candidates_and_the_response_says_which(indexed: Engine) -> None:
    plain = Searcher(indexed, StaticEmbedder()).search("load the settings file", project_id="default")
    assert plain.results[0].file_path != "wanted.py" and plain.reranker is None
    reranker = MarkerReranker("key=value")
    searcher = Searcher(indexed, StaticEmbedder(), reranker=reranker, rerank_candidates=20)
    response = searcher.search("load the settings file", project_id="default")
    assert response.results[0].file_path == "wanted.py"
    assert response.reranker == "marker" and response.rerank_ms is not None and response.rerank_ms >= 0
    assert reranker.calls == [9]  # every chunk of this small project was a candidate
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)


def test_lexical_mode_is_reranked_only_when_asked_and_false_turns_it_off(indexed: Engine) -> None:
    reranker = MarkerReranker("key=value")
    searcher = Searcher(indexed, StaticEmbedder(), reranker=reranker)
    lexical = searcher.search("load the settings file", project_id="default", mode="lexical")
    assert lexical.reranker is None and reranker.calls == []
    asked = searcher.search("load the settings file", project_id="default", mode="lexical", rerank=True)
    assert asked.reranker == "marker" and asked.results[0].file_path == "wanted.py"
    off = searcher.search("load the settings file", project_id="default", rerank=False)
    assert off.reranker is None and len(reranker.calls) == 1


def test_asking_for_reranking_without_a_reranker_is_an_input_error(indexed: Engine) -> None:
    with pytest.raises(InvalidInput, match="CODEBASE_RERANKER"):
        Searcher(indexed, StaticEmbedder()).search("settings", project_id="default", rerank=True)


def test_a_failing_reranker_keeps_the_first_stage_order_and_says_so(indexed: Engine) -> None:
    reranker = MarkerReranker("key=value")
    reranker.fail = True
    searcher = Searcher(indexed, StaticEmbedder(), reranker=reranker)
    response = searcher.search("load the settings file", project_id="default")
    plain = Searcher(indexed, StaticEmbedder()).search("load the settings file", project_id="default")
    assert [r.file_path for r in response.results] == [r.file_path for r in plain.results]
    assert response.reranker is None
    assert response.note is not None and "reranking skipped: the marker reranker is down" in response.note


def test_an_exact_identifier_still_leads_whatever_the_reranker_prefers(indexed: Engine) -> None:
    searcher = Searcher(indexed, StaticEmbedder(), reranker=MarkerReranker("key=value"))
    response = searcher.search("load_settings_3", project_id="default")
    assert response.results[0].file_path == "loader_3.py"
    assert response.reranker == "marker"


class PrefixReranker(MarkerReranker):
    """Scores only the first `reached` texts, as a local reranker out of time does."""

    def __init__(self, marker: str, reached: int) -> None:
        super().__init__(marker)
        self.reached = reached

    def scores(self, query: str, texts: list[str]) -> list[float]:
        return super().scores(query, texts)[: self.reached]


def test_a_reranker_out_of_time_orders_the_head_it_reached_and_says_how_much(indexed: Engine) -> None:
    plain = Searcher(indexed, StaticEmbedder()).search(
        "load the settings file", project_id="default", limit=9
    )
    first_stage = [r.file_path for r in plain.results]
    fourth = first_stage[3]
    assert fourth.startswith("loader_")
    marker = fourth.removeprefix("loader_").removesuffix(".py")
    reranker = PrefixReranker(f"load_settings_{marker}(", 4)
    response = Searcher(indexed, StaticEmbedder(), reranker=reranker).search(
        "load the settings file", project_id="default", limit=9
    )
    assert response.results[0].file_path == fourth
    assert response.reranker == "marker"
    assert response.note is not None and "reranked the best 4 of 9 candidates" in response.note
    # What it did not reach keeps the first stage's order, after the reranked head.
    assert [r.file_path for r in response.results][4:] == first_stage[4:]

    short = Searcher(indexed, StaticEmbedder(), reranker=PrefixReranker("key=value", 1))
    skipped = short.search("load the settings file", project_id="default", limit=9)
    assert [r.file_path for r in skipped.results] == first_stage and skipped.reranker is None
    assert skipped.note is not None and "reached no candidate" in skipped.note


# --- configured through settings, as the MCP server and the CLI build it ----------------------------------


def test_the_service_builds_the_configured_reranker_and_reports_it(
    settings: Settings, indexed: Engine, rerank_server: RerankServer
) -> None:
    configured = settings.replace(
        search={"reranker": "tei", "rerank_url": rerank_server.url, "rerank_api_key": SecretStr(SECRET)}
    )
    svc = CodebaseService(configured, engine=indexed)
    response = svc.search("key=value settings", None)
    assert response["reranker"] == "tei:default" and response["rerank_ms"] >= 0
    assert rerank_server.requests and rerank_server.requests[0][0] == "/rerank"
    assert len(rerank_server.requests[0][2]["texts"]) == 9
    off = svc.search("key=value settings", None, rerank=False)
    assert "reranker" not in off and len(rerank_server.requests) == 1
    # The server goes away: searches still answer, in the first stage's order, and say why.
    rerank_server.status, rerank_server.body = 503, "loading model"
    degraded = svc.search("key=value settings", None)
    assert [r["file_path"] for r in degraded["results"]] == [r["file_path"] for r in off["results"]]
    assert "reranking skipped" in degraded["note"] and "HTTP 503" in degraded["note"]
    assert SECRET not in json.dumps(degraded)


def test_without_a_reranker_the_service_refuses_rerank_true(settings: Settings, indexed: Engine) -> None:
    svc = CodebaseService(settings, engine=indexed)
    with pytest.raises(InvalidInput, match="CODEBASE_RERANKER"):
        svc.search("settings", None, rerank=True)


MODEL_DIR = os.environ.get("EMBEDDING_TEST_MODEL_PATH", "")


@pytest.mark.skipif(
    not (MODEL_DIR and (Path(MODEL_DIR) / "model.safetensors").is_file()),
    reason="set EMBEDDING_TEST_MODEL_PATH (scripts/fetch_transformer_model) to run the transformer reranker",
)
def test_the_transformer_reranker_understands_a_paraphrase_the_words_miss() -> None:
    reranker = create_reranker(
        backend="transformer", url=None, model=None, api_key=None, model_path=MODEL_DIR, timeout_ms=1000
    )
    assert reranker is not None and reranker.name == "transformer:all-MiniLM-L6-v2"
    texts = [
        "util.py read_config\ndef read_config(path):\n    return json.load(open(path))",
        "units.py naturalsize\ndef naturalsize(value):\n    '''Format a number of bytes like 10 kB.'''",
    ]
    scores = reranker.scores("turn a file size into something people can read", texts)
    assert scores[1] > scores[0]
