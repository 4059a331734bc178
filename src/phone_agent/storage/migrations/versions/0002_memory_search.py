"""memory search: full-text and vector columns for memories and knowledge chunks

SQLite: contentless FTS5 tables (``memories_fts`` with an ``owner`` column, ``knowledge_chunks_fts``)
kept in step by triggers, and an ``embedding`` BLOB column (little-endian float32, the sqlite-vec format).
PostgreSQL: a generated ``search`` tsvector column with a GIN index, and — when the server has the
pgvector extension — an ``embedding vector(1536)`` column with an HNSW index (cosine). Without
pgvector the columns are skipped and memory search runs lexical-only.

Revision ID: 0002_memory_search
Revises: 0001_initial
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_memory_search"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

EMBEDDING_DIMENSIONS = 1536  # text-embedding-3-small; phone_agent.memory.embeddings asks for this size
# (table, text column, FTS table)
SEARCHED = (("memories", "content", "memories_fts"), ("knowledge_chunks", "text", "knowledge_chunks_fts"))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _upgrade_sqlite()
    else:
        _upgrade_postgres(bind)


def _upgrade_sqlite() -> None:
    for table, column, fts in SEARCHED:
        op.add_column(table, sa.Column("embedding", sa.LargeBinary(), nullable=True))
        # Contentless FTS5 (never reads the table back). Memories also index an ``owner`` token
        # ('c<caller_id>'), so one caller's search intersects with that short doclist instead of
        # ranking every matching memory of every caller.
        owner = "'c' || {row}.caller_id" if table == "memories" else None
        columns = f"{column}, owner" if owner else column
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({columns}, content='', tokenize='porter unicode61')"
        )

        def values(row: str, owner: str | None = owner, column: str = column) -> str:
            return f"{row}.{column}, {owner.format(row=row)}" if owner else f"{row}.{column}"

        op.execute(f"INSERT INTO {fts}(rowid, {columns}) SELECT id, {values(table)} FROM {table}")
        op.execute(
            f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, {columns}) VALUES (new.id, {values('new')}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {columns}) VALUES ('delete', old.id, {values('old')}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {column} ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {columns}) VALUES ('delete', old.id, {values('old')}); "
            f"INSERT INTO {fts}(rowid, {columns}) VALUES (new.id, {values('new')}); END"
        )


def _upgrade_postgres(bind: sa.engine.Connection) -> None:
    for table, column, _fts in SEARCHED:
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN search tsvector "
            f"GENERATED ALWAYS AS (to_tsvector('english', coalesce({column}, ''))) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_search ON {table} USING gin (search)")
    if not _enable_pgvector(bind):
        return
    for table, _column, _fts in SEARCHED:
        op.execute(f"ALTER TABLE {table} ADD COLUMN embedding vector({EMBEDDING_DIMENSIONS})")
        op.execute(f"CREATE INDEX ix_{table}_embedding ON {table} USING hnsw (embedding vector_cosine_ops)")


def _enable_pgvector(bind: sa.engine.Connection) -> bool:
    """Create the vector extension if the server ships it; False (lexical-only) if it can't."""
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar()
    if not available:
        return False
    try:
        with bind.begin_nested():  # a refused CREATE EXTENSION must not abort the migration
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError:
        return False
    return True


def downgrade() -> None:
    bind = op.get_bind()
    for table, _column, fts in SEARCHED:
        if bind.dialect.name == "sqlite":
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {fts}")
            with op.batch_alter_table(table) as batch_op:
                batch_op.drop_column("embedding")
        else:
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS embedding")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search")
