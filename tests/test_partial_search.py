"""Searchable during the first index: the generation rule for reads (repositories.readable).

A repository never published is read at the generation its running first index writes, flagged
`partial` with the job's percent; once published, or once that job is no longer running, the
rule is the old one: the published generation answers, and a later run's rows stay invisible
until it publishes. Real embedded PostgreSQL, the shipped static embedder, no mocks.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from indexing import index_run
from pydantic import TypeAdapter
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidInput
from mcp_server.core.jobs import JobStore
from mcp_server.core.settings import Settings
from mcp_server.embeddings import StaticEmbedder
from mcp_server.frontends import tool_contract
from mcp_server.frontends.operations import CodebaseService
from mcp_server.index.navigation import Navigator
from mcp_server.index.search import Searcher
from mcp_server.index.store import ChunkRow, FileWrite, IndexStore, RunState, SymbolRow

pytestmark = pytest.mark.timeout(120)

PROJECT = "default"
ROOT = "/work/repo"

CHECKSUM = '''def zebra_checksum(record):
    """Compute the zebra checksum of a record."""
    return sum(record) % 251
'''
PARSER = '''def giraffe_parser(text):
    """Parse giraffe text into fields."""
    return text.split(",")
'''


def running_job(engine: Engine, *, fraction: float | None = 0.42, root: str = ROOT) -> uuid.UUID:
    jobs = JobStore(engine)
    job = jobs.create(repo_path=root, project_id=PROJECT)
    assert jobs.mark_running(job.id)
    if fraction is not None:
        assert jobs.update_progress(job.id, progress_fraction=fraction)
    return job.id


def write(
    engine: Engine, embedder: StaticEmbedder, files: dict[str, str], *, replaced: list[int] | None = None
) -> tuple[IndexStore, RunState]:
    """A run's batch: `files` written at the next generation of ROOT, one chunk and one definition
    each, committed but not published."""
    store = IndexStore(engine)
    store.check_project_model(
        PROJECT, model_id=embedder.model_id, dimension=embedder.dimension, allow_change=False
    )
    state = store.begin_run(project_id=PROJECT, root_path=ROOT)
    writes = []
    for path, content in files.items():
        name = content.split("(")[0].removeprefix("def ")
        end = content.count("\n")
        writes.append(
            FileWrite(
                path=path,
                language="python",
                content_hash=hashlib.blake2b(content.encode(), digest_size=16).digest(),
                size_bytes=len(content),
                chunks=[ChunkRow(1, end, name, "function", content)],
                symbols=[SymbolRow(name, name, None, "function", 1, end, content.splitlines()[0])],
                occurrences=[(name, [1])],
            )
        )
    vectors = embedder.embed_documents([w.chunks[0].content for w in writes])
    store.write_files(state, writes, np.asarray(vectors, dtype=np.float32), replaced_file_ids=replaced or [])
    return store, state


def paths(response: Any) -> list[str]:
    return [r.file_path for r in response.results]


# --- a first index in progress --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
def test_a_first_index_in_progress_answers_from_what_it_has_written(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder, mode: str
) -> None:
    running_job(clean_db, fraction=0.42)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    response = searcher.search("zebra checksum of a record", project_id=PROJECT, mode=mode)
    assert paths(response)[:1] == ["checksum.py"]
    assert response.partial is True
    assert response.index_percent == 42.0
    assert response.note is not None and "first index" in response.note and "still running" in response.note
    assert all(r.partial for r in response.results)


def test_a_partial_answer_grows_as_batches_are_written(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    running_job(clean_db)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    assert "parser.py" not in paths(searcher.search("giraffe parser", project_id=PROJECT, mode="lexical"))
    # The same run's next batch (the indexer keeps one RunState for the whole run).
    vectors = embedder.embed_documents([PARSER])
    store.write_files(
        state,
        [
            FileWrite(
                "parser.py",
                "python",
                b"p" * 16,
                len(PARSER),
                [ChunkRow(1, 3, "giraffe_parser", "function", PARSER)],
            )
        ],
        np.asarray(vectors, dtype=np.float32),
        replaced_file_ids=[],
    )
    assert paths(searcher.search("giraffe parser", project_id=PROJECT, mode="lexical"))[:1] == ["parser.py"]


def test_publishing_the_first_index_ends_the_partial_flag(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    job_id = running_job(clean_db)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    assert searcher.search("zebra checksum", project_id=PROJECT).partial
    store.publish(state, job_id=job_id, replace_project_model=None)
    # The job is still `running` until its runner records the end: published is what counts.
    response = searcher.search("zebra checksum", project_id=PROJECT)
    assert paths(response)[:1] == ["checksum.py"]
    assert (response.partial, response.index_percent, response.note) == (False, None, None)
    assert not any(r.partial for r in response.results)


def test_a_percent_not_known_yet_is_none_but_still_partial(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    running_job(clean_db, fraction=None)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    response = searcher.search("zebra checksum", project_id=PROJECT)
    assert response.partial and response.index_percent is None
    assert paths(response)[:1] == ["checksum.py"]


@pytest.mark.parametrize(
    "ending", ["failed", "cancelled", "completed without publishing", "no job", "pending"]
)
def test_rows_of_a_first_run_are_not_served_unless_its_job_is_running(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder, ending: str
) -> None:
    jobs = JobStore(clean_db)
    if ending == "pending":
        jobs.create(repo_path=ROOT, project_id=PROJECT)
    elif ending != "no job":
        job_id = running_job(clean_db)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    if ending == "failed":
        jobs.fail(job_id, "the indexer died")
    elif ending == "cancelled":
        jobs.cancel(job_id)
    elif ending == "completed without publishing":
        jobs.complete(job_id)
    response = searcher.search("zebra checksum", project_id=PROJECT)
    assert response.results == []
    assert response.partial is False
    assert response.note is not None and "finished indexing" in response.note


def test_a_job_of_another_project_or_repository_does_not_make_rows_readable(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    running_job(clean_db, root="/work/other")
    jobs = JobStore(clean_db)
    elsewhere = jobs.create(repo_path=ROOT, project_id="elsewhere")
    jobs.mark_running(elsewhere.id)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    assert searcher.search("zebra checksum", project_id=PROJECT).results == []


def test_the_service_and_its_schema_carry_the_flag(
    settings: Settings, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    running_job(clean_db, fraction=0.125)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    answer = CodebaseService(settings, engine=clean_db).search("zebra checksum", PROJECT)
    assert answer["partial"] is True and answer["index_percent"] == 12.5
    assert "still running" in answer["note"]
    assert answer["results"] and all(hit["partial"] is True for hit in answer["results"])

    schema = TypeAdapter(tool_contract.SearchResults).json_schema()
    assert {"partial", "index_percent"} <= set(schema["properties"])
    hit = schema["$defs"]["SearchHit"]["properties"]
    assert "partial" in hit


def test_word_statistics_of_a_partial_generation_are_not_cached(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    job_id = running_job(clean_db)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    searcher.search("zebra checksum", project_id=PROJECT, mode="lexical")
    # The retriever's cache outlives a search by minutes: nothing of the partial index may be in it.
    assert PROJECT not in searcher._retriever._stats
    store.publish(state, job_id=job_id, replace_project_model=None)
    searcher.search("zebra checksum", project_id=PROJECT, mode="lexical")
    assert PROJECT in searcher._retriever._stats


# --- later runs: the published generation answers until the next one publishes ---------------------


def test_a_second_run_in_progress_does_not_leak_into_results(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder
) -> None:
    first = running_job(clean_db)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    store.publish(state, job_id=first, replace_project_model=None)
    JobStore(clean_db).complete(first)

    second = running_job(clean_db, fraction=0.5)
    old_file = state_file_id(clean_db, "checksum.py")
    changed = CHECKSUM.replace("zebra", "okapi")
    store, state = write(
        clean_db, embedder, {"checksum.py": changed, "parser.py": PARSER}, replaced=[old_file]
    )
    assert state.generation == 2
    for query, expected in (
        ("zebra checksum", ["checksum.py"]),
        ("okapi", []),
        ("giraffe parser", []),
    ):
        response = searcher.search(query, project_id=PROJECT, mode="lexical")
        assert paths(response)[:1] == expected, query
        assert response.partial is False and "still running" not in (response.note or "")
        assert all("okapi" not in r.content for r in response.results)
    store.publish(state, job_id=second, replace_project_model=None)
    assert paths(searcher.search("okapi checksum", project_id=PROJECT, mode="lexical"))[:1] == ["checksum.py"]
    assert paths(searcher.search("giraffe parser", project_id=PROJECT, mode="lexical"))[:1] == ["parser.py"]


def state_file_id(engine: Engine, path: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT id FROM files WHERE path = :p"), {"p": path}).scalar_one())


# --- navigation follows the same rule --------------------------------------------------------------


def test_navigation_reads_a_first_index_in_progress_and_says_so(
    clean_db: Engine, embedder: StaticEmbedder
) -> None:
    job_id = running_job(clean_db, fraction=0.3)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    navigator = Navigator(clean_db)
    found = navigator.find_definition("zebra_checksum", project_id=PROJECT)
    assert [d["file_path"] for d in found["definitions"]] == ["checksum.py"]
    assert found["partial"] is True and found["index_percent"] == 30.0 and "still running" in found["note"]
    missing = navigator.find_definition("giraffe_parser", project_id=PROJECT)
    assert (
        missing["definitions"] == []
        and "no definition" in missing["note"]
        and "still running" in missing["note"]
    )
    references = navigator.find_references("zebra_checksum", project_id=PROJECT)
    assert [f["file_path"] for f in references["files"]] == ["checksum.py"] and references["partial"] is True
    outline = navigator.get_file_outline("checksum.py", project_id=PROJECT)
    assert outline["outline"][0]["name"] == "zebra_checksum" and outline["partial"] is True
    code = navigator.read_code("checksum.py", 1, 3, project_id=PROJECT)
    assert code["content"] == CHECKSUM and code["partial"] is True and "still running" in code["note"]

    store.publish(state, job_id=job_id, replace_project_model=None)
    for answer in (
        navigator.find_definition("zebra_checksum", project_id=PROJECT),
        navigator.find_references("zebra_checksum", project_id=PROJECT),
        navigator.get_file_outline("checksum.py", project_id=PROJECT),
        navigator.read_code("checksum.py", 1, 3, project_id=PROJECT),
    ):
        assert "partial" not in answer and "index_percent" not in answer
        assert not answer.get("note")


def test_navigation_does_not_see_a_second_run_or_a_failed_first_one(
    clean_db: Engine, embedder: StaticEmbedder
) -> None:
    navigator = Navigator(clean_db)
    failed = running_job(clean_db)
    write(clean_db, embedder, {"checksum.py": CHECKSUM})
    JobStore(clean_db).fail(failed, "killed")
    assert navigator.find_definition("zebra_checksum", project_id=PROJECT)["definitions"] == []
    with pytest.raises(InvalidInput, match="no indexed repository"):
        navigator.read_code("checksum.py", 1, 3, project_id=PROJECT)

    first = running_job(clean_db)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})  # the retry, same generation 1
    store.publish(state, job_id=first, replace_project_model=None)
    running_job(clean_db)
    write(clean_db, embedder, {"parser.py": PARSER})  # generation 2, not published
    assert navigator.find_definition("giraffe_parser", project_id=PROJECT)["definitions"] == []
    with pytest.raises(InvalidInput, match="not an indexed file"):
        navigator.read_code("parser.py", 1, 3, project_id=PROJECT)


# --- the real indexer -------------------------------------------------------------------------------


def test_a_real_first_index_answers_before_it_publishes_and_a_rerun_does_not(
    searcher: Searcher, clean_db: Engine, embedder: StaticEmbedder, make_repo: Any
) -> None:
    root: Path = make_repo({"checksum.py": CHECKSUM, "parser.py": PARSER})
    jobs = JobStore(clean_db)

    def index() -> tuple[Any, Any]:
        """(a search just before the run publishes, one just after)."""
        job = jobs.create(repo_path=str(root), project_id=PROJECT)
        jobs.mark_running(job.id)
        during: list[Any] = []

        def progress(counters: Any, message: str) -> bool:
            ok = jobs.update_progress(job.id, progress_fraction=counters.progress_fraction)
            # Every batch is written, nothing is published yet: the last moment of a partial index.
            if message.startswith("publishing") and not during:
                during.append(searcher.search("okapi zebra checksum", project_id=PROJECT, mode="lexical"))
            return ok

        index_run(clean_db, root, embedder, project_id=PROJECT, job_id=job.id, progress=progress).run()
        after = searcher.search("okapi zebra checksum", project_id=PROJECT, mode="lexical")
        jobs.complete(job.id)
        assert len(during) == 1, "the run never reported that it was publishing"
        return during[0], after

    during, after = index()
    assert paths(during)[:1] == ["checksum.py"] and during.partial and during.index_percent is not None
    assert paths(after)[:1] == ["checksum.py"] and not after.partial

    (root / "checksum.py").write_text(CHECKSUM.replace("zebra", "okapi"))
    during, after = index()
    assert not during.partial and "okapi" not in during.results[0].content  # generation 1 answers
    assert "okapi" in after.results[0].content


def test_the_command_line_shows_a_partial_answer(
    settings: Settings, clean_db: Engine, embedder: StaticEmbedder, capsys: pytest.CaptureFixture[str]
) -> None:
    from mcp_server.frontends import cli

    def search() -> str:
        # The command itself, without cli.main's logging set-up (it would keep capsys's stream).
        args = cli.build_parser().parse_args(["search", "zebra checksum", "--project", PROJECT])
        assert args.func(settings, args) == 0
        return capsys.readouterr().out

    job_id = running_job(clean_db, fraction=0.25)
    store, state = write(clean_db, embedder, {"checksum.py": CHECKSUM})
    shown = search()
    assert "partial" in shown and "25% done" in shown and "checksum.py" in shown
    store.publish(state, job_id=job_id, replace_project_model=None)
    shown = search()
    assert "partial" not in shown and "checksum.py" in shown
