"""Identifiers in queries and the definitions-first order, without a database (pure functions)."""

from __future__ import annotations

import pytest

from mcp_server.index.search.identifiers import (
    MAX_LEADING_DEFINITIONS,
    DefinitionMatch,
    Identifier,
    definitions_first,
    module_of,
    query_identifiers,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("make_password", ["make_password"]),
        ("URLResolver.resolve", ["URLResolver.resolve"]),
        ("os.path.join", ["os.path.join"]),
        ("std::vec::Vec", ["std.vec.Vec"]),
        ("crate::store::write", ["store.write"]),
        ("parseHTTPResponse", ["parseHTTPResponse"]),
        ("how does make_password hash a password", ["make_password"]),
        ("where is WhereNode built from filter()", ["WhereNode", "filter"]),
        ("resolve", ["resolve"]),  # a one-word query is a name
        ("__init__", ["__init__"]),
        ("parse the configuration file", []),  # plain words name nothing
        ("Markdown", ["Markdown"]),
        ("HTML", ["HTML"]),
        ("what is a Markdown extension", []),
    ],
)
def test_query_identifiers_finds_the_names_a_query_holds(query: str, expected: list[str]) -> None:
    assert [i.text for i in query_identifiers(query)] == expected


@pytest.mark.parametrize(
    ("path", "module"),
    [
        ("django/urls/resolvers.py", "django.urls.resolvers"),
        ("pkg/__init__.py", "pkg"),
        ("src/store/mod.rs", "src.store"),
        ("lib/index.ts", "lib"),
        ("Makefile", "Makefile"),
    ],
)
def test_module_of_turns_a_path_into_a_dotted_module(path: str, module: str) -> None:
    assert module_of(path) == module


def ident(text: str) -> Identifier:
    return query_identifiers(text)[0]


@pytest.mark.parametrize(
    ("identifier", "qualified_name", "path", "tier"),
    [
        ("make_password", "make_password", "auth/hashers.py", 0),
        ("resolve", "URLResolver.resolve", "urls/resolvers.py", 1),
        ("URLResolver.resolve", "URLResolver.resolve", "urls/resolvers.py", 0),
        ("URLResolver.resolve", "URLPattern.resolve", "urls/resolvers.py", 2),
        ("resolvers.URLResolver.resolve", "URLResolver.resolve", "django/urls/resolvers.py", 1),
        ("hashers.make_password", "make_password", "django/auth/hashers.py", 1),
        ("other.make_password", "make_password", "django/auth/hashers.py", 2),
    ],
)
def test_a_definition_match_is_tiered_by_how_much_of_the_name_matches(
    identifier: str, qualified_name: str, path: str, tier: int
) -> None:
    assert DefinitionMatch(1, ident(identifier), qualified_name, path).tier == tier


FUSED = [(10, 0.9), (11, 0.8), (12, 0.7), (13, 0.6), (14, 0.5)]


def test_definitions_lead_in_tier_order_then_the_fused_order_follows() -> None:
    name = ident("URLResolver.resolve")
    matches = [
        DefinitionMatch(13, name, "URLResolver.resolve", "urls/resolvers.py"),
        DefinitionMatch(12, name, "URLPattern.resolve", "urls/resolvers.py"),  # tier 2: not leading
        DefinitionMatch(99, name, "x.URLResolver.resolve", "urls/other.py"),  # not in the fused list
    ]
    order = [chunk_id for chunk_id, _ in definitions_first(FUSED, matches)]
    assert order == [13, 99, 10, 11, 12, 14]


def test_leading_scores_stay_sorted() -> None:
    name = ident("make_password")
    out = definitions_first(FUSED, [DefinitionMatch(14, name, "make_password", "a.py")])
    scores = [score for _, score in out]
    assert scores == sorted(scores, reverse=True)


def test_test_code_definitions_lead_after_the_others_of_their_tier() -> None:
    name = ident("make_password")
    matches = [
        DefinitionMatch(11, name, "make_password", "tests/x.py"),
        DefinitionMatch(13, name, "make_password", "a.py"),
    ]
    order = [chunk_id for chunk_id, _ in definitions_first(FUSED, matches, demoted={11})]
    assert order[:2] == [13, 11]


def test_a_common_bare_name_leads_only_with_exact_top_level_definitions() -> None:
    name = ident("get")
    matches = [
        DefinitionMatch(100 + i, name, f"C{i}.get", "a.py") for i in range(MAX_LEADING_DEFINITIONS + 1)
    ]
    assert definitions_first(FUSED, matches) == FUSED
    exact = [*matches, DefinitionMatch(14, name, "get", "b.py")]
    assert definitions_first(FUSED, exact)[0][0] == 14


def test_no_matches_leave_the_order_alone() -> None:
    assert definitions_first(FUSED, []) == FUSED


def test_the_fusion_profile_comes_from_the_embedder_not_its_class() -> None:
    from mcp_server.embeddings import StaticEmbedder
    from mcp_server.index.search.ranking import MODEL_FUSION, STATIC_FUSION, fusion_for

    class Keywords:
        fusion_profile = "keywords"

    assert fusion_for(StaticEmbedder()) is STATIC_FUSION
    assert fusion_for(Keywords()) is STATIC_FUSION  # type: ignore[arg-type]
    assert fusion_for(object()) is MODEL_FUSION  # type: ignore[arg-type]
