"""Secret files and secret tokens: what is never indexed by default.

Whatever is indexed can be read back through `search_code` by anyone who can call the server,
including a prompt-injected assistant. So, unless the repository is listed in
CODEBASE_INDEX_SECRETS_ROOTS (the per-repository opt-in: a setting of the user's, never a file in
the repository, which a hostile repository could ship):

* **files skipped by name** (`secret_file`): `.env` and `.env.*` (but `.env.example`, `.sample`,
  `.template`, `.dist`, `.defaults` are kept and scanned), private keys and keystores (`*.pem`,
  `*.key`, `id_rsa`-style `id_*` names without an extension, `*.ppk`, `*.kdbx`), `credentials*` data
  files (`.aws/credentials`, `credentials.json`, `application_default_credentials.json`),
  `client_secret*.json`, `.netrc`, `.git-credentials`, `.pgpass`, `.htpasswd`, `*.tfstate`, a
  `.docker/config.json` or a `.kube/config`;
* **files skipped by content** (`secret_content`): a private key block (`-----BEGIN ... PRIVATE
  KEY-----`) anywhere, and `.npmrc` / `.pypirc` that hold a token or password;
* **tokens redacted** in the chunks of every other file: high-confidence token formats (AWS access
  keys and secret keys in assignments, GitHub, GitLab, Slack, Stripe live, Google API, npm, PyPI,
  OpenAI and Anthropic keys) become `[REDACTED:<kind>]`, so the code around them stays searchable.

The job summary counts the files skipped per reason and the tokens redacted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

SECRET_FILE = "secret_file"
SECRET_CONTENT = "secret_content"

_ENV_KEPT_SUFFIXES = (".example", ".sample", ".template", ".dist", ".defaults", ".schema")
_DATA_EXTENSIONS = frozenset(
    {"", ".json", ".yaml", ".yml", ".toml", ".ini", ".xml", ".txt", ".conf", ".cfg", ".csv", ".properties"}
)
_SECRET_NAMES = frozenset({".netrc", "_netrc", ".git-credentials", ".pgpass", ".htpasswd", ".boto", ".s3cfg"})
_SECRET_EXTENSIONS = frozenset({".pem", ".key", ".ppk", ".kdbx", ".keychain", ".tfstate"})
_TOKEN_FILES = frozenset({".npmrc", ".pypirc", ".yarnrc", ".yarnrc.yml", ".gemrc"})
_TOKEN_FILE_CONTENT = re.compile(r"(?im)^\s*[^#;\n]*(_authtoken|_auth|token|password)\s*[:=]\s*\S")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

# (kind, pattern): formats with a fixed prefix and length, so a match is almost surely a real token.
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws-access-key", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "aws-secret-key",
        re.compile(r"(?i)(?<=aws_secret_access_key)(\s*[:=]\s*[\"']?)[A-Za-z0-9/+=]{40}\b"),
    ),
    ("github-token", re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b")),
    ("github-token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b")),
    ("gitlab-token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b")),
    ("slack-token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b")),
    ("stripe-key", re.compile(r"\b[rs]k_live_[A-Za-z0-9]{24,}\b")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("pypi-token", re.compile(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}")),
    (
        "openai-key",
        re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}"),
    ),
    ("anthropic-key", re.compile(r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{80,}")),
)


def secret_by_name(relative_path: str) -> bool:
    """Whether the path names a file that holds secrets by its nature."""
    lowered = relative_path.lower()
    name = lowered.rpartition("/")[2]
    dot = name.rfind(".")
    extension = name[dot:] if dot > 0 else ""
    if name == ".env" or (name.startswith(".env.") and not name.endswith(_ENV_KEPT_SUFFIXES)):
        return True
    if name.endswith(".env") and dot > 0 and not name.endswith(_ENV_KEPT_SUFFIXES):
        return True  # production.env, .env-style files with a prefix
    if name in _SECRET_NAMES or extension in _SECRET_EXTENSIONS:
        return True
    if name.startswith("id_") and "." not in name:
        return True  # id_rsa, id_ed25519, id_ecdsa_sk; id_rsa.pub is public
    if ("credentials" in name or name.startswith("client_secret")) and extension in _DATA_EXTENSIONS:
        return True
    return lowered == ".kube/config" or lowered.endswith(("/.docker/config.json", "/.kube/config"))


def secret_by_content(relative_path: str, text: str) -> bool:
    """Whether the text holds a private key, or a token file (.npmrc, .pypirc) holds a credential."""
    if _PRIVATE_KEY.search(text):
        return True
    name = relative_path.lower().rpartition("/")[2]
    return name in _TOKEN_FILES and _TOKEN_FILE_CONTENT.search(text) is not None


def redact(text: str) -> tuple[str, int]:
    """`text` with every high-confidence token replaced by `[REDACTED:<kind>]`, and the count."""
    count = 0
    for kind, pattern in TOKEN_PATTERNS:
        if kind == "aws-secret-key":
            text, n = pattern.subn(r"\1[REDACTED:aws-secret-key]", text)
        else:
            text, n = pattern.subn(f"[REDACTED:{kind}]", text)
        count += n
    return text, count


def filter_applies(repo_path: str, opted_out_roots: Sequence[Path]) -> bool:
    """False for a repository the user listed under CODEBASE_INDEX_SECRETS_ROOTS (or below one)."""
    if not repo_path.startswith("/"):
        return True
    path = Path(repo_path)
    return not any(path == root or root in path.parents for root in opted_out_roots)
