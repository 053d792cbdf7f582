"""Splitting code identifiers into the words a person would type.

BERT's tokenizer lowercases before it cuts words into word pieces, so `parseHTTPResponse` becomes
`parsehttpresponse` and then meaningless pieces (`par ##se ##htt ##pre ...`). Splitting at case
boundaries first gives `parse HTTP Response`, whose pieces are real words. snake_case needs no work
here: the tokenizer already treats `_` as punctuation.

Digit boundaries (`utf8` -> `utf 8`) are split too, so `base64Encode` and `sha256` share the pieces
`base` and `sha` with the prose that talks about them.
"""

from __future__ import annotations

import re

# A boundary is: lower/digit followed by upper (`parseHTTP` -> `parse|HTTP`), the last capital of an
# acronym followed by a capitalised word (`HTTPResponse` -> `HTTP|Response`), or a letter/digit change.
_BOUNDARY = re.compile(
    r"(?<=[a-z0-9])(?=[A-Z])"
    r"|(?<=[A-Z])(?=[A-Z][a-z])"
    r"|(?<=[A-Za-z])(?=[0-9])"
    r"|(?<=[0-9])(?=[A-Za-z])"
)


def split_identifier(word: str) -> str:
    """`parseHTTPResponse` -> `parse HTTP Response`; `get_user_id2` -> `get user id 2`."""
    return _BOUNDARY.sub(" ", word).replace("_", " ")


def split_identifiers(text: str) -> str:
    """Insert a space at every case/digit boundary of a text; everything else is left as it is."""
    return _BOUNDARY.sub(" ", text)
