"""Identifiers in a query, and the order that puts the chunks defining them first.

An assistant often searches by a name it has just seen: `make_password`, `URLResolver.resolve`,
`os.path.join`, `std::vec::Vec`, `parseHTTPResponse()`. Word statistics alone rank such a query
badly (a chunk that calls `make_password` five times outscores the one that defines it, and
`make_token` shares half its words), so the symbol table is asked for definitions of the name and
those chunks lead: exact qualified matches, then other definitions and overloads, then the
fused order of everything else. Pure functions: the retriever supplies the matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A name, optionally qualified by `.`, `::`, `->` or `#`, optionally followed by a call `()`.
_TOKEN = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->|#)[A-Za-z_$][\w$]*)*(?:\(\))?")
_CAMEL = re.compile(r"[a-z0-9][A-Z]|[A-Z]{2}[a-z]")
_SEPARATORS = re.compile(r"::|->|#")
_PATH_ROOTS = frozenset({"crate", "self", "super"})
MAX_IDENTIFIERS = 4
# A bare name defined more often than this is a common method name (`__init__`, `get`): its
# definitions do not lead the results, they only join the fusion as one more ranked list.
MAX_LEADING_DEFINITIONS = 12


@dataclass(frozen=True, slots=True)
class Identifier:
    text: str  # normalised: parts joined by "."
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1]

    @property
    def qualified(self) -> bool:
        return len(self.parts) > 1


def query_identifiers(query: str) -> list[Identifier]:
    """The identifier-shaped tokens of a query: snake_case, camelCase, PascalCase with inner
    capitals, qualified names (`a.b`, `a::b`), calls (`f()`); a one-word query is a name too.
    Plain words in a sentence are not: "parse the file" names nothing."""
    tokens = _TOKEN.findall(query)
    single = len(query.split()) == 1 and len(tokens) == 1
    found: dict[str, Identifier] = {}
    for token in tokens:
        call = token.endswith("()")
        token = token.removesuffix("()")
        parts = tuple(p for p in _SEPARATORS.sub(".", token).split(".") if p)
        while len(parts) > 1 and parts[0] in _PATH_ROOTS:  # Rust: crate::a::b is a::b
            parts = parts[1:]
        if not parts or all(len(p) < 2 for p in parts):
            continue
        shaped = (
            single
            or call
            or len(parts) > 1
            or "_" in token.strip("_")
            or token.startswith("__")
            or bool(_CAMEL.search(token))
        )
        if shaped:
            found.setdefault(".".join(parts), Identifier(".".join(parts), parts))
    return list(found.values())[:MAX_IDENTIFIERS]


@dataclass(frozen=True, slots=True)
class DefinitionMatch:
    """A chunk holding a definition whose name is one of the query's identifiers."""

    chunk_id: int
    identifier: Identifier
    qualified_name: str
    path: str

    @property
    def module(self) -> str:
        """The file's path as a dotted module name: "django.urls.resolvers"."""
        return module_of(self.path)

    @property
    def tier(self) -> int:
        """0: the qualified name is the identifier; 1: it ends with it, or the module path and the
        qualified name together do (`pkg.func`), or (for a bare name) it is a member's name;
        2: a qualified identifier of which only the last part matches."""
        ident = self.identifier
        if self.qualified_name == ident.text:
            return 0
        if not ident.qualified:
            return 1
        full = f"{self.module}.{self.qualified_name}"
        if self.qualified_name.endswith("." + ident.text) or full.endswith("." + ident.text):
            return 1
        return 2


def module_of(path: str) -> str:
    """ "django/urls/resolvers.py" -> "django.urls.resolvers"; a package's `__init__` is the package."""
    stem = path.rsplit(".", 1)[0] if "." in path.rsplit("/", 1)[-1] else path
    stem = stem.removesuffix("/__init__").removesuffix("/index").removesuffix("/mod")
    return stem.replace("/", ".")


def definitions_first(
    fused: list[tuple[int, float]], matches: list[DefinitionMatch], *, demoted: set[int] | None = None
) -> list[tuple[int, float]]:
    """`fused` reordered so that the chunks defining the query's identifiers come first.

    Definitions lead by tier (exact qualified name first), then by where fusion put them; chunks
    in `demoted` (test code, docs) lead only after the others of their tier. An identifier whose
    bare name has more than MAX_LEADING_DEFINITIONS definitions leads only with its exact or
    qualified matches; a qualified identifier leads only with definitions of that qualified name
    (`URLResolver.resolve`, not every `resolve`). The scores of leading chunks are raised above
    every other score, so the order stays sorted by score.
    """
    if not matches:
        return fused
    demoted = demoted or set()
    position = {chunk_id: i for i, (chunk_id, _) in enumerate(fused)}
    per_identifier: dict[str, int] = {}
    for match in matches:
        per_identifier[match.identifier.text] = per_identifier.get(match.identifier.text, 0) + 1
    best: dict[int, tuple[int, bool, int]] = {}
    for match in matches:
        tier = match.tier
        if tier >= 2 or (tier == 1 and per_identifier[match.identifier.text] > MAX_LEADING_DEFINITIONS):
            continue
        key = (tier, match.chunk_id in demoted, position.get(match.chunk_id, len(fused)))
        if match.chunk_id not in best or key < best[match.chunk_id]:
            best[match.chunk_id] = key
    if not best:
        return fused
    leading = sorted(best, key=lambda chunk_id: (best[chunk_id], chunk_id))
    top = max((score for _, score in fused), default=0.0)
    out = [(chunk_id, top + 1.0 + (len(leading) - i) / len(leading)) for i, chunk_id in enumerate(leading)]
    out += [(chunk_id, score) for chunk_id, score in fused if chunk_id not in best]
    return out
