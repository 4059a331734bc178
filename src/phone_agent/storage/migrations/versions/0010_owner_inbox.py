"""call summaries and outcomes; the owner's inbox state on messages and appointments

``calls``: ``intent``, ``outcome`` (answered, appointment_booked, message_taken, transferred,
voicemail, abandoned, spam) and ``summary_source`` (llm | rules), written after the call.
``messages`` and ``appointments``: ``seen_at``, ``done_at``, ``owner_note`` (the inbox) and
``notified_at`` (the owner was told once).

Revision ID: 0010_owner_inbox
Revises: 0013_outbound_calls
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_owner_inbox"
down_revision = "0013_outbound_calls"
branch_labels = None
depends_on = None

INBOX_TABLES = ("messages", "appointments")


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("intent", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("summary_source", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_calls_outcome"), ["outcome"], unique=False)
    for table in INBOX_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column("done_at", sa.DateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column("owner_note", sa.Text(), nullable=True))
            batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in INBOX_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in ("notified_at", "owner_note", "done_at", "seen_at"):
                batch_op.drop_column(column)
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_outcome"))
        batch_op.drop_column("summary_source")
        batch_op.drop_column("outcome")
        batch_op.drop_column("intent")
