"""The project's own exception tree.

Third-party failures (psycopg, httpx, the Kubernetes client, the filesystem) are translated into
these at the edge where they happen, so the MCP layer and the CLI map each one to a clear message
in one place. The message of every exception here is written for a person and never contains a
secret (database passwords, tokens).
"""

from __future__ import annotations


class CodebaseMCPError(Exception):
    """Base class: anything the product refuses or fails on, with a readable message."""


class InvalidInput(CodebaseMCPError):
    """A tool argument, CLI argument or resource spec is malformed."""


class InvalidRepositoryPath(InvalidInput):
    """The repository path is relative, escapes with '..', does not exist, or is not allowed."""


class InvalidProjectId(InvalidInput):
    """The project id is not a DNS-label-like name."""


class JobNotFound(CodebaseMCPError):
    """No indexing job has that id (in that project)."""


class InvalidTransition(CodebaseMCPError):
    """A job state change that the state machine does not allow (for example out of a terminal state)."""


class ConfigurationError(CodebaseMCPError):
    """An environment variable or setting is invalid; the message names the variable."""


class DatabaseUnavailable(CodebaseMCPError):
    """PostgreSQL cannot be reached or started."""


class SourceUnavailable(CodebaseMCPError):
    """A repository could not be fetched for a reason that may pass (the network, the server):
    not the request's fault, so a retry of the job may succeed."""


class EmbeddingError(CodebaseMCPError):
    """The embedding backend failed (server unreachable, bad response, wrong dimension)."""


class EmbeddingModelMismatch(CodebaseMCPError):
    """A project was indexed with another embedding model or dimension than the one configured."""


class LauncherError(CodebaseMCPError):
    """The launcher could not start or stop an indexing run."""


class SearchTimeout(CodebaseMCPError):
    """A search ran past CODEBASE_SEARCH_TIMEOUT_MS and was stopped by the database."""


class JobNoLongerRunning(CodebaseMCPError):
    """The job left `running` (cancelled, failed) before its index run could publish."""


class ShardGenerationMoved(CodebaseMCPError):
    """Another run published the repository while the shards of a sharded run were writing the
    generation after it: their rows can no longer be published."""


class ShardSourceMoved(CodebaseMCPError):
    """The shards of a sharded git run checked out different commits (the branch moved while they
    fetched): one generation cannot mix two trees."""
