"""What `codebase-mcp indexer run` tells whoever started it: its exit codes.

The local supervisor and the operator read only this and the termination message, so the
indexer's contract with both runners lives here, in a module light enough for either to import.
"""

from __future__ import annotations

import enum


class IndexerExit(enum.IntEnum):
    """How `indexer run` ends. Any other code means the process was killed or crashed."""

    INDEXED = 0
    FAILED = 1  # the reason is in the termination message
    INVALID_INPUT = 2  # a bad path or source; the message says what to fix
    NOT_RUNNABLE = 3  # cancelled, or already finished, before or while indexing

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    IndexerExit.INDEXED: "the indexer finished (exit code 0)",
    IndexerExit.FAILED: "the indexer failed (exit code 1)",
    IndexerExit.INVALID_INPUT: "the indexer refused its input (exit code 2)",
    IndexerExit.NOT_RUNNABLE: "the job was no longer runnable: cancelled or already finished (exit code 3)",
}
# The exit codes by which the indexer itself reports a failure (a Job's podFailurePolicy fails
# the Job at once on these instead of retrying the pod).
FAILURE_EXITS = (IndexerExit.FAILED, IndexerExit.INVALID_INPUT, IndexerExit.NOT_RUNNABLE)
