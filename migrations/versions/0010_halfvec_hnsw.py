"""The HNSW graphs index `halfvec`: drop the per-project `vector` graphs.

Revision ID: 0010_halfvec_hnsw
Revises: 0009_files_path_trigrams
Create Date: 2026-12-08

Each project's graph was `(embedding::vector(d)) vector_cosine_ops`, named
`ix_chunks_hnsw_<digest>_<d>`; it is now `(embedding::halfvec(d)) halfvec_cosine_ops`, named
`ix_chunks_hnswh_<digest>_<d>` (index/vector_indexes.py: 0.61x the size, same recall, measured by
bench/halfvec_hnsw.py). Search writes its ordering with the halfvec expression, which the old
graphs cannot answer, so they are dropped here instead of lingering. Building the new ones is not
done here: on a large project it takes minutes, which a schema upgrade must not. The server's
start and every runner's end call `VectorIndexes.restore_missing()`, and every index run ends with
`ensure`; until then a project's searches scan it exactly (correct, slower). The chunks
themselves are unchanged.
"""

from alembic import op
from sqlalchemy import text

revision = "0010_halfvec_hnsw"
down_revision = "0009_files_path_trigrams"
branch_labels = None
depends_on = None

_INDEXES = "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' AND indexname ~ :pattern"


def _drop(pattern: str) -> None:
    conn = op.get_bind()
    for name in conn.execute(text(_INDEXES), {"pattern": pattern}).scalars().all():
        op.execute(f'DROP INDEX IF EXISTS "{name}"')


def upgrade() -> None:
    _drop(r"^ix_chunks_hnsw_[0-9a-f]{12}_[0-9]+$")


def downgrade() -> None:
    # The older code builds its `vector` graphs again the same way (restore_missing).
    _drop(r"^ix_chunks_hnswh_[0-9a-f]{12}_[0-9]+$")
