"""What a vector is made from: a chunk's path and symbol, then its content.

The indexer embeds this text (indexer/pipeline.py) and a reranker scores it at search time
(index/search/searcher.py), so both read a chunk the same way.
"""

from __future__ import annotations


def embedding_text(path: str, symbol: str | None, content: str) -> str:
    """The path and symbol name carry meaning the body alone may not."""
    header = path if symbol is None else f"{path} {symbol}"
    return f"{header}\n{content}"
