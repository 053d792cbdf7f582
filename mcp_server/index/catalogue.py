"""What is indexed, for people and housekeeping: repositories with their counts, sizes and last
sync, disk use per project, and deleting a repository or a project."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from mcp_server.index.vector_indexes import VectorIndexes


class IndexCatalogue:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def repositories(self, *, project_id: str | None = None) -> list[dict[str, object]]:
        """Every repository with a published generation: its counts, bytes and files per language
        (most files first), last sync and model."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT r.id, r.project_id, r.root_path, r.last_indexed_at, p.embedding_model, "
                    " (SELECT count(*) FROM files f WHERE f.repository_id = r.id "
                    "   AND f.gen_from <= r.active_generation AND f.gen_to > r.active_generation) AS files, "
                    " (SELECT count(*) FROM chunks c WHERE c.repository_id = r.id "
                    "   AND c.gen_from <= r.active_generation AND c.gen_to > r.active_generation) AS chunks "
                    "FROM repositories r JOIN projects p ON p.project_id = r.project_id "
                    "WHERE r.active_generation > 0 AND (CAST(:p AS text) IS NULL OR r.project_id = :p) "
                    "ORDER BY r.project_id, r.root_path"
                ),
                {"p": project_id},
            ).mappings()
            listed = [dict(row) for row in rows]
            per_repo: dict[object, list[Any]] = {}
            for row in conn.execute(
                text(
                    "SELECT f.repository_id, coalesce(f.language, 'text') AS language, count(*) AS n, "
                    " sum(f.size_bytes) AS bytes "
                    "FROM files f JOIN repositories r ON r.id = f.repository_id "
                    "WHERE f.gen_from <= r.active_generation AND r.active_generation < f.gen_to "
                    " AND (CAST(:p AS text) IS NULL OR r.project_id = :p) "
                    "GROUP BY f.repository_id, 2 ORDER BY 3 DESC"
                ),
                {"p": project_id},
            ).mappings():
                per_repo.setdefault(row["repository_id"], []).append(row)
        for repo in listed:
            langs = per_repo.get(repo["id"], [])
            repo["size_bytes"] = sum(int(lang["bytes"] or 0) for lang in langs)
            repo["languages"] = {str(lang["language"]): int(lang["n"]) for lang in langs}
        return listed

    def delete_repository(self, *, project_id: str, root_path: str) -> bool:
        """Remove a repository and all its rows (files and chunks go with it); False if unknown."""
        with self._engine.begin() as conn:
            deleted = conn.execute(
                text("DELETE FROM repositories WHERE project_id = :p AND root_path = :r"),
                {"p": project_id, "r": root_path},
            ).rowcount
        return bool(deleted)

    def delete_project(self, *, project_id: str) -> bool:
        """Remove a project: its repositories, their rows, its vector index; False if unknown."""
        with self._engine.begin() as conn:
            model = conn.execute(
                text("SELECT embedding_dimension FROM projects WHERE project_id = :p"), {"p": project_id}
            ).one_or_none()
            if model is None:
                return False
            conn.execute(text("DELETE FROM projects WHERE project_id = :p"), {"p": project_id})
        VectorIndexes(self._engine).drop(project_id, int(model.embedding_dimension))
        return True

    def disk_usage(self) -> list[dict[str, object]]:
        """Per project: repositories, files and chunks (all generations) and their bytes on disk."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT p.project_id, "
                    " (SELECT count(*) FROM repositories r "
                    "   WHERE r.project_id = p.project_id) AS repositories, "
                    " (SELECT count(*) FROM files f JOIN repositories r ON r.id = f.repository_id "
                    "   WHERE r.project_id = p.project_id) AS files, "
                    " (SELECT count(*) FROM chunks c WHERE c.project_id = p.project_id) AS chunks, "
                    " (SELECT coalesce(sum(pg_column_size(c.*)), 0) FROM chunks c "
                    "   WHERE c.project_id = p.project_id) AS chunk_bytes "
                    "FROM projects p ORDER BY p.project_id"
                )
            ).mappings()
            return [dict(row) for row in rows]

    def last_synced(self, *, project_id: str, root_paths: Sequence[str]) -> dict[str, object]:
        """root path -> when its active generation was published, for the given repositories."""
        if not root_paths:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT root_path, last_indexed_at FROM repositories "
                    "WHERE project_id = :p AND root_path = ANY(:roots)"
                ),
                {"p": project_id, "roots": list(root_paths)},
            )
            return {r.root_path: r.last_indexed_at for r in rows}
