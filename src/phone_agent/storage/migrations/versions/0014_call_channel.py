"""calls.channel: how the caller reached the agent (phone, chat, web)

``phone``: a Twilio call (inbound or outbound); ``chat``: a ``/v1/chat`` conversation (rows that
had ``direction = 'chat'``); ``web``: the admin page's softphone ("Call your agent").

Revision ID: 0014_call_channel
Revises: 0010_owner_inbox
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_call_channel"
down_revision = "0010_owner_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), nullable=False, server_default="phone")
        )
    op.execute(sa.text("UPDATE calls SET channel = 'chat' WHERE direction = 'chat'"))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("channel")
