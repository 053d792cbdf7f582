"""Small numeric helpers shared by the embedding backends."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def normalize_rows(matrix: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Rows scaled to unit L2 length, as float32; all-zero rows stay zero (nothing to point at)."""
    out = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: npt.NDArray[np.float32] = (out / norms).astype(np.float32, copy=False)
    return result
