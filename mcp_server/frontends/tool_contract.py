"""What each MCP tool promises a client: the shape of its result and its behaviour hints.

Results: each tool's `outputSchema` and `structuredContent`.

TypedDicts, not models: the service returns plain dictionaries (the CLI prints the same ones as
JSON), and FastMCP derives each tool's output schema from its return annotation, so annotating a
tool with one of these is all it takes for a client to get a schema it can validate against.
Extra keys are allowed by these schemas, so a new field is an additive change for clients.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from mcp.types import ToolAnnotations
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

JobState = Literal["pending", "running", "completed", "failed", "cancelled"]
_PARTIAL = "Read from a first index still running (index_percent done): the answer may be incomplete."


class JobStarted(TypedDict, total=False):
    """A job that start_indexing_background created, or the repository's job that was already active;
    with dry_run, what a run would index instead (and no job)."""

    job_id: Annotated[str, Field(description="Full job id (UUID) for get_indexing_status.")]
    status: JobState
    project_id: str
    message: str
    # dry_run=true only:
    dry_run: Annotated[bool, Field(description="True: nothing was started; the fields below describe a run.")]
    repository: str
    files_to_index: int
    bytes: int
    by_language: dict[str, int]
    skipped: Annotated[dict[str, int], Field(description="Files a run would skip, by reason.")]
    ignored_paths: int
    largest_directories: list[dict[str, Any]]
    estimated_chunks: int
    estimated_seconds: float
    embedding_backend: str


class ShardInfo(TypedDict):
    """One shard of a sharded run."""

    shard: int
    status: Annotated[str, Field(description="running or done")]
    attempts: int
    phase: str | None
    message: str | None
    files_seen: int
    files_total: int | None
    files_indexed: int
    chunks_created: int
    progress_fraction: float | None


class JobInfo(TypedDict):
    """One indexing job: its state, counters and progress."""

    job_id: str
    status: JobState
    repo_path: str
    project_id: str
    files_indexed: int
    chunks_created: int
    error_message: Annotated[str | None, Field(description="Why the job failed or was cancelled.")]
    created_at: Annotated[str | None, Field(description="ISO 8601 timestamps.")]
    started_at: str | None
    completed_at: str | None
    phase: Annotated[
        str | None,
        Field(
            description="queued, starting, cloning, scanning, parsing, embedding, writing, done, "
            "or the end state."
        ),
    ]
    progress_message: str | None
    files_seen: int
    files_total: Annotated[int | None, Field(description="Files to process; null until known.")]
    files_skipped: int
    percent: Annotated[
        float | None, Field(description="0-100 over every phase; null until the total is known.")
    ]
    eta_seconds: Annotated[float | None, Field(description="Estimated seconds left; null when unknown.")]
    force_reindex: bool
    shards: Annotated[int, Field(description="How many shards the run is split into (1: unsharded).")]
    shard_progress: NotRequired[
        Annotated[
            list[ShardInfo],
            Field(description="A sharded run's shards that have started: state, files and chunks of each."),
        ]
    ]
    last_synced_at: NotRequired[
        Annotated[str | None, Field(description="When the repository's index was last published.")]
    ]
    changes_pending: NotRequired[
        Annotated[
            bool | None, Field(description="A watcher knows of edits not yet indexed (null: not watched).")
        ]
    ]


class JobList(TypedDict):
    jobs: list[JobInfo]
    count: int


class JobCancelled(TypedDict):
    job_id: str
    status: JobState
    cancelled: Annotated[bool, Field(description="True when this call cancelled the job.")]
    new_index_published: NotRequired[
        Annotated[bool, Field(description="The run had already published its index before the cancel.")]
    ]
    message: str


class SearchHit(TypedDict):
    """One result: a region of a file."""

    file_path: Annotated[str, Field(description="Path relative to the repository root.")]
    repository: Annotated[str, Field(description="The repository's root path (or git URL).")]
    start_line: int
    end_line: int
    language: str | None
    symbol: Annotated[str | None, Field(description="Function, class or section name, when there is one.")]
    kind: str
    content: str
    score: float
    context_before: str
    context_after: str
    content_truncated: Annotated[bool, Field(description="content holds only the first lines.")]
    partial: NotRequired[
        Annotated[bool, Field(description="From a repository whose first index is still running.")]
    ]
    last_synced_at: NotRequired[str | None]
    changes_pending: NotRequired[bool | None]


class SearchResults(TypedDict):
    results: list[SearchHit]
    total_count: int
    project_id: str
    mode: Literal["hybrid", "semantic", "lexical"]
    latency_ms: float
    truncated: Annotated[bool, Field(description="max_chars shortened or dropped results.")]
    note: NotRequired[
        Annotated[
            str, Field(description="Why an empty result is empty, or that a first index is still running.")
        ]
    ]
    partial: NotRequired[
        Annotated[
            bool,
            Field(
                description="True while a repository's first index is still running: the results come "
                "from the files indexed so far and are incomplete. Absent otherwise."
            ),
        ]
    ]
    index_percent: NotRequired[
        Annotated[float | None, Field(description="With partial: how far that first index is, 0-100.")]
    ]
    reranker: NotRequired[
        Annotated[
            str, Field(description="The reranker that ordered the best candidates; absent when none did.")
        ]
    ]
    rerank_ms: NotRequired[Annotated[float, Field(description="With reranker: the milliseconds it took.")]]


class Definitions(TypedDict):
    symbol: str
    definitions: Annotated[
        list[dict[str, Any]],
        Field(
            description="Best first: file_path, repository, start_line, end_line, kind, signature, content."
        ),
    ]
    total_count: int
    note: str | None
    partial: NotRequired[Annotated[bool, Field(description=_PARTIAL)]]
    index_percent: NotRequired[float | None]


class References(TypedDict):
    symbol: str
    matched_by: Literal["name"]
    files: Annotated[
        list[dict[str, Any]], Field(description="Per file: its lines using the name, with enclosing symbol.")
    ]
    total_count: int
    truncated: bool
    note: str | None
    partial: NotRequired[Annotated[bool, Field(description=_PARTIAL)]]
    index_percent: NotRequired[float | None]


class FileOutline(TypedDict):
    file_path: str
    repository: str
    language: str | None
    outline: Annotated[list[dict[str, Any]], Field(description="Definitions as a tree (children nested).")]
    partial: NotRequired[Annotated[bool, Field(description=_PARTIAL)]]
    index_percent: NotRequired[float | None]
    note: NotRequired[str]


class CodeLines(TypedDict):
    file_path: str
    repository: str
    language: str | None
    start_line: int
    end_line: int
    total_lines: int
    content: str
    content_truncated: bool
    content_hash: Annotated[str, Field(description="blake2b-128 of the file as indexed.")]
    partial: NotRequired[Annotated[bool, Field(description=_PARTIAL)]]
    index_percent: NotRequired[float | None]
    note: NotRequired[str]


class RepositoryInfo(TypedDict):
    project_id: str
    name: str
    repository: Annotated[str, Field(description="The repository's root path (or git URL).")]
    files: int
    chunks: int
    size_bytes: Annotated[int, Field(description="Bytes of the indexed files.")]
    languages: Annotated[dict[str, int], Field(description="Files per language, most first.")]
    embedding_model: str | None
    last_synced_at: str | None
    changes_pending: bool | None
    watched: bool
    watch_error: str | None


class RepositoryList(TypedDict):
    repositories: list[RepositoryInfo]
    count: int


class RepositoryDeleted(TypedDict):
    deleted: bool
    repository: str
    project_id: str


# --- behaviour hints (MCP ToolAnnotations) -------------------------------------------------------
# Every tool works on this server's own job table and index only: none reaches an open world of
# external entities (openWorldHint false). The index is derived data, rebuilt from the repository,
# so replacing a repository's index generation is not a destructive update; stopping a job's run is.

READS = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
STARTS_JOB = ToolAnnotations(
    title="Index a repository",
    read_only_hint=False,
    destructive_hint=False,
    # A repeated call returns the active job; after it ends, a new run of an unchanged repository
    # changes nothing.
    idempotent_hint=True,
    open_world_hint=False,
)
CANCELS_JOB = ToolAnnotations(
    title="Cancel an indexing job",
    read_only_hint=False,
    destructive_hint=True,  # the run's work so far is thrown away
    idempotent_hint=True,  # cancelling a cancelled job changes nothing
    open_world_hint=False,
)


DELETES_REPOSITORY = ToolAnnotations(
    title="Delete an indexed repository",
    read_only_hint=False,
    destructive_hint=True,  # its index is gone until the repository is indexed again
    idempotent_hint=True,  # deleting it again changes nothing (the call says it is not indexed)
    open_world_hint=False,
)


def reads(title: str) -> ToolAnnotations:
    return READS.model_copy(update={"title": title})
