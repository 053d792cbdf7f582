"""Settings read from the environment (pydantic-settings).

Every variable is listed, with a comment, in `.env.example`. Each field names its environment
variable explicitly (`validation_alias`), so a validation error names the variable a person has to
fix, and `load_settings()` turns pydantic's error into one ConfigurationError listing all of them.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from mcp_server.errors import ConfigurationError

DEFAULT_PROJECT_ID = "default"


def _default_home() -> Path:
    return Path("~/.local/share/codebase-mcp").expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True
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
    indexer_workers: int = Field(default=0, ge=0, le=256, validation_alias="CODEBASE_INDEXER_WORKERS")

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

    # --- MCP server -----------------------------------------------------------------------------
    http_host: str = Field(default="127.0.0.1", validation_alias="CODEBASE_MCP_HTTP_HOST")
    http_port: int = Field(default=8000, ge=1, le=65535, validation_alias="CODEBASE_MCP_HTTP_PORT")
    auth_token: SecretStr | None = Field(default=None, validation_alias="CODEBASE_MCP_AUTH_TOKEN")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", validation_alias="CODEBASE_MCP_LOG_LEVEL"
    )

    # --- kubernetes -----------------------------------------------------------------------------
    k8s_namespace: str = Field(default="default", validation_alias="CODEBASE_K8S_NAMESPACE")

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
