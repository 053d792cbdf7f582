"""What full-text search sees of code: punctuation as spaces and camelCase split into words.

Chunks (when written, index/store.py) and queries (index/search/retrieval.py) go through the same
functions, so a word found in one is found in the other.
"""

from __future__ import annotations

import re

_CAMEL_RE = re.compile(
    r"[A-Za-z][a-z0-9]*[A-Z][A-Za-z0-9]*|[A-Z]{2,}[a-z][A-Za-z0-9]*|[A-Za-z]+[0-9]+[A-Za-z][A-Za-z0-9]*"
)
_CAMEL_SPLIT_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def split_identifiers(content: str) -> str:
    """The camelCase identifiers of `content`, split into words ("parseHTTPResponse" -> "parse
    HTTP Response", "html2text" -> "html 2 text"). PostgreSQL's parser already splits snake_case
    at underscores."""
    seen: set[str] = set()
    words: list[str] = []
    for match in _CAMEL_RE.finditer(content):
        token = match.group(0)
        if token in seen:
            continue
        seen.add(token)
        words.extend(_CAMEL_SPLIT_RE.findall(token))
    return " ".join(words)


# ASCII punctuation except "_" (PostgreSQL's parser already splits words at underscores).
PUNCTUATION_TO_SPACE = str.maketrans({ch: " " for ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^`{|}~"})


def lexical_text(content: str) -> str:
    """What full-text search sees of `content` (chunks and queries alike): punctuation as spaces,
    then the camelCase identifiers split into words. Without the first step PostgreSQL's parser
    reads `self.cache`, `a/b.py` and `x-y` as one host, file or hyphenated token, so none of
    their words could be found."""
    plain = content.translate(PUNCTUATION_TO_SPACE)
    return plain + " " + split_identifiers(plain)


# PostgreSQL refuses a tsvector whose words exceed 1 MB ("string is too long for tsvector"), which
# would fail a whole write batch over one minified bundle kept as a single line. Past this many
# bytes a chunk is only found by keyword through its start (by meaning through all of it).
MAX_LEXICAL_BYTES = 512 * 1024


def lexical_body(content: str) -> str:
    """`lexical_text`, cut to what a tsvector can hold."""
    body = lexical_text(content)
    if len(body) * 4 > MAX_LEXICAL_BYTES:  # cheap test first: a character is at most 4 bytes
        data = body.encode("utf-8")
        if len(data) > MAX_LEXICAL_BYTES:
            body = data[:MAX_LEXICAL_BYTES].decode("utf-8", "ignore")
    return body
