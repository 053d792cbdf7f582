"""Settings read from the environment (pydantic-settings).

Every variable is listed, with a comment, in `.env.example`. Each field names its environment
variable explicitly (`validation_alias`), so a validation error names the variable a person has to
fix, and `load_settings()` turns pydantic's error into one ConfigurationError listing all of them.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_server.errors import ConfigurationError

DEFAULT_PROJECT_ID = "default"
# A Kubernetes resource quantity (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
_QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


def _default_home() -> Path:
    return Path("~/.local/share/codebase-mcp").expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    # --- database -----------------------------------------------------------------------------
    database_url: SecretStr | None = Field(default=None, validation_alias="DATABASE_URL")
    home: Path = Field(default_factory=_default_home, validation_alias="CODEBASE_MCP_HOME")

    # --- jobs -----------------------------------------------------------------------------------
    launcher: Literal["local", "kubernetes"] = Field(default="local", validation_alias="CODEBASE_LAUNCHER")
    max_concurrent_indexing_jobs: int = Field(
        default=2, ge=1, le=64, validation_alias="MAX_CONCURRENT_INDEXING_JOBS"
    )
    indexing_job_timeout_seconds: int = Field(
        default=3600, ge=1, le=7 * 24 * 3600, validation_alias="INDEXING_JOB_TIMEOUT_SECONDS"
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_ALLOWED_ROOTS"
    )
    # A running local job whose supervisor has not written a heartbeat for this long is failed.
    heartbeat_timeout_seconds: int = Field(
        default=60, ge=5, le=3600, validation_alias="CODEBASE_HEARTBEAT_TIMEOUT_SECONDS"
    )

    # --- indexer --------------------------------------------------------------------------------
    max_file_bytes: int = Field(
        default=1_000_000, ge=1_000, le=100_000_000, validation_alias="CODEBASE_MAX_FILE_BYTES"
    )
    # Neighbouring small definitions are packed into chunks of up to this many lines (0: never).
    chunk_pack_lines: int = Field(default=40, ge=0, le=80, validation_alias="CODEBASE_CHUNK_PACK_LINES")
    indexer_workers: int = Field(default=0, ge=0, le=256, validation_alias="CODEBASE_INDEXER_WORKERS")
    # The embedded database's disk: an index run stops with a clear error when less than this many
    # megabytes are free there, before PostgreSQL itself runs out (0: no check).
    min_free_disk_mb: int = Field(
        default=100, ge=0, le=1_000_000, validation_alias="CODEBASE_MIN_FREE_DISK_MB"
    )
    # Repositories under these directories are indexed without the secret filter (secret files by
    # name and content, token redaction). The opt-in is the user's setting, never a repository file.
    index_secrets_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_INDEX_SECRETS_ROOTS"
    )

    # --- embeddings -----------------------------------------------------------------------------
    embedding_backend: Literal["static", "transformer", "ollama", "openai"] = Field(
        default="static", validation_alias="EMBEDDING_BACKEND"
    )
    embedding_model: str | None = Field(default=None, validation_alias="EMBEDDING_MODEL")
    embedding_url: str | None = Field(default=None, validation_alias="EMBEDDING_URL")
    embedding_api_key: SecretStr | None = Field(default=None, validation_alias="EMBEDDING_API_KEY")
    embedding_dimension: int | None = Field(
        default=None, ge=8, le=8192, validation_alias="EMBEDDING_DIMENSION"
    )
    embedding_batch_size: int = Field(default=64, ge=1, le=4096, validation_alias="EMBEDDING_BATCH_SIZE")
    embedding_timeout_seconds: float = Field(
        default=60.0, gt=0, le=3600, validation_alias="EMBEDDING_TIMEOUT_SECONDS"
    )
    embedding_model_path: str | None = Field(default=None, validation_alias="EMBEDDING_MODEL_PATH")

    # --- search ---------------------------------------------------------------------------------
    # Every statement of a search is stopped past this many milliseconds (PostgreSQL statement_timeout).
    search_timeout_ms: int = Field(
        default=5000, ge=100, le=600_000, validation_alias="CODEBASE_SEARCH_TIMEOUT_MS"
    )

    # --- MCP server -----------------------------------------------------------------------------
    http_host: str = Field(default="127.0.0.1", validation_alias="CODEBASE_MCP_HTTP_HOST")
    http_port: int = Field(default=8000, ge=1, le=65535, validation_alias="CODEBASE_MCP_HTTP_PORT")
    auth_token: SecretStr | None = Field(default=None, validation_alias="CODEBASE_MCP_AUTH_TOKEN")
    # Host names (besides loopback) the HTTP transport answers to, e.g. the Service name behind a
    # proxy; `*.example.com` patterns work. Anything else gets 421: DNS-rebinding protection.
    http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_MCP_ALLOWED_HOSTS"
    )
    # Browser origins (besides loopback ones) allowed to call the HTTP transport; others get 403.
    http_allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="CODEBASE_MCP_ALLOWED_ORIGINS"
    )
    # Open HTTP sessions per client address; one more closes that client's least recently used.
    http_max_sessions_per_client: int = Field(
        default=32, ge=1, le=10_000, validation_alias="CODEBASE_MCP_MAX_SESSIONS_PER_CLIENT"
    )
    # An HTTP session with no request for this long is closed.
    http_session_idle_seconds: float = Field(
        default=900.0, ge=1, le=24 * 3600, validation_alias="CODEBASE_MCP_SESSION_IDLE_SECONDS"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="CODEBASE_MCP_LOG_LEVEL"
    )

    # --- kubernetes -----------------------------------------------------------------------------
    k8s_namespace: str = Field(default="default", validation_alias="CODEBASE_K8S_NAMESPACE")

    # --- kubernetes: the operator and the indexer Jobs it creates -------------------------------
    indexer_image: str = Field(
        default="codebase-mcp:0.1.0", min_length=1, max_length=512, validation_alias="INDEXER_IMAGE"
    )
    indexer_image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        default="IfNotPresent", validation_alias="INDEXER_IMAGE_PULL_POLICY"
    )
    indexer_service_account: str = Field(
        default="codebase-mcp-indexer",
        min_length=1,
        max_length=253,
        validation_alias="INDEXER_SERVICE_ACCOUNT",
    )
    indexer_cpu_request: str = Field(default="250m", validation_alias="INDEXER_CPU_REQUEST")
    indexer_cpu_limit: str = Field(default="2", validation_alias="INDEXER_CPU_LIMIT")
    indexer_memory_request: str = Field(default="512Mi", validation_alias="INDEXER_MEMORY_REQUEST")
    indexer_memory_limit: str = Field(default="2Gi", validation_alias="INDEXER_MEMORY_LIMIT")
    # Optional accelerator for indexer pods (a custom embedding image may use it): count and resource.
    indexer_gpu_count: int = Field(default=0, ge=0, le=16, validation_alias="INDEXER_GPU_COUNT")
    indexer_gpu_resource_name: str = Field(
        default="nvidia.com/gpu",
        pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$",
        validation_alias="INDEXER_GPU_RESOURCE_NAME",
    )
    # Scheduling of indexer pods, as JSON: {"disktype": "ssd"} and [{"key": ..., "effect": ...}].
    indexer_node_selector: dict[str, str] = Field(
        default_factory=dict, validation_alias="INDEXER_NODE_SELECTOR"
    )
    indexer_tolerations: list[dict[str, Any]] = Field(
        default_factory=list, validation_alias="INDEXER_TOLERATIONS"
    )
    # Optional Secret loaded into the indexer container with envFrom (e.g. EMBEDDING_API_KEY).
    indexer_env_secret_name: str | None = Field(default=None, validation_alias="INDEXER_ENV_SECRET_NAME")
    # The indexer pod reads DATABASE_URL from this Secret key; the URL never appears in a manifest.
    database_url_secret_name: str = Field(
        default="codebase-mcp-database", min_length=1, validation_alias="DATABASE_URL_SECRET_NAME"
    )
    database_url_secret_key: str = Field(
        default="url", min_length=1, validation_alias="DATABASE_URL_SECRET_KEY"
    )
    # The volume shared by the MCP server and the indexer pods for `source.path` requests.
    workspace_pvc_name: str | None = Field(default=None, validation_alias="WORKSPACE_PVC_NAME")
    workspace_mount_path: str = Field(default="/workspace", validation_alias="WORKSPACE_MOUNT_PATH")
    pod_pending_timeout_seconds: int = Field(
        default=300, ge=1, le=24 * 3600, validation_alias="POD_PENDING_TIMEOUT_SECONDS"
    )
    job_ttl_seconds_after_finished: int = Field(
        default=3600, ge=0, le=30 * 24 * 3600, validation_alias="JOB_TTL_SECONDS_AFTER_FINISHED"
    )
    # 0 turns the endpoint off.
    operator_metrics_port: int = Field(default=8080, ge=0, le=65535, validation_alias="OPERATOR_METRICS_PORT")
    operator_health_port: int = Field(default=8081, ge=0, le=65535, validation_alias="OPERATOR_HEALTH_PORT")
    # How often the operator re-lists everything and converges, whatever the watch streams said.
    operator_resync_seconds: float = Field(
        default=10.0, ge=0.2, le=3600, validation_alias="OPERATOR_RESYNC_SECONDS"
    )
    # Test clusters only: copy `codebase-mcp.dev/test-*` labels/annotations of an IndexingRequest
    # onto its pod (they steer kwok's fake kubelet; see deploy/dev/kwok-stages.yaml).
    operator_test_hooks: bool = Field(default=False, validation_alias="OPERATOR_TEST_HOOKS")

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

    @field_validator("http_allowed_hosts", "http_allowed_origins", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("allowed_roots", "index_secrets_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(",", os.pathsep).split(os.pathsep)]
            return [p for p in parts if p]
        return value

    @field_validator("allowed_roots", "index_secrets_roots")
    @classmethod
    def _roots_absolute(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.is_absolute():
                raise ValueError(f"every allowed root must be an absolute path, got {str(root)!r}")
        return [Path(os.path.normpath(root)) for root in value]

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


def load_settings() -> Settings:
    """Read the environment; a bad value raises ConfigurationError naming each variable at fault."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = ".".join(str(part) for part in error["loc"]) or "settings"
            problems.append(f"{variable.upper()}: {error['msg']}")
        raise ConfigurationError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
