"""The one interface every embedding backend implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension.

    `model_id` is recorded per project; searching or re-indexing a project with an embedder whose
    `model_id` or `dimension` differs is refused (EmbeddingModelMismatch), because vectors from two
    models are not comparable.
    """

    @property
    def model_id(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed_documents(self, texts: list[str]) -> npt.NDArray[np.float32]:
        """Embed chunk texts, shape (len(texts), dimension), rows L2-normalised (zero rows allowed)."""
        ...

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query, shape (dimension,), L2-normalised."""
        ...
