"""one turn number per call; processed memory-service requests

``call_turns``: duplicate ``(call_id, seq)`` pairs left by concurrent turns are renumbered in
order (seq, id) within each affected call, then a unique index makes them impossible.
``memory_requests``: the ``Idempotency-Key`` of every write the memory service applied, so a
replayed write is answered without being applied twice.

Revision ID: 0007_turn_seq_unique
Revises: 0005_admin
Create Date: 2026-12-03
"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0007_turn_seq_unique"
down_revision = "0005_admin"
branch_labels = None
depends_on = None


def _renumber_duplicates() -> None:
    bind = op.get_bind()
    calls = [
        row[0]
        for row in bind.execute(
            sa.text("SELECT DISTINCT call_id FROM call_turns GROUP BY call_id, seq HAVING count(*) > 1")
        )
    ]
    if not calls:
        return
    rows = bind.execute(
        sa.text(
            "SELECT id, call_id, seq FROM call_turns WHERE call_id IN :calls ORDER BY call_id, seq, id"
        ).bindparams(sa.bindparam("calls", expanding=True)),
        {"calls": calls},
    ).all()
    by_call: dict[int, list[int]] = defaultdict(list)
    for turn_id, call_id, _seq in rows:
        by_call[call_id].append(turn_id)
    renumber = sa.text("UPDATE call_turns SET seq = :seq WHERE id = :id")
    for ids in by_call.values():  # no unique index yet: numbers may collide while this runs
        bind.execute(renumber, [{"seq": index + 1, "id": turn_id} for index, turn_id in enumerate(ids)])


def upgrade() -> None:
    _renumber_duplicates()
    op.create_index("uq_call_turns_call_id_seq", "call_turns", ["call_id", "seq"], unique=True)
    op.create_table(
        "memory_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_memory_requests_created_at", "memory_requests", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_memory_requests_created_at", table_name="memory_requests")
    op.drop_table("memory_requests")
    op.drop_index("uq_call_turns_call_id_seq", table_name="call_turns")
