"""Embedding backends behind one interface (`Embedder`), and the factory that picks one.

Backends: `static` (default; a token table shipped in the package, thousands of chunks/s on two
cores), `transformer` (all-MiniLM-L6-v2 run in numpy from a local directory; better on paraphrased
queries, tens of chunks/s), `ollama` and `openai` (an embedding server over HTTP).
"""

from __future__ import annotations

from pathlib import Path

from mcp_server.core.errors import ConfigurationError
from mcp_server.embeddings.base import Embedder
from mcp_server.embeddings.http import HttpEmbedder
from mcp_server.embeddings.static import DEFAULT_MODEL_DIR, StaticEmbedder
from mcp_server.embeddings.transformer import TransformerEmbedder, model_directory

__all__ = [
    "BACKENDS",
    "DEFAULT_MODEL_DIR",
    "Embedder",
    "HttpEmbedder",
    "StaticEmbedder",
    "TransformerEmbedder",
    "create_embedder",
    "embedder_for_project",
]

BACKENDS = ("static", "transformer", "ollama", "openai")


def embedder_for_project(embedder: Embedder, recorded_model_id: str | None) -> Embedder:
    """The embedder that reads and writes a project recorded with `recorded_model_id` (None: a new
    project). Only the package's default static embedder has alternatives (the models shipped
    before it, `StaticEmbedder.for_project`); any other embedder is what was configured."""
    if recorded_model_id is None or not isinstance(embedder, StaticEmbedder):
        return embedder
    return embedder.for_project(recorded_model_id)


def create_embedder(
    *,
    backend: str,
    model: str | None,
    url: str | None,
    api_key: str | None,
    dimension: int | None,
    batch_size: int,
    timeout_seconds: float,
    model_path: str | None,
) -> Embedder:
    """Build the configured embedder; configuration mistakes raise ConfigurationError naming the variable.

    - `static`: `model_path` may name another static model directory (default: the shipped one);
      `model`, `url` and `api_key` are not used.
    - `transformer`: `model_path` (EMBEDDING_MODEL_PATH) is required: a directory with
      model.safetensors and tokenizer.json. Nothing is downloaded.
    - `ollama` / `openai`: `url` (EMBEDDING_URL) and `model` (EMBEDDING_MODEL) are required;
      `api_key` is sent as a bearer token when set; `dimension` is checked against every response,
      or discovered by one probe request when not set.

    Nothing is loaded or requested here except what validation needs, so creating an embedder is cheap.
    """
    name = (backend or "static").strip().lower()
    if name not in BACKENDS:
        raise ConfigurationError(f"EMBEDDING_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if batch_size < 1:
        raise ConfigurationError(f"EMBEDDING_BATCH_SIZE must be at least 1, not {batch_size}")
    if not timeout_seconds > 0:
        raise ConfigurationError(f"EMBEDDING_TIMEOUT_SECONDS must be positive, not {timeout_seconds}")
    if dimension is not None and dimension < 1:
        raise ConfigurationError(f"EMBEDDING_DIMENSION must be a positive integer, not {dimension}")

    embedder: Embedder
    if name == "static":
        model_dir = Path(model_path).expanduser() if model_path else DEFAULT_MODEL_DIR
        if not (model_dir / "config.json").is_file():
            raise ConfigurationError(
                f"EMBEDDING_MODEL_PATH={model_path!r} is not a static model directory (no config.json)"
            )
        # Unset: the package default, which follows a project's older shipped table.
        embedder = StaticEmbedder(model_dir=model_dir if model_path else None)
        _check_dimension(embedder, dimension)
        return embedder
    if name == "transformer":
        directory = model_directory(
            model_path, variable="EMBEDDING_MODEL_PATH", choice="EMBEDDING_BACKEND=transformer"
        )
        embedder = TransformerEmbedder(model_path=directory, batch_size=batch_size)
        if dimension is not None:
            _check_dimension(embedder, dimension)
        return embedder

    if not url:
        raise ConfigurationError(f"EMBEDDING_URL is required for EMBEDDING_BACKEND={name}")
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError("EMBEDDING_URL must start with http:// or https://")
    if not model:
        raise ConfigurationError(
            f"EMBEDDING_MODEL is required for EMBEDDING_BACKEND={name} "
            f"(for example {'nomic-embed-text' if name == 'ollama' else 'text-embedding-3-small'})"
        )
    return HttpEmbedder(
        flavour="ollama" if name == "ollama" else "openai",
        url=url,
        model=model,
        api_key=api_key,
        dimension=dimension,
        batch_size=batch_size,
        timeout_seconds=timeout_seconds,
    )


def _check_dimension(embedder: Embedder, dimension: int | None) -> None:
    if dimension is not None and dimension != embedder.dimension:
        raise ConfigurationError(
            f"EMBEDDING_DIMENSION={dimension} does not match {embedder.model_id}, "
            f"which produces {embedder.dimension}-dimensional vectors; unset it or change the backend"
        )
