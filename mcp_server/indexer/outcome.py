"""What `codebase-mcp indexer run` tells whoever started it: its exit codes, and their words.

The local supervisor and the operator read only this and the termination message, so the
indexer's contract with both runners lives here, in a module light enough for either to import:
`describe_exit` is the one place an exit (a code, a signal, an OOM kill) is put into words, and
`failure_reason` the one place it becomes a job's `error_message`, for both runners.
"""

from __future__ import annotations

import enum
import signal


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
# A failed shard of a sharded job runs again this many times, alone (the local supervisor; an
# Indexed Job's backoffLimitPerIndex). The indexer's refusals are never retried: a bad input or a
# cancelled job is the same for every attempt.
SHARD_RETRIES = 1
RETRY_NEVER = (IndexerExit.INVALID_INPUT, IndexerExit.NOT_RUNNABLE)


def _signal_name(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
    return f"{name} (out of memory?)" if number == signal.SIGKILL else name


def describe_exit(code: int | None, reason: str | None = None) -> str:
    """An indexer's end in words: its own codes, a signal (a negative code from a local child, or
    128+N as container runtimes and shells report it), or a Kubernetes reason such as OOMKilled."""
    if code is not None and code in FAILURE_EXITS:
        return IndexerExit(code).meaning
    if reason == "OOMKilled":
        return f"the indexer container was killed (OOMKilled, exit code {code}); out of memory"
    if code is None:
        return "the indexer ended without an exit code"
    if code < 0:
        return f"the indexer was killed by {_signal_name(-code)}"
    if 128 < code < 128 + signal.NSIG:
        return f"the indexer exited with code {code} (killed by {_signal_name(code - 128)})"
    text = f"the indexer exited with code {code}"
    if reason and reason not in ("Error", "Completed"):
        text += f" ({reason})"
    return text


def failure_reason(code: int | None, message: str | None = None, reason: str | None = None) -> str:
    """A failed run's error_message: the exit in words, then what the indexer said."""
    detail = (message or "").strip()
    text = describe_exit(code, reason)
    return f"{text}: {detail}" if detail else text
