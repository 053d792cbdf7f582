"""Search over the index: `Searcher` answers a query from each repository's readable generation
(repositories.readable: the published one, or a first index still running, flagged partial).

query.py         the request, checked once at the edge (limits, modes, filters, path globs)
retrieval.py     the vector and full-text retrievers over one shared scope
ranking.py       fusion of their lists, test-code demotion
presentation.py  ids -> results with context, under a size cap
searcher.py      the order of those steps inside one connection
"""

from mcp_server.index.search.presentation import CONCISE_LINES, SearchResponse, SearchResult
from mcp_server.index.search.query import (
    DEFAULT_CONTEXT_LINES,
    DEFAULT_MAX_CHARS,
    MAX_CONTEXT_LINES,
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    SEARCH_MODES,
    SearchFilters,
    SearchMode,
    glob_to_regex,
    parse_file_types,
    validate_search_args,
)
from mcp_server.index.search.ranking import TEST_CODE_WEIGHT, is_test_path
from mcp_server.index.search.retrieval import Scope
from mcp_server.index.search.searcher import Searcher

__all__ = [
    "CONCISE_LINES",
    "DEFAULT_CONTEXT_LINES",
    "DEFAULT_MAX_CHARS",
    "MAX_CONTEXT_LINES",
    "MAX_LIMIT",
    "MAX_QUERY_CHARS",
    "SEARCH_MODES",
    "TEST_CODE_WEIGHT",
    "Scope",
    "SearchFilters",
    "SearchMode",
    "SearchResponse",
    "SearchResult",
    "Searcher",
    "glob_to_regex",
    "is_test_path",
    "parse_file_types",
    "validate_search_args",
]
