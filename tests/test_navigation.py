"""Navigation and exact-identifier search on real indexes: definitions, references, outlines,
spans of code, the repository filter, and every refusal. Embedded PostgreSQL, no mocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from indexing import index_run
from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.core.errors import InvalidInput
from mcp_server.embeddings import StaticEmbedder
from mcp_server.index.navigation import Navigator
from mcp_server.index.search import Searcher

pytestmark = pytest.mark.timeout(180)

HASHERS = '''\
"""Password hashing."""


def make_token(user):
    """A token for a user; not a password."""
    return "token:" + str(user)


def make_password(password, salt=None):
    """Turn a plain-text password into a hash for storage."""
    return "hash:" + password + (salt or "")


class PasswordHasher:
    def encode(self, password):
        # make_password is the public entry point; this comment is no reference
        return make_password(password)

    def verify(self, password, encoded):
        return self.encode(password) == encoded
'''

USERS = '''\
from auth.hashers import make_password


def create_user(name, password):
    """Store a new user; mentions make_password in a docstring only."""
    return {"name": name, "password": make_password(password)}


def set_password(user, raw):
    user["password"] = make_password(raw, salt="pepper")
    return user
'''

MENTIONS = "".join(
    f"def caller_{i}(p):\n    # make password make password\n    return make_token(p), make_password(p)\n\n\n"
    for i in range(6)
)

ROUTES_TS = """\
/** Resolve a path to its route. */
export function resolve(path: string): Route;
/** Resolve a path relative to a base. */
export function resolve(path: string, base: string): Route;
export function resolve(path: string, base?: string): Route {
  return new Route(base ? base + path : path);
}

export const DEFAULT_ROUTE = "/";

export class URLResolver {
  resolve(path: string): Route {
    return resolve(path);
  }
}
"""

SERVER_GO = """\
package server

type Server struct {
	addr string
}

func (s *Server) Start() error {
	return listen(s.addr)
}

func listen(addr string) error {
	return nil
}
"""


def index(engine: Engine, root: Path, project: str = "default") -> None:
    index_run(engine, root, project_id=project).run()
    with engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE chunks"))


@pytest.fixture
def project(make_repo: Any, clean_db: Engine) -> dict[str, Path]:
    """Two repositories in one project with the same symbol names (`make_password` in both)."""
    app = make_repo(
        {
            "auth/hashers.py": HASHERS,
            "auth/users.py": USERS,
            "auth/mentions.py": MENTIONS,
            "web/routes.ts": ROUTES_TS,
            "server/server.go": SERVER_GO,
            "docs/passwords.md": "# Passwords\n\nCall make_password to hash a password.\n" * 3,
            "tests/test_hashers.py": "from auth.hashers import make_password\n\n\n"
            "def test_make_password():\n    assert make_password('x')\n",
        },
        name="app",
    )
    vendored = make_repo(
        {
            "hashers.py": "def make_password(p):\n    return p[::-1]\n",
            "util.py": "def helper():\n    return 1\n",
        },
        name="vendored",
    )
    index(clean_db, app)
    index(clean_db, vendored)
    return {"app": app, "vendored": vendored}


@pytest.fixture
def nav(clean_db: Engine) -> Navigator:
    return Navigator(clean_db)


@pytest.fixture
def searcher(clean_db: Engine) -> Searcher:
    return Searcher(clean_db, StaticEmbedder())


# --- exact identifiers in search -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "lexical"])
@pytest.mark.parametrize(
    ("query", "path", "symbol"),
    [
        ("make_password", "auth/hashers.py", "make_password"),
        ("how does make_password hash", "auth/hashers.py", "make_password"),
        ("PasswordHasher.encode", "auth/hashers.py", "PasswordHasher"),
        ("hashers.make_password", "auth/hashers.py", "make_password"),
        ("URLResolver.resolve", "web/routes.ts", "URLResolver"),
        ("Server.Start", "server/server.go", "Server.Start"),
        ("DEFAULT_ROUTE", "web/routes.ts", "DEFAULT_ROUTE"),
    ],
)
def test_the_defining_chunk_comes_first(
    searcher: Searcher, project: dict[str, Path], mode: str, query: str, path: str, symbol: str
) -> None:
    results = searcher.search(query, project_id="default", mode=mode, repository="app", limit=5).results
    assert (results[0].file_path, symbol in (results[0].symbol or "")) == (path, True), [
        (r.file_path, r.symbol) for r in results
    ]


def test_all_definitions_of_a_name_come_before_its_mentions(
    searcher: Searcher, project: dict[str, Path]
) -> None:
    results = searcher.search("make_password", project_id="default", mode="lexical", limit=5).results
    first_two = {(r.repository, r.file_path) for r in results[:2]}
    assert first_two == {(str(project["app"]), "auth/hashers.py"), (str(project["vendored"]), "hashers.py")}


def test_typescript_overloads_and_their_jsdoc_are_one_named_definition(
    searcher: Searcher, project: dict[str, Path]
) -> None:
    results = searcher.search("resolve", project_id="default", mode="lexical", limit=3).results
    top = results[0]  # the packed chunk that starts with the overloads' JSDoc
    assert (top.file_path, top.start_line, (top.symbol or "").split(", ")[0]) == (
        "web/routes.ts",
        1,
        "resolve",
    )


# --- the repository filter -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "semantic", "lexical"])
def test_the_repository_filter_keeps_other_repositories_out(
    searcher: Searcher, project: dict[str, Path], mode: str
) -> None:
    for name in ("vendored", str(project["vendored"])):
        results = searcher.search("make_password", project_id="default", mode=mode, repository=name).results
        assert results and {r.repository for r in results} == {str(project["vendored"])}


def test_unknown_repository_and_malformed_glob_are_input_errors(
    searcher: Searcher, project: dict[str, Path]
) -> None:
    with pytest.raises(InvalidInput, match="unknown repository"):
        searcher.search("x", project_id="default", repository="nope")
    with pytest.raises(InvalidInput, match="without its"):
        searcher.search("x", project_id="default", path="src/[ab.py")


def test_an_empty_result_says_why(searcher: Searcher, project: dict[str, Path]) -> None:
    assert "no index" in (searcher.search("x", project_id="other").note or "")
    assert "match no file" in (searcher.search("x", project_id="default", path="nowhere/*.py").note or "")
    nothing = searcher.search("xylophonequartz", project_id="default", mode="lexical")
    assert nothing.results == [] and "query's words" in (nothing.note or "")


def test_a_glob_without_a_slash_matches_at_any_depth(searcher: Searcher, project: dict[str, Path]) -> None:
    results = searcher.search("password", project_id="default", path="*.ts", limit=20).results
    assert results and {r.file_path for r in results} == {"web/routes.ts"}


# --- find_definition -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "path", "line", "kind"),
    [
        ("make_password", "auth/hashers.py", 9, "function"),
        ("PasswordHasher.encode", "auth/hashers.py", 15, "method"),
        ("PasswordHasher", "auth/hashers.py", 14, "class"),
        ("Server.Start", "server/server.go", 7, "method"),
        ("URLResolver.resolve", "web/routes.ts", 12, "method"),
        ("DEFAULT_ROUTE", "web/routes.ts", 9, "constant"),
    ],
)
def test_find_definition_returns_the_defining_file_and_line_first(
    nav: Navigator, project: dict[str, Path], symbol: str, path: str, line: int, kind: str
) -> None:
    found = nav.find_definition(symbol, project_id="default", repository="app")["definitions"]
    assert (found[0]["file_path"], found[0]["start_line"], found[0]["kind"]) == (path, line, kind)
    assert symbol.rsplit(".", 1)[-1] in found[0]["content"] and found[0]["signature"]


def test_find_definition_lists_every_definition_when_a_name_is_ambiguous(
    nav: Navigator, project: dict[str, Path]
) -> None:
    found = nav.find_definition("make_password", project_id="default")["definitions"]
    assert {(d["repository"], d["file_path"]) for d in found} == {
        (str(project["app"]), "auth/hashers.py"),
        (str(project["vendored"]), "hashers.py"),
    }
    overloads = nav.find_definition("resolve", project_id="default")["definitions"]
    assert [d["start_line"] for d in overloads if d["qualified_name"] == "resolve"] == [2, 4, 5]


def test_find_definition_of_an_unknown_name_says_so(nav: Navigator, project: dict[str, Path]) -> None:
    answer = nav.find_definition("no_such_thing", project_id="default")
    assert answer["definitions"] == [] and "no definition" in answer["note"]


# --- find_references -----------------------------------------------------------------------------


def test_find_references_groups_uses_by_file_with_their_enclosing_symbol(
    nav: Navigator, project: dict[str, Path]
) -> None:
    answer = nav.find_references("make_password", project_id="default", repository="app")
    by_file = {f["file_path"]: f["references"] for f in answer["files"]}
    users = {(r["line"], r["enclosing_symbol"]) for r in by_file["auth/users.py"]}
    assert users == {(1, None), (6, "create_user"), (10, "set_password")}  # not the docstring (5)
    hashers = {(r["line"], r["enclosing_symbol"], r["is_definition"]) for r in by_file["auth/hashers.py"]}
    assert hashers == {(9, None, True), (17, "PasswordHasher.encode", False)}  # not the comment (16)
    assert list(by_file)[-1] == "tests/test_hashers.py"  # test code last
    assert all(str(project["vendored"]) != f["repository"] for f in answer["files"])


# --- outline and read_code -----------------------------------------------------------------------


def test_get_file_outline_is_a_tree_with_lines_and_signatures(
    nav: Navigator, project: dict[str, Path]
) -> None:
    outline = nav.get_file_outline("auth/hashers.py", project_id="default", repository="app")["outline"]
    assert [(n["name"], n["kind"], n["start_line"]) for n in outline] == [
        ("make_token", "function", 4),
        ("make_password", "function", 9),
        ("PasswordHasher", "class", 14),
    ]
    methods = outline[2]["children"]
    assert [(m["name"], m["signature"]) for m in methods] == [
        ("encode", "def encode(self, password)"),
        ("verify", "def verify(self, password, encoded)"),
    ]


def test_read_code_returns_the_span_as_indexed_with_its_hash(
    nav: Navigator, project: dict[str, Path]
) -> None:
    span = nav.read_code("auth/hashers.py", 9, 12, project_id="default", repository="app")
    assert span["content"] == "".join(HASHERS.splitlines(keepends=True)[8:12])
    assert len(span["content_hash"]) == 32 and span["total_lines"] == len(HASHERS.splitlines())
    absolute = nav.read_code(str(project["app"] / "auth/hashers.py"), 1, 1, project_id="default")
    assert absolute["content"] == '"""Password hashing."""\n'


@pytest.mark.parametrize(
    ("file_path", "repository", "message"),
    [
        ("../vendored/hashers.py", "app", "leaves its repository"),
        ("auth/../../x.py", "app", "leaves its repository"),
        ("/etc/passwd", None, "not inside an indexed repository"),
        ("auth\\hashers.py", "app", "backslash"),
        ("hashers.py\x00", "vendored", "NUL"),
        ("auth/missing.py", "app", "not an indexed file"),
        ("auth/hashers.py", "nope", "unknown repository"),
    ],
)
def test_file_tools_refuse_paths_outside_indexed_repositories(
    nav: Navigator, project: dict[str, Path], file_path: str, repository: str | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        nav.read_code(file_path, 1, 2, project_id="default", repository=repository)
    with pytest.raises(InvalidInput, match=message):
        nav.get_file_outline(file_path, project_id="default", repository=repository)


@pytest.mark.parametrize(
    "call",
    [
        lambda n: n.find_definition("", project_id="default"),
        lambda n: n.find_definition("two words", project_id="default"),
        lambda n: n.find_references("x_y", project_id="default", limit=0),
        lambda n: n.find_definition("x_y", project_id="default", language="Py thon"),
        lambda n: n.read_code("auth/hashers.py", 5, 2, project_id="default"),
        lambda n: n.read_code("auth/hashers.py", 1, 5000, project_id="default"),
    ],
)
def test_bad_arguments_are_input_errors(nav: Navigator, project: dict[str, Path], call: Any) -> None:
    with pytest.raises(InvalidInput):
        call(nav)


def test_a_repository_of_an_older_index_format_is_refused_until_reindexed(
    nav: Navigator, project: dict[str, Path], clean_db: Engine
) -> None:
    with clean_db.begin() as conn:
        conn.execute(text("UPDATE repositories SET index_format = 0"))
    with pytest.raises(InvalidInput, match="re-index"):
        nav.find_definition("make_password", project_id="default")
    index(clean_db, project["vendored"])  # unchanged files are re-read once, symbols written
    with clean_db.connect() as conn:
        formats = dict(conn.execute(text("SELECT root_path, index_format FROM repositories")).all())
    assert formats[str(project["vendored"])] == 1
    answer = nav.find_definition("make_password", project_id="default")
    assert [d["file_path"] for d in answer["definitions"]] == ["hashers.py"] and "re-index" in answer["note"]


# --- code before prose; file kinds -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_type", "paths"),
    [
        ("docs", {"docs/passwords.md"}),
        ("tests", {"tests/test_hashers.py"}),
        (
            "code",
            {"auth/hashers.py", "auth/users.py", "auth/mentions.py", "web/routes.ts", "server/server.go"},
        ),
        ("docs,ts", {"docs/passwords.md", "web/routes.ts"}),
    ],
)
def test_file_type_selects_code_docs_tests_or_config(
    searcher: Searcher, project: dict[str, Path], file_type: str, paths: set[str]
) -> None:
    results = searcher.search(
        "make password hash", project_id="default", repository="app", file_type=file_type, limit=30
    ).results
    assert results and {r.file_path for r in results} <= paths


def test_code_ranks_before_prose_unless_the_query_asks_for_documentation(
    searcher: Searcher, project: dict[str, Path]
) -> None:
    def first(query: str) -> str:
        response = searcher.search(query, project_id="default", repository="app", mode="lexical")
        return response.results[0].file_path

    assert first("call make password to hash a password") != "docs/passwords.md"
    assert first("documentation: call make password to hash a password") == "docs/passwords.md"


# --- the MCP tools, in memory ----------------------------------------------------------------------


def test_the_navigation_tools_answer_and_refuse_through_mcp(
    project: dict[str, Path], settings: Any, clean_db: Engine
) -> None:
    import anyio
    from fastmcp import Client
    from fastmcp.exceptions import ToolError

    from mcp_server.frontends.mcp_tools import build_server
    from mcp_server.frontends.operations import CodebaseService

    server = build_server(settings, CodebaseService(settings, engine=clean_db))

    async def scenario() -> None:
        async with Client(server) as client:
            names = {tool.name for tool in await client.list_tools()}
            assert {"find_definition", "find_references", "get_file_outline", "read_code"} <= names
            repos = (await client.call_tool("list_repositories", {})).structured_content
            assert {r["name"] for r in repos["repositories"]} == {"app", "vendored"}
            found = (
                await client.call_tool("find_definition", {"symbol": "PasswordHasher.encode"})
            ).structured_content
            assert found["definitions"][0]["file_path"] == "auth/hashers.py"
            uses = await client.call_tool(
                "find_references", {"symbol": "make_password", "repository": "vendored"}
            )
            assert [f["file_path"] for f in uses.structured_content["files"]] == ["hashers.py"]
            outline = (
                await client.call_tool("get_file_outline", {"file_path": "web/routes.ts"})
            ).structured_content
            assert "URLResolver" in {n["name"] for n in outline["outline"]}
            span = await client.call_tool(
                "read_code", {"file_path": "hashers.py", "start_line": 1, "end_line": 1}
            )
            assert span.structured_content["content"] == "def make_password(p):\n"
            hit = (
                await client.call_tool("search_code", {"query": "make_password", "repository": "app"})
            ).structured_content
            assert hit["results"][0]["file_path"] == "auth/hashers.py"
            for tool, arguments, message in [
                (
                    "read_code",
                    {"file_path": "../x.py", "start_line": 1, "end_line": 2},
                    "leaves its repository",
                ),
                ("search_code", {"query": "x", "repository": "nope"}, "unknown repository"),
                ("search_code", {"query": "x", "path": "src/[a"}, "without its"),
            ]:
                with pytest.raises(ToolError, match=message):
                    await client.call_tool(tool, arguments)

    anyio.run(scenario)
