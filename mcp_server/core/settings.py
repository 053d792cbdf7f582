"""Settings read from the environment (pydantic-settings), grouped by the component that reads them.

Each group is its own model and reads only its own variables, so a process loads just the groups it
uses (`load_settings(DatabaseSettings, IndexingSettings, ...)`): a bad HTTP port cannot stop an
indexer pod. Groups a process did not ask for hold their defaults and are never read by it.

Each field names its environment variable explicitly (`validation_alias`), so a validation error
names the variable a person has to fix, and `load_settings()` turns pydantic's errors into one
ConfigurationError listing all of them. The field docstrings are the documentation: `.env.example`,
the README's configuration table and the chart's ConfigMap are generated from this module by
`scripts/generate_settings_docs.py` (a test fails when they drift).

Why one module of this size: it is the single declaration of every variable, and splitting it per
group would scatter what a person reads as one reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_server.core.errors import ConfigurationError

DEFAULT_PROJECT_ID = "default"
# A Kubernetes resource quantity (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _default_home() -> Path:
    return Path("~/.local/share/codebase-mcp").expanduser()


def _chart(expression: str) -> dict[str, Any]:
    """The Helm expression that sets a variable in the chart's ConfigMap (see the generator)."""
    return {"chart": expression}


class _Group(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None,
        extra="ignore",
        case_sensitive=False,
        env_ignore_empty=True,
        use_attribute_docstrings=True,
    )


class DatabaseSettings(_Group):
    """Where the data lives: every process."""

    url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    """PostgreSQL with pgvector, e.g. postgresql://user:password@db:5432/codebase; unset: an embedded
    PostgreSQL 18 in $CODEBASE_MCP_HOME/pgdata.
    """

    home: Path = Field(default_factory=_default_home, validation_alias="CODEBASE_MCP_HOME")
    """Where the embedded database, job logs and state live."""

    linger_seconds: int = Field(
        default=600, ge=0, le=7 * 24 * 3600, validation_alias="CODEBASE_LINGER_SECONDS"
    )
    """The embedded PostgreSQL and the CLI's helper process keep running this long after their last
    use, so the next command answers at once (0: stop with the last user; `codebase-mcp db stop`
    stops both now).
    """

    @field_validator("home")
    @classmethod
    def _home_absolute(cls, value: Path) -> Path:
        value = value.expanduser()
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @property
    def pgdata_dir(self) -> Path:
        return self.home / "pgdata"

    @property
    def runs_dir(self) -> Path:
        """Per-job log and termination-message files of the local launcher."""
        return self.home / "runs"

    @property
    def git_dir(self) -> Path:
        """The cache of git sources: one bare repository per URL (indexer.git_cache)."""
        return self.home / "git"


class JobSettings(_Group):
    """How jobs are admitted and run: the MCP server, the CLI, the supervisor and the operator."""

    launcher: Literal["local", "kubernetes"] = Field(
        default="local", validation_alias="CODEBASE_LAUNCHER", json_schema_extra=_chart("kubernetes")
    )
    """How indexing jobs run: local (subprocesses on this machine) or kubernetes (IndexingRequests turned
    into Jobs by the operator).
    """

    max_concurrent: int = Field(
        default=2,
        ge=1,
        le=64,
        validation_alias="MAX_CONCURRENT_INDEXING_JOBS",
        json_schema_extra=_chart(".Values.indexer.maxConcurrentJobs | quote"),
    )
    """At most this many jobs run at once; the rest wait as pending, in creation order."""

    timeout_seconds: int = Field(
        default=3600,
        ge=1,
        le=7 * 24 * 3600,
        validation_alias="INDEXING_JOB_TIMEOUT_SECONDS",
        json_schema_extra=_chart(".Values.indexer.jobTimeoutSeconds | quote"),
    )
    """A job running longer than this is stopped and marked failed."""

    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_ALLOWED_ROOTS"
    )
    """Directories (separated by ':' or ','); when set, repositories outside them are refused. Unset:
    /, system directories and $HOME itself are refused."""

    heartbeat_timeout_seconds: int = Field(
        default=60, ge=5, le=3600, validation_alias="CODEBASE_HEARTBEAT_TIMEOUT_SECONDS"
    )
    """A running local job whose supervisor has not written a heartbeat for this long is marked failed."""

    history_days: int = Field(default=30, ge=1, le=3650, validation_alias="CODEBASE_JOB_HISTORY_DAYS")
    """Finished jobs older than this many days are deleted (the index they built stays)."""

    history_max: int = Field(default=1000, ge=10, le=1_000_000, validation_alias="CODEBASE_JOB_HISTORY_MAX")
    """At most this many finished jobs are kept; older ones are deleted first."""

    watch: bool = Field(default=False, validation_alias="CODEBASE_WATCH")
    """`serve` keeps every local repository it has indexed fresh by following file-system events
    (like `serve --watch`)."""

    watch_check_seconds: float = Field(
        default=300.0, ge=1, le=24 * 3600, validation_alias="CODEBASE_WATCH_CHECK_SECONDS"
    )
    """A watched repository is also checked whole this often, in case events were lost."""

    shard_parallelism: int = Field(
        default=0,
        ge=0,
        le=64,
        validation_alias="CODEBASE_SHARD_PARALLELISM",
        json_schema_extra=_chart(".Values.indexer.shardParallelism | quote"),
    )
    """At most this many shards of one sharded run index at once (a Kubernetes Indexed Job's
    parallelism, the local launcher's processes); 0: one per CPU core here, all of them on a cluster."""

    files_per_shard: int = Field(
        default=20_000, ge=100, le=10_000_000, validation_alias="CODEBASE_FILES_PER_SHARD"
    )
    """`shards: auto` splits a run into one shard per this many files (counted before the run)."""

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(",", os.pathsep).split(os.pathsep)]
            return [p for p in parts if p]
        return value

    @field_validator("allowed_roots")
    @classmethod
    def _roots_absolute(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.is_absolute():
                raise ValueError(f"every allowed root must be an absolute path, got {str(root)!r}")
        return [Path(os.path.normpath(root)) for root in value]


class IndexingSettings(_Group):
    """What the indexer reads and how it cuts files: the indexer."""

    max_file_bytes: int = Field(
        default=1_000_000,
        ge=1_000,
        le=100_000_000,
        validation_alias="CODEBASE_MAX_FILE_BYTES",
        json_schema_extra=_chart(".Values.indexer.maxFileBytes | int64 | quote"),
    )
    """Files larger than this (bytes) are skipped without being read."""

    extra_ignores: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_EXTRA_IGNORES"
    )
    """Extra gitignore lines, separated by ',', that win over .gitignore and the defaults, e.g.
    `fixtures/,!build/`."""

    @field_validator("extra_ignores", mode="before")
    @classmethod
    def _split_ignores(cls, value: object) -> object:
        if isinstance(value, str):
            return [line.strip() for line in value.split(",") if line.strip()]
        return value

    index_secrets_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_INDEX_SECRETS_ROOTS"
    )
    """Repositories under these directories (':' or ','-separated) are indexed without the secret
    filter (secret files by name and content, token redaction); the opt-in is the user's setting,
    never a repository file."""

    @field_validator("index_secrets_roots", mode="before")
    @classmethod
    def _split_secret_roots(cls, value: object) -> object:
        return JobSettings._split_roots(value)

    @field_validator("index_secrets_roots")
    @classmethod
    def _secret_roots_absolute(cls, value: list[Path]) -> list[Path]:
        return JobSettings._roots_absolute(value)

    min_free_disk_mb: int = Field(
        default=100, ge=0, le=1_000_000, validation_alias="CODEBASE_MIN_FREE_DISK_MB"
    )
    """An index run into the embedded database stops with a clear error when less than this many
    megabytes are free on its disk, before PostgreSQL itself runs out (0: no check)."""

    chunk_pack_lines: int = Field(default=40, ge=0, le=80, validation_alias="CODEBASE_CHUNK_PACK_LINES")
    """Neighbouring small definitions are packed into chunks of up to this many lines (0: never pack)."""

    workers: int = Field(
        default=0,
        ge=0,
        le=256,
        validation_alias="CODEBASE_INDEXER_WORKERS",
        json_schema_extra=_chart(".Values.indexer.workers | quote"),
    )
    """Worker processes for reading and parsing files; 0: one per CPU core (at most 8)."""

    vector_build_memory_mb: int = Field(
        default=0,
        ge=0,
        le=1_048_576,
        validation_alias="CODEBASE_VECTOR_BUILD_MEMORY_MB",
        json_schema_extra=_chart(".Values.indexer.vectorBuildMemoryMB | quote"),
    )
    """At most this much memory (MB, the session's maintenance_work_mem) for building a project's
    vector index after a full run; each build asks for its graph's estimated size up to this. The
    parallel build holds it in the database server's /dev/shm. 0: a quarter of this machine's
    memory for the embedded database, 512 for a database server elsewhere."""

    vector_build_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        validation_alias="CODEBASE_VECTOR_BUILD_WORKERS",
        json_schema_extra=_chart(".Values.indexer.vectorBuildWorkers | quote"),
    )
    """Parallel workers of the vector index build (max_parallel_maintenance_workers). 0: this
    machine's cores less one (2 to 8) for the embedded database, 2 for a database server elsewhere."""


class GitSettings(_Group):
    """Git sources cloned on this machine, their credentials and cache: the indexer (Kubernetes Jobs
    take their credentials from source.git.secretRef instead)."""

    token: SecretStr | None = Field(default=None, validation_alias="CODEBASE_GIT_TOKEN")
    """A token git gets (as the password, through GIT_ASKPASS) for https sources on the hosts in
    CODEBASE_GIT_TOKEN_HOSTS; never put in a URL, a job row or a log."""

    username: str = Field(
        default="x-access-token", min_length=1, max_length=200, validation_alias="CODEBASE_GIT_USERNAME"
    )
    """The user name sent with CODEBASE_GIT_TOKEN (GitHub takes any; GitLab wants oauth2)."""

    token_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_GIT_TOKEN_HOSTS"
    )
    """Hosts (separated by ',') CODEBASE_GIT_TOKEN may be sent to, e.g. `github.com`; required with the
    token, so that a URL an assistant chose cannot carry it elsewhere."""

    cache_max_mb: int = Field(
        default=10_240, ge=0, le=10_000_000, validation_alias="CODEBASE_GIT_CACHE_MAX_MB"
    )
    """The cache of git sources ($CODEBASE_MCP_HOME/git) is trimmed to this many megabytes after each
    git run, least recently used repositories first (0: never trimmed)."""

    @field_validator("token_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @model_validator(mode="after")
    def _token_needs_hosts(self) -> GitSettings:
        if self.token is not None and not self.token_hosts:
            raise ValueError(
                "CODEBASE_GIT_TOKEN is set but CODEBASE_GIT_TOKEN_HOSTS is empty: list the hosts "
                "the token may be sent to (e.g. github.com)"
            )
        return self


class EmbeddingSettings(_Group):
    """The embedding model: the same one for code (the indexer) and queries (the server)."""

    backend: Literal["static", "transformer", "ollama", "openai"] = Field(
        default="static",
        validation_alias="EMBEDDING_BACKEND",
        json_schema_extra=_chart(".Values.embedding.backend | quote"),
    )
    """static (shipped, offline, fast on CPU), transformer (all-MiniLM-L6-v2 from EMBEDDING_MODEL_PATH),
    ollama or openai (any OpenAI-compatible endpoint).
    """

    model: str | None = Field(
        default=None,
        validation_alias="EMBEDDING_MODEL",
        json_schema_extra=_chart(".Values.embedding.model | quote"),
    )
    """Model name for ollama/openai, e.g. nomic-embed-text or text-embedding-3-small."""

    url: str | None = Field(
        default=None,
        validation_alias="EMBEDDING_URL",
        json_schema_extra=_chart(".Values.embedding.url | quote"),
    )
    """Base URL of the embedding server, e.g. http://localhost:11434 (Ollama) or https://api.openai.com."""

    api_key: SecretStr | None = Field(default=None, validation_alias="EMBEDDING_API_KEY")
    """Bearer token for OpenAI-compatible servers; never logged (the chart takes it from a Secret)."""

    dimension: int | None = Field(
        default=None,
        ge=8,
        le=8192,
        validation_alias="EMBEDDING_DIMENSION",
        json_schema_extra=_chart('.Values.embedding.dimension | default "" | quote'),
    )
    """Vector dimension of the HTTP model; discovered with one request when unset."""

    batch_size: int = Field(
        default=64,
        ge=1,
        le=4096,
        validation_alias="EMBEDDING_BATCH_SIZE",
        json_schema_extra=_chart(".Values.embedding.batchSize | quote"),
    )
    """Texts per embedding request."""

    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        validation_alias="EMBEDDING_TIMEOUT_SECONDS",
        json_schema_extra=_chart(".Values.embedding.timeoutSeconds | quote"),
    )
    """Seconds before an embedding request is abandoned (it is retried a few times)."""

    model_path: str | None = Field(default=None, validation_alias="EMBEDDING_MODEL_PATH")
    """Directory with model.safetensors and tokenizer.json for EMBEDDING_BACKEND=transformer."""


class SearchSettings(_Group):
    """How searches run: the MCP server and the CLI."""

    timeout_ms: int = Field(default=5000, ge=100, le=600_000, validation_alias="CODEBASE_SEARCH_TIMEOUT_MS")
    """Every statement of a search is stopped past this many milliseconds (PostgreSQL
    statement_timeout); the caller is told to narrow the query."""

    reranker: Literal["none", "transformer", "tei", "cohere"] = Field(
        default="none",
        validation_alias="CODEBASE_RERANKER",
        json_schema_extra=_chart(".Values.server.rerank.backend | quote"),
    )
    """Opt-in second stage that re-orders each search's best candidates: transformer
    (all-MiniLM-L6-v2 in numpy, from CODEBASE_RERANK_MODEL_PATH), tei (a text-embeddings-inference
    /rerank endpoint) or cohere (the /v1/rerank shape of Cohere, Jina, vLLM, llama.cpp)."""

    rerank_url: str | None = Field(
        default=None,
        validation_alias="CODEBASE_RERANK_URL",
        json_schema_extra=_chart(".Values.server.rerank.url | quote"),
    )
    """Base URL of the rerank server for CODEBASE_RERANKER=tei or cohere."""

    rerank_model: str | None = Field(
        default=None,
        validation_alias="CODEBASE_RERANK_MODEL",
        json_schema_extra=_chart(".Values.server.rerank.model | quote"),
    )
    """Model name sent to a cohere-style rerank endpoint, e.g. rerank-v3.5 or bge-reranker-v2-m3."""

    rerank_api_key: SecretStr | None = Field(default=None, validation_alias="CODEBASE_RERANK_API_KEY")
    """Bearer token for the rerank server; never logged (the chart takes it from
    embedding.existingSecret)."""

    rerank_model_path: str | None = Field(default=None, validation_alias="CODEBASE_RERANK_MODEL_PATH")
    """Directory with model.safetensors and tokenizer.json for CODEBASE_RERANKER=transformer
    (`codebase-mcp models fetch transformer` prints one)."""

    rerank_candidates: int = Field(
        default=20,
        ge=2,
        le=200,
        validation_alias="CODEBASE_RERANK_CANDIDATES",
        json_schema_extra=_chart(".Values.server.rerank.candidates | quote"),
    )
    """How many of the first stage's best chunks the reranker reads per search."""

    rerank_timeout_ms: int = Field(
        default=3000,
        ge=50,
        le=60_000,
        validation_alias="CODEBASE_RERANK_TIMEOUT_MS",
        json_schema_extra=_chart(".Values.server.rerank.timeoutMs | quote"),
    )
    """The reranker's time per search: a rerank server slower than this is skipped for that search
    (the first stage's order stands); the `transformer` reranker scores the candidates it reached
    in this time, best first, and leaves the rest in their places."""


class HttpSettings(_Group):
    """The MCP server's streamable HTTP transport."""

    host: str = Field(default="127.0.0.1", validation_alias="CODEBASE_MCP_HTTP_HOST")
    """Bind address of `codebase-mcp serve --transport http`; anything but loopback requires
    CODEBASE_MCP_AUTH_TOKEN.
    """

    port: int = Field(default=8000, ge=1, le=65535, validation_alias="CODEBASE_MCP_HTTP_PORT")
    """Port of the HTTP transport."""

    auth_token: SecretStr | None = Field(default=None, validation_alias="CODEBASE_MCP_AUTH_TOKEN")
    """Shared bearer token required from HTTP clients (Authorization: Bearer <token>); at least 32
    bytes off loopback."""

    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="CODEBASE_MCP_ALLOWED_HOSTS",
        json_schema_extra=_chart('include "codebase-mcp.allowedHosts" . | quote'),
    )
    """Host names besides loopback (','-separated; `*.example.com` patterns work) the HTTP transport
    answers to, e.g. the Service name behind a proxy; anything else gets 421 (DNS-rebinding
    protection)."""

    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        validation_alias="CODEBASE_MCP_ALLOWED_ORIGINS",
        json_schema_extra=_chart('.Values.server.allowedOrigins | join "," | quote'),
    )
    """Browser origins besides loopback ones (','-separated) allowed to call the HTTP transport;
    others get 403."""

    max_sessions_per_client: int = Field(
        default=32, ge=1, le=10_000, validation_alias="CODEBASE_MCP_MAX_SESSIONS_PER_CLIENT"
    )
    """Open HTTP sessions per client address; one more closes that client's least recently used."""

    session_idle_seconds: float = Field(
        default=900.0, ge=1, le=24 * 3600, validation_alias="CODEBASE_MCP_SESSION_IDLE_SECONDS"
    )
    """An HTTP session with no request for this long is closed."""

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


class KubernetesSettings(_Group):
    """The cluster: the Kubernetes launcher (namespace) and the indexer Jobs the operator creates."""

    namespace: str = Field(default="default", validation_alias="CODEBASE_K8S_NAMESPACE")
    """Namespace where the MCP server creates IndexingRequests and the operator watches."""

    indexer_image: str = Field(
        default="codebase-mcp:0.1.0",
        min_length=1,
        max_length=512,
        validation_alias="INDEXER_IMAGE",
        json_schema_extra=_chart(
            'include "codebase-mcp.image" (dict "ctx" $ "repository" '
            ".Values.indexer.image.repository) | quote"
        ),
    )
    """Image of the indexer container (it runs `codebase-mcp indexer run --job-id ID`)."""

    indexer_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent",
        validation_alias="INDEXER_IMAGE_PULL_POLICY",
        json_schema_extra=_chart(".Values.image.pullPolicy | quote"),
    )
    """Always, IfNotPresent or Never."""

    indexer_service_account: str = Field(
        default="codebase-mcp-indexer",
        min_length=1,
        max_length=253,
        validation_alias="INDEXER_SERVICE_ACCOUNT",
        json_schema_extra=_chart(
            'include "codebase-mcp.serviceAccountName" (dict "ctx" $ "component" "indexer") | quote'
        ),
    )
    """ServiceAccount of the indexer pods (it needs no permissions; its token is not mounted)."""

    indexer_cpu_request: str = Field(
        default="250m",
        validation_alias="INDEXER_CPU_REQUEST",
        json_schema_extra=_chart(".Values.indexer.resources.requests.cpu | quote"),
    )
    """CPU request of the indexer container (a Kubernetes quantity)."""

    indexer_cpu_limit: str = Field(
        default="2",
        validation_alias="INDEXER_CPU_LIMIT",
        json_schema_extra=_chart(".Values.indexer.resources.limits.cpu | quote"),
    )
    """CPU limit of the indexer container."""

    indexer_memory_request: str = Field(
        default="512Mi",
        validation_alias="INDEXER_MEMORY_REQUEST",
        json_schema_extra=_chart(".Values.indexer.resources.requests.memory | quote"),
    )
    """Memory request of the indexer container."""

    indexer_memory_limit: str = Field(
        default="2Gi",
        validation_alias="INDEXER_MEMORY_LIMIT",
        json_schema_extra=_chart(".Values.indexer.resources.limits.memory | quote"),
    )
    """Memory limit of the indexer container; a pod over it ends failed as out of memory."""

    indexer_gpu_count: int = Field(
        default=0,
        ge=0,
        le=16,
        validation_alias="INDEXER_GPU_COUNT",
        json_schema_extra=_chart("ternary .Values.indexer.gpu.count 0 .Values.indexer.gpu.enabled | quote"),
    )
    """Accelerators requested by each indexer pod (a custom embedding image may use them); 0: none."""

    indexer_gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$",
        validation_alias="INDEXER_GPU_RESOURCE_NAME",
        json_schema_extra=_chart(".Values.indexer.gpu.resourceName | quote"),
    )
    """Extended resource name of that accelerator."""

    indexer_node_selector: dict[str, str] = Field(
        default_factory=dict,
        validation_alias="INDEXER_NODE_SELECTOR",
        json_schema_extra=_chart(".Values.indexer.nodeSelector | toJson | quote"),
    )
    """Node selector of indexer pods, as JSON, e.g. {"disktype": "ssd"}."""

    kueue_queue_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$",
        validation_alias="KUEUE_QUEUE_NAME",
        json_schema_extra=_chart(".Values.indexer.kueue.queueName | quote"),
    )
    """Kueue LocalQueue for indexer Jobs (an IndexingRequest's spec.queueName overrides it): the Job is
    created suspended with the kueue.x-k8s.io/queue-name label and Kueue admits it; such Jobs do not
    count against MAX_CONCURRENT_INDEXING_JOBS. Unset: no Kueue."""

    indexer_priority_class_name: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$",
        validation_alias="INDEXER_PRIORITY_CLASS_NAME",
        json_schema_extra=_chart(".Values.indexer.priorityClassName | quote"),
    )
    """PriorityClass of indexer pods (an IndexingRequest's spec.priorityClassName overrides it)."""

    indexer_tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        validation_alias="INDEXER_TOLERATIONS",
        json_schema_extra=_chart(".Values.indexer.tolerations | toJson | quote"),
    )
    """Tolerations of indexer pods, as a JSON list."""

    indexer_pod_security_context: dict[str, Any] = Field(
        default_factory=lambda: {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        validation_alias="INDEXER_POD_SECURITY_CONTEXT",
        json_schema_extra=_chart(".Values.podSecurityContext | toJson | quote"),
    )
    """The indexer pods' securityContext, as JSON (the chart's podSecurityContext; on OpenShift leave the
    user and group ids out so the namespace's assigned range applies). runAsNonRoot is always set.
    """

    indexer_env_secret_name: str | None = Field(
        default=None,
        validation_alias="INDEXER_ENV_SECRET_NAME",
        json_schema_extra=_chart(".Values.embedding.existingSecret | quote"),
    )
    """Optional Secret whose keys become the indexer's environment (e.g. EMBEDDING_API_KEY)."""

    database_url_secret_name: str = Field(
        default="codebase-mcp-database",
        min_length=1,
        validation_alias="DATABASE_URL_SECRET_NAME",
        json_schema_extra=_chart('include "codebase-mcp.databaseSecretName" . | quote'),
    )
    """The Secret holding DATABASE_URL for the indexer pods (the URL never appears in a manifest)."""

    database_url_secret_key: str = Field(
        default="url",
        min_length=1,
        validation_alias="DATABASE_URL_SECRET_KEY",
        json_schema_extra=_chart('include "codebase-mcp.databaseSecretKey" . | quote'),
    )
    """The key of DATABASE_URL in that Secret."""

    workspace_pvc_name: str | None = Field(
        default=None,
        validation_alias="WORKSPACE_PVC_NAME",
        json_schema_extra=_chart(".Values.workspace.existingClaim | quote"),
    )
    """PersistentVolumeClaim shared by the MCP server and the indexer pods; `source.path` requests must lie
    under WORKSPACE_MOUNT_PATH.
    """

    workspace_mount_path: str = Field(
        default="/workspace",
        validation_alias="WORKSPACE_MOUNT_PATH",
        json_schema_extra=_chart(".Values.workspace.mountPath | quote"),
    )
    """Where that claim is mounted (read-only in the indexer)."""

    pod_pending_timeout_seconds: int = Field(
        default=300,
        ge=1,
        le=24 * 3600,
        validation_alias="POD_PENDING_TIMEOUT_SECONDS",
        json_schema_extra=_chart(".Values.indexer.podPendingTimeoutSeconds | quote"),
    )
    """An indexer pod still Pending after this long (image pull errors, unschedulable) fails its job."""

    job_ttl_seconds_after_finished: int = Field(
        default=3600,
        ge=0,
        le=30 * 24 * 3600,
        validation_alias="JOB_TTL_SECONDS_AFTER_FINISHED",
        json_schema_extra=_chart(".Values.indexer.jobTtlSecondsAfterFinished | quote"),
    )
    """Finished Jobs (and their pods) are deleted this long after they finish."""

    @field_validator(
        "indexer_cpu_request", "indexer_cpu_limit", "indexer_memory_request", "indexer_memory_limit"
    )
    @classmethod
    def _kubernetes_quantity(cls, value: str) -> str:
        if not _QUANTITY_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a Kubernetes quantity such as 500m, 2, 512Mi or 2Gi")
        return value

    @field_validator("workspace_mount_path")
    @classmethod
    def _mount_path_absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/") or value.rstrip("/") in ("", "/tmp"):
            raise ValueError(f"must be an absolute path other than / and /tmp, got {value!r}")
        return os.path.normpath(value)


class OperatorSettings(_Group):
    """The kopf operator's own endpoints and loop."""

    metrics_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        validation_alias="OPERATOR_METRICS_PORT",
        json_schema_extra=_chart(".Values.operator.metricsPort | quote"),
    )
    """Port of the operator's Prometheus metrics; 0 turns it off."""

    health_port: int = Field(
        default=8081,
        ge=0,
        le=65535,
        validation_alias="OPERATOR_HEALTH_PORT",
        json_schema_extra=_chart(".Values.operator.healthPort | quote"),
    )
    """Port of the operator's liveness endpoint (/healthz); 0 turns it off."""

    resync_seconds: float = Field(
        default=10.0,
        ge=0.2,
        le=3600,
        validation_alias="OPERATOR_RESYNC_SECONDS",
        json_schema_extra=_chart(".Values.operator.resyncSeconds | quote"),
    )
    """How often the operator re-reads IndexingRequests, Jobs and pods (from kopf's watch-fed indices, not
    LIST requests) and converges, whatever the events said.
    """

    leader_election: bool = Field(default=True, validation_alias="OPERATOR_LEADER_ELECTION")
    """Only the replica holding the Lease OPERATOR_LEASE_NAME acts; the others stand by (false: every replica
    acts, safe only with exactly one).
    """

    lease_name: str = Field(
        default="codebase-mcp-operator",
        pattern=r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$",
        validation_alias="OPERATOR_LEASE_NAME",
    )
    """The coordination.k8s.io Lease the operator replicas elect their leader with (watched namespace)."""

    lease_seconds: float = Field(default=15.0, ge=2, le=600, validation_alias="OPERATOR_LEASE_SECONDS")
    """A leader that has not renewed the Lease for this long is replaced; it stops acting after two thirds
    of it.
    """


class LoggingSettings(_Group):
    """Logs of every process (they go to stderr)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO",
        validation_alias="CODEBASE_MCP_LOG_LEVEL",
        json_schema_extra=_chart(".Values.logLevel | quote"),
    )
    """DEBUG, INFO, WARNING or ERROR."""

    format: Literal["text", "json"] = Field(default="text", validation_alias="CODEBASE_MCP_LOG_FORMAT")
    """text, or json: one JSON object per line with time, level, logger, message and, in indexers
    and supervisors, job_id and project_id (the operator always logs JSON).
    """


GROUPS: dict[str, type[_Group]] = {
    "database": DatabaseSettings,
    "jobs": JobSettings,
    "indexing": IndexingSettings,
    "git": GitSettings,
    "embedding": EmbeddingSettings,
    "search": SearchSettings,
    "http": HttpSettings,
    "kubernetes": KubernetesSettings,
    "operator": OperatorSettings,
    "logging": LoggingSettings,
}


class Settings(BaseModel):
    """One process's settings: the groups it loaded from the environment, defaults for the rest."""

    model_config = ConfigDict(frozen=True)

    database: DatabaseSettings = Field(default_factory=lambda: DatabaseSettings.model_construct())
    jobs: JobSettings = Field(default_factory=lambda: JobSettings.model_construct())
    indexing: IndexingSettings = Field(default_factory=lambda: IndexingSettings.model_construct())
    git: GitSettings = Field(default_factory=lambda: GitSettings.model_construct())
    embedding: EmbeddingSettings = Field(default_factory=lambda: EmbeddingSettings.model_construct())
    search: SearchSettings = Field(default_factory=lambda: SearchSettings.model_construct())
    http: HttpSettings = Field(default_factory=lambda: HttpSettings.model_construct())
    kubernetes: KubernetesSettings = Field(default_factory=lambda: KubernetesSettings.model_construct())
    operator: OperatorSettings = Field(default_factory=lambda: OperatorSettings.model_construct())
    logging: LoggingSettings = Field(default_factory=lambda: LoggingSettings.model_construct())

    def replace(self, **groups: dict[str, Any]) -> Settings:
        """A copy with some fields of some groups changed: `replace(jobs={"max_concurrent": 3})`."""
        return self.model_copy(
            update={name: getattr(self, name).model_copy(update=fields) for name, fields in groups.items()}
        )


def load_settings(*groups: type[_Group], overrides: Mapping[str, object] | None = None) -> Settings:
    """Read the given groups (all when none is given) from the environment.

    `overrides` maps variable names to values that win over the environment (tests, and callers
    that build a child process's settings). A bad value raises ConfigurationError naming each
    variable at fault.
    """
    wanted = groups or tuple(GROUPS.values())
    loaded: dict[str, _Group] = {}
    problems: list[str] = []
    for name, group in GROUPS.items():
        if group not in wanted:
            continue
        try:
            loaded[name] = group(**dict(overrides or {}))
        except ValidationError as exc:
            for error in exc.errors():
                variable = ".".join(str(part) for part in error["loc"]) or name
                problems.append(f"{variable.upper()}: {error['msg']}")
    if problems:
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))
    return Settings(**loaded)  # type: ignore[arg-type]
