"""outbound calls and the do-not-call list

``outbound_calls``: one row per call the agent placed (purpose, who asked, the Twilio status
callbacks received, the answering-machine verdict). ``do_not_call``: numbers never to dial.

Revision ID: 0013_outbound_calls
Revises: 0012_routing
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_outbound_calls"
down_revision = "0012_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbound_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("to_number", sa.String(length=32), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("answered_by", sa.String(length=32), nullable=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("outbound_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbound_calls_ref"), ["ref"], unique=True)
        batch_op.create_index(batch_op.f("ix_outbound_calls_call_sid"), ["call_sid"], unique=True)
        batch_op.create_index(batch_op.f("ix_outbound_calls_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbound_calls_to_number"), ["to_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbound_calls_created_at"), ["created_at"], unique=False)
    op.create_table(
        "do_not_call",
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("note", sa.String(length=300), nullable=True),
        sa.Column("added_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )


def downgrade() -> None:
    op.drop_table("do_not_call")
    with op.batch_alter_table("outbound_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbound_calls_created_at"))
        batch_op.drop_index(batch_op.f("ix_outbound_calls_to_number"))
        batch_op.drop_index(batch_op.f("ix_outbound_calls_call_id"))
        batch_op.drop_index(batch_op.f("ix_outbound_calls_call_sid"))
        batch_op.drop_index(batch_op.f("ix_outbound_calls_ref"))
    op.drop_table("outbound_calls")
